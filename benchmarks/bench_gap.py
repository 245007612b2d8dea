"""Where fmrec trails EASE: NDCG@10 by the users' train activity, and held-out franchise follow-ups apart.

    .venv/bin/python benchmarks/bench_gap.py DATA [--param NAME=VALUE ...] [--ease 100 500]

The local pipeline runs on DATA's own split (the test split, as `bench_validation.py --test`), then fmrec,
EASE and popularity rank the held-out ratings with the evaluate step's functions. The users are cut into
quartiles of their train ratings, and each quartile is scored alone. On data made by `fmrec data synth`
(SYNTHETIC.json), the relevant held-out movies are also split into those of a franchise the user rated a
movie of in train (the follow-ups the generator plants: item-item structure) and the others, and each part
is scored alone (users with no relevant movie of a part drop out of it). Real MovieLens has no franchise
table, so there only the activity table is printed. `--ease` takes one or more λ; the ratio column is
against the first (put the λ the validation carve picks first: on the 9k preset λ 500, the default, flatters
fmrec; docs/benchmarks.md, "EASE's λ"). `--blend SOURCE,TOP,WEIGHT` (repeatable; bench_quality.py's) adds the
model blended with an item-item score (an experiment). Report only: nothing here chooses a setting.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))

import exp_neighbours
from bench_quality import _pipeline, evaluated

from fmrec.data.synth import SynthConfig, movie_franchises
from fmrec.errors import InputError
from fmrec.evaluation.peers import fit_ease
from fmrec.evaluation.ranking import K, RankingTask, Scorer, ranking_metrics_at_k
from fmrec.evaluation.scorers import model_scorer, popularity_scorer


def subset(task: RankingTask, rows: np.ndarray, relevant: sp.csr_matrix | None = None) -> RankingTask:
    """The task of `rows` only, with `relevant` (default the task's) as their relevant movies; rows left with
    no relevant movie are dropped."""
    rel = (task.relevant if relevant is None else relevant)[rows]
    total = task.relevant_total[rows] if relevant is None else np.diff(rel.indptr).astype(np.int64)
    keep = np.flatnonzero(total > 0)
    return replace(
        task,
        users=task.users[rows][keep],
        seen=task.seen[rows][keep],
        relevant=rel[keep],
        relevant_total=total[keep],
        users_total=int(keep.size),
    )


def line(name: str, task: RankingTask, scorers: dict[str, Scorer]) -> str:
    figures = {k: ranking_metrics_at_k(s, task, K) for k, s in scorers.items()}
    ndcg = {k: f[f"ndcg_at_{K}"] for k, f in figures.items()}
    cells = [f"{name}", str(task.users.size), str(task.relevant.nnz)]
    cells += [f"{ndcg[k]:.4f} (recall {figures[k][f'recall_at_{K}']:.4f})" for k in scorers]
    ease = next(k for k in scorers if k.startswith("EASE"))  # the first λ given
    return "| " + " | ".join(cells) + f" | {ndcg['fmrec'] / max(ndcg[ease], 1e-12):.3f} × |"


def franchise_relevant(data: Path, movie_ids: np.ndarray, task: RankingTask) -> sp.csr_matrix | None:
    """The task's relevant matrix kept only where the movie's franchise is one of the user's train movies'."""
    marker = data / "SYNTHETIC.json"
    if not marker.exists():
        return None
    try:  # the planted model is drawn again from the recorded config: it must be this generator's
        cfg = SynthConfig(**json.loads(marker.read_text())["config"])
        cfg.validate()
    except (ValueError, KeyError, TypeError, InputError) as exc:
        print(f"{marker}: not this generator's config ({exc}); the franchise rows are left out")
        return None
    ids, franchise = movie_franchises(cfg)
    pos = np.minimum(np.searchsorted(ids, movie_ids), ids.size - 1)
    fr = np.where(ids[pos] == movie_ids, franchise[pos], -1)  # the task's movie positions' franchises
    seen, rel = task.seen.tocsr(), task.relevant.tocsr().copy()
    keep = np.zeros(rel.nnz, dtype=bool)
    for r in range(rel.shape[0]):
        own = fr[seen.indices[seen.indptr[r] : seen.indptr[r + 1]]]
        cols = rel.indices[rel.indptr[r] : rel.indptr[r + 1]]
        keep[rel.indptr[r] : rel.indptr[r + 1]] = (fr[cols] >= 0) & np.isin(fr[cols], own[own >= 0])
    rel.data = np.where(keep, rel.data, 0).astype(rel.data.dtype)
    rel.eliminate_zeros()
    return rel


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--ease", type=float, nargs="+", default=[500.0], help="EASE lambdas (ratio: first)")
    parser.add_argument("--blend", action="append", default=[], metavar="SOURCE,TOP,WEIGHT")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="bench-gap-") as tmp:
        params, _, inputs = _pipeline(args.data, Path(tmp), args.param)
        world = evaluated(inputs, params)
    lookup, train, task, model = world.lookup, world.train, world.task, world.model
    scorers = {
        "fmrec": model_scorer(model, lookup),
        **{f"EASE {lam:g}": fit_ease(train, 0, lam) for lam in args.ease},
        "popularity": popularity_scorer(np.asarray(lookup.movie_count)),
        **{
            f"fmrec + {b}": exp_neighbours.blend_from_spec(b, train, model.params, lookup) for b in args.blend
        },
    }
    print(f"{args.data} ({' '.join(args.param) or 'defaults'}), NDCG@{K} (recall@{K})")
    print("| part | users | relevant | " + " | ".join(scorers) + f" | fmrec / EASE {args.ease[0]:g} |")
    print("|---" * (len(scorers) + 4) + "|")
    n = np.diff(task.seen.indptr)
    edges = np.quantile(n, [0.25, 0.5, 0.75])
    quartile = np.searchsorted(edges, n, side="right")
    for q in range(4):
        rows = np.flatnonzero(quartile == q)
        if rows.size:
            print(line(f"train ratings {n[rows].min()}–{n[rows].max()}", subset(task, rows), scorers))
    print(line("all", task, scorers))
    siblings = franchise_relevant(args.data, np.asarray(lookup.movie_ids, dtype=np.int64), task)
    if siblings is not None:
        others = (task.relevant - siblings).tocsr()
        others.eliminate_zeros()
        every = np.arange(task.users.size)
        print(line("relevant: follow-ups of a train franchise", subset(task, every, siblings), scorers))
        print(line("relevant: the others", subset(task, every, others), scorers))
    return 0


if __name__ == "__main__":
    sys.exit(main())
