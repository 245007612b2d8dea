"""Hostile raw HTTP to the API twin, outside the schema: odd methods, paths, encodings and bodies give 4xx."""

from __future__ import annotations

import http.client
import json
import urllib.parse
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.slow

METHODS = st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"])
SEGMENT = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.text(max_size=20).map(lambda t: urllib.parse.quote(t, safe="")),
    st.sampled_from(
        [
            "%00",
            "%ff%fe",
            "..",
            "%2e%2e",
            "1%2F2",
            "0x10",
            "1e3",
            "%EF%BC%91%EF%BC%92",
            "NaN",
            "%201",
            "1%20",
            "9" * 4301,
            "0" * 4400 + "7",
        ]
    ),
)


@st.composite
def targets(draw: st.DrawFn, user_ids: list[int]) -> str:
    user = draw(st.one_of(st.sampled_from(user_ids).map(str), SEGMENT))
    path = draw(
        st.sampled_from(
            [
                f"/users/{user}/recommendations",
                f"/users/{user}/recommendations/",
                f"/users/{user}",
                f"//users/{user}/recommendations",
                f"/{user}",
            ]
        )
    )
    pairs = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["k", "exclude_rated", "min_score", "genre", "userId", "x"]),
                st.one_of(
                    SEGMENT, st.sampled_from(["10", "true", "false", "Comedy", "0.5", "", "-1", "101"])
                ),
            ),
            max_size=5,
        )
    )
    query = "&".join(f"{k}={v}" for k, v in pairs)
    return path + ("?" + query if query else "")


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(data=st.data(), method=METHODS, body=st.binary(max_size=200))
def test_raw_requests_never_fail_on_the_server(
    api_url: str, trained: Any, data: Any, method: str, body: bytes
) -> None:
    target = data.draw(targets(trained.lookup.user_ids))
    host, port = urllib.parse.urlsplit(api_url).netloc.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request(method, target, body=body or None, headers={"Content-Type": "application/octet-stream"})
        response = conn.getresponse()
        text = response.read()
    finally:
        conn.close()
    assert response.status < 500, (method, target, text[:300])
    assert b"Traceback" not in text
    if method != "HEAD":
        doc = json.loads(text)
        if response.status in (414, 431):  # over API Gateway's 10240 bytes: refused before the Lambda runs
            assert set(doc) == {"message"} and "the limit is 10240" in doc["message"], doc
        elif response.status >= 400:
            assert set(doc) == {"code", "message", "requestId"}, doc
            assert doc["code"] in ("BadRequest", "NotFound"), doc
        else:
            assert method == "GET" and doc["servingPath"] in ("endpoint", "cold_start"), (target, doc)
