"""The shared request builder: correct keys (user-block offset), 6 MB splitting, decode_keys."""

from __future__ import annotations

import json

import pytest

from fmrec.errors import InputError
from fmrec.serving.requests import MAX_PAYLOAD_BYTES, RequestBuilder, build_requests, decode_body, decode_keys
from tests.support.lambda_world import make_lookup


def test_every_instance_decodes_back_to_the_user_and_movie() -> None:
    lookup = make_lookup()
    builder = RequestBuilder(lookup)
    n_users = len(lookup.user_ids)
    for pos, user_id in enumerate(lookup.user_ids):
        (payload,) = builder.build(pos)
        doc = json.loads(payload.body)
        assert len(doc["instances"]) == len(lookup.movie_ids)
        for movie_pos, inst in enumerate(doc["instances"]):
            feats = inst["data"]["features"]
            assert feats["shape"] == [lookup.feature_dim]
            assert feats["values"] == [1] * len(feats["keys"])
            # The movie key is offset by the user block: the seed's bug was [user, movie_pos].
            assert feats["keys"] == [pos, n_users + movie_pos]
            assert decode_keys(lookup, feats["keys"]) == (user_id, lookup.movie_ids[movie_pos])
    assert decode_body(lookup, payload.body)[0] == (lookup.user_ids[-1], lookup.movie_ids[0])


def test_candidate_subsets_keep_their_order() -> None:
    lookup = make_lookup()
    positions = [7, 0, 3]
    (payload,) = build_requests(lookup, 2, positions)
    assert list(payload.movie_positions) == positions
    assert [m for _, m in decode_body(lookup, payload.body)] == [lookup.movie_ids[p] for p in positions]
    assert RequestBuilder(lookup).build(2, []) == []


@pytest.mark.parametrize("max_bytes", [200, 333, 1000, 5000])
def test_bodies_are_split_under_the_limit(max_bytes: int) -> None:
    lookup = make_lookup()
    payloads = RequestBuilder(lookup, max_bytes=max_bytes).build(1)
    assert len(payloads) >= 1
    assert all(len(p.body) <= max_bytes for p in payloads)
    assert [p for pl in payloads for p in pl.movie_positions] == list(range(len(lookup.movie_ids)))
    decoded = [pair for pl in payloads for pair in decode_body(lookup, pl.body)]
    assert decoded == [(lookup.user_ids[1], m) for m in lookup.movie_ids]
    if max_bytes < 1000:
        assert len(payloads) > 1


def test_default_limit_is_six_megabytes_and_one_body_suffices_for_a_small_catalogue() -> None:
    assert MAX_PAYLOAD_BYTES == 6 * 1024 * 1024
    assert len(RequestBuilder(make_lookup()).build(0)) == 1


def test_an_instance_larger_than_the_limit_is_an_error() -> None:
    with pytest.raises(InputError, match="cannot fit"):
        RequestBuilder(make_lookup(), max_bytes=40).build(0)


def test_decode_keys_rejects_keys_that_are_not_one_user_and_one_movie() -> None:
    lookup = make_lookup()
    n_users = len(lookup.user_ids)
    with pytest.raises(InputError, match="exactly one user"):
        decode_keys(lookup, [0, 1])
    with pytest.raises(InputError, match="exactly one user"):
        decode_keys(lookup, [0])
    with pytest.raises(InputError, match="exactly one user"):
        decode_keys(lookup, [n_users, n_users + 1])
    with pytest.raises(InputError, match="request body"):
        decode_body(lookup, b'{"instances": [{}]}')


class _InterleavedLookup:
    """Movies whose aux columns (50+) fall between the user side's aux (40s) and history (60+) columns."""

    feature_dim = 100
    user_ids = (1, 2, 3, 4)
    movie_ids = (11, 12, 13)

    def movie_keys(self, movie_pos: int) -> list[int]:
        return [10 + movie_pos, 50 + movie_pos]

    def movie_values(self, movie_pos: int) -> list[float]:
        return [1.0, 0.1]


def test_keys_ascend_in_every_instance_with_values_kept_beside_their_keys() -> None:
    # The user side arrives out of order (history before aux); the movie's keys must land between them.
    user_keys, user_values = [3, 61, 44, 70, 41], [1.0, 0.25, 0.1, 0.5, 0.1]
    (payload,) = RequestBuilder(_InterleavedLookup()).build_rows(user_keys, user_values, [0, 2, 1])
    expected_user = dict(zip(user_keys, user_values, strict=True))
    for movie_pos, inst in zip([0, 2, 1], json.loads(payload.body)["instances"], strict=True):
        feats = inst["data"]["features"]
        assert feats["keys"] == sorted(feats["keys"])
        assert dict(zip(feats["keys"], feats["values"], strict=True)) == pytest.approx(
            {**expected_user, 10 + movie_pos: 1.0, 50 + movie_pos: 0.1}
        )
