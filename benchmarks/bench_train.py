"""Trainer benchmarks: throughput, the seed's 30-epoch run, accuracy vs logistic regression, a PyTorch peer,
memory on 25M ratings, and the ml-100k fidelity run.

Data: `fmrec.data.synth` (ml-100k's shape, planted rank-8 model) through the real preprocess step
(pipeline/steps/preprocess.py, ua split, label rating >= 4), read back with the recordIO codec. Sections:

    .venv/bin/python benchmarks/bench_train.py                      # throughput, seed, accuracy, peer
    .venv/bin/python benchmarks/bench_train.py --section memory     # 25M ratings through the twin (~2 min)
    .venv/bin/python benchmarks/bench_train.py --section fidelity --ml100k DIR   # real ua.base/ua.test
    nice .venv/bin/python benchmarks/bench_train.py --section default   # default objective: 2 shapes

The PyTorch peer needs `pip install -r requirements-bench.txt`; without torch it is skipped with a notice.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from fmrec.model.hyperparameters import RECOMMENDED

SEED_HP = {
    "num_factors": "64",
    "predictor_type": "binary_classifier",
    "epochs": "30",
    "mini_batch_size": "200",
}
FIDELITY_HP = {
    "num_factors": "64",
    "predictor_type": "binary_classifier",
    "epochs": "100",
    "mini_batch_size": "1000",
}
RECOMMENDED_HP = {"predictor_type": "binary_classifier", **RECOMMENDED}
SAGEMAKER_ML100K = {"accuracy": 0.6931, "cross_entropy": 0.5785}


def prepare(work: Path, ratings: int = 100_000) -> Path:
    """Synthetic ml-100k-shaped ratings, preprocessed into recordIO channels; cached under `work`."""
    from fmrec.data.synth import SynthConfig, write_synth
    from fmrec.features.options import PreprocessConfig
    from fmrec.stages.preprocess import run

    prep = work / f"prep-{ratings}"
    if not (prep / "manifest" / "manifest.json").is_file():
        raw = work / f"synth-{ratings}"
        if not raw.is_dir():
            write_synth(raw, SynthConfig(ratings=ratings))
        run(raw, prep, PreprocessConfig())
    return prep


def load(prep: Path) -> tuple[Any, Any, Any, Any, int]:
    from fmrec.codec.reader import read_spmatrix

    X, y = read_spmatrix(prep / "train")
    Xt, yt = read_spmatrix(prep / "test")
    dim = json.loads((prep / "manifest" / "manifest.json").read_text())["feature_dim"]
    return X, y, Xt, yt, int(dim)


def _fmt(m: dict[str, float]) -> str:
    return ", ".join(f"{k} {m[k]:.4f}" for k in ("accuracy", "cross_entropy", "auc") if k in m)


def _timed(fn: Any) -> tuple[Any, float, float]:
    """(result, wall seconds, CPU seconds of this process). On shared cores the CPU time is what the work
    costs on one uncontended core; the wall time also counts waiting for other jobs."""
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w0, time.process_time() - c0


def bench_throughput(X: Any, y: Any, dim: int, epochs: int = 10) -> None:
    from fmrec.model.trainer import train

    hp = {"feature_dim": str(dim), "num_factors": "64", "predictor_type": "binary_classifier",
          "epochs": str(epochs), "mini_batch_size": "1000"}  # fmt: skip
    train(X[:2000], y[:2000], {**hp, "epochs": "1"})  # JIT warm-up (cached on disk after the first run)
    (_, history), wall, cpu = _timed(lambda: train(X, y, hp))
    n = X.shape[0] * epochs
    best = max(h["samples_per_second"] for h in history)
    print(f"throughput  k=64 batch=1000, {X.shape[0]} rows x {epochs} epochs, 1 thread:")
    print(f"throughput  {n / cpu:,.0f} samples per CPU-second; wall {n / wall:,.0f} samples/s "
          f"(best epoch {best:,.0f}); goal >= 1,000,000")  # fmt: skip


def bench_seed(X: Any, y: Any, Xt: Any, yt: Any, dim: int, prep: Path) -> dict[str, float]:
    from fmrec.model.trainer import train

    hp = {"feature_dim": str(dim), **SEED_HP}
    (_, history), wall, cpu = _timed(lambda: train(X, y, hp, test=(Xt, yt)))
    print(f"seed run    30 epochs, k=64, batch=200, test metrics every epoch: train() {cpu:.2f} CPU-s, "
          f"{wall:.2f} s wall; goal <= 3 s")  # fmt: skip
    # the same run end to end through the training-job twin: read recordIO, train, write model.tar.gz
    from twins.training.job import run_training

    with tempfile.TemporaryDirectory() as tmp:
        channels = {"train": prep / "train", "test": prep / "test"}
        _, wall, cpu = _timed(lambda: run_training(hp, channels, Path(tmp), Path(tmp)))
    print(f"seed run    through the training-job twin (read + train + write artifact): {cpu:.2f} CPU-s, "
          f"{wall:.2f} s wall")  # fmt: skip
    return history[-1]["test"]


def logistic_baseline(X: Any, y: Any, Xt: Any, yt: Any) -> dict[str, float]:
    from sklearn.linear_model import LogisticRegression

    from fmrec.model.metrics import binary_metrics

    lr = LogisticRegression(C=1.0, max_iter=2000).fit(X, y)
    return binary_metrics(yt, lr.predict_proba(Xt)[:, 1])


def bench_accuracy(X: Any, y: Any, Xt: Any, yt: Any, dim: int, seed_metrics: dict[str, float]) -> None:
    from fmrec.model.trainer import train

    base = logistic_baseline(X, y, Xt, yt)
    _, hist = train(X, y, {"feature_dim": str(dim), **RECOMMENDED_HP}, test=(Xt, yt))
    rec = hist[-1]["test"]
    print(f"accuracy    biases-only logistic regression (sklearn, C=1): {_fmt(base)}")
    for name, m in (
        ("seed hyperparameters (64/30/200, SageMaker defaults)", seed_metrics),
        ("recommended", rec),
    ):
        d_auc, d_ll = m["auc"] - base["auc"], m["cross_entropy"] - base["cross_entropy"]
        print(f"accuracy    FM, {name}: {_fmt(m)}; AUC {d_auc:+.4f}, log loss {d_ll:+.4f} vs LR")
    print(f"accuracy    (recommended = {', '.join(f'{k}={v}' for k, v in RECOMMENDED_HP.items())})")


def torch_fm(
    X: Any, y: Any, Xt: Any, yt: Any, dim: int, k: int, epochs: int, batch: int
) -> tuple[dict[str, float], float]:
    """A straightforward PyTorch FM: EmbeddingBag sums, dense Adam (lr 1e-3). Benchmark-only."""
    import torch

    from fmrec.model.metrics import binary_metrics

    torch.manual_seed(0)
    # One thread, like fmrec's kernel: on these shared cores two OpenMP threads spin and run ~5x slower.
    torch.set_num_threads(1)

    class FM(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w0 = torch.nn.Parameter(torch.zeros(1))
            self.w = torch.nn.EmbeddingBag(dim, 1, mode="sum")
            self.V = torch.nn.EmbeddingBag(dim, k, mode="sum")
            torch.nn.init.normal_(self.w.weight, 0, 0.01)
            torch.nn.init.normal_(self.V.weight, 0, 0.01)

        def forward(self, idx: Any, offsets: Any) -> Any:
            s = self.V(idx, offsets)
            sq = torch.nn.functional.embedding_bag(idx, self.V.weight.pow(2), offsets, mode="sum")
            return self.w0 + self.w(idx, offsets).squeeze(1) + 0.5 * (s.pow(2) - sq).sum(1)

    def tensors(M: Any) -> tuple[Any, Any]:
        return torch.from_numpy(M.indices.astype(np.int64)), torch.from_numpy(M.indptr[:-1].astype(np.int64))

    # every one-hot row has the same number of keys: gather a batch's keys without slicing the CSR
    nnz = int(X.indptr[1])
    assert np.all(np.diff(X.indptr) == nnz), "the peer expects the same number of keys in every row"
    keys = torch.from_numpy(X.indices.astype(np.int64).reshape(-1, nnz))

    model = FM()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    n = X.shape[0]
    labels = torch.from_numpy(np.asarray(y, np.float32))
    gen = np.random.default_rng(0)
    t0 = time.perf_counter()
    for _ in range(epochs):
        order = gen.permutation(n)
        for s in range(0, n, batch):
            rows = torch.from_numpy(order[s : s + batch])
            idx = keys[rows].reshape(-1)
            off = torch.arange(0, idx.numel(), nnz)
            opt.zero_grad()
            loss = loss_fn(model(idx, off), labels[rows])
            loss.backward()
            opt.step()
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        idx, off = tensors(Xt)
        p = torch.sigmoid(model(idx, off)).numpy()
    return binary_metrics(yt, p), n * epochs / seconds


def bench_peer(X: Any, y: Any, Xt: Any, yt: Any, dim: int) -> None:
    try:
        import torch  # noqa: F401
    except ImportError:
        print("peer        SKIPPED: PyTorch is not installed (pip install -r requirements-bench.txt)")
        return
    from fmrec.model.trainer import train

    epochs, batch = 30, 1000
    ours_hp = {
        "feature_dim": str(dim),
        **RECOMMENDED_HP,
        "epochs": str(epochs),
        "mini_batch_size": str(batch),
    }
    from fmrec.model import fm
    from fmrec.model.metrics import binary_metrics

    (params, _), _, ours_cpu = _timed(lambda: train(X, y, ours_hp))
    ours_rate = X.shape[0] * epochs / ours_cpu
    ours = binary_metrics(yt, fm.predict(params, Xt, "binary_classifier"))
    (peer, _), _, peer_cpu = _timed(lambda: torch_fm(X, y, Xt, yt, dim, 64, epochs, batch))
    peer_rate = X.shape[0] * epochs / peer_cpu
    print(f"peer        k=64, {epochs} epochs, batch {batch}, both in this process, per CPU-second:")
    print(f"peer        fmrec (recommended lrs)         {ours_rate:,.0f} samples/s; {_fmt(ours)}")
    print(f"peer        PyTorch EmbeddingBag+Adam 1e-3  {peer_rate:,.0f} samples/s; {_fmt(peer)}")
    print(f"peer        speed ratio fmrec / PyTorch: {ours_rate / peer_rate:.1f}x")


def _memory_child(root: str) -> None:
    from twins.training.job import run_training_job

    rc = run_training_job(root)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"rc": rc, "peak_rss": peak}))


def bench_memory(work: Path, ratings: int = 25_000_000) -> None:
    """ml-25m's shape (162,541 users, 59,047 movies, 25M ratings), written as 10 recordIO shards."""
    import scipy.sparse as sp

    from fmrec.codec.writer import write_spmatrix_file

    n_users, n_items, shards = 162_541, 59_047, 10
    dim = n_users + n_items
    root = work / f"mem-{ratings}"
    train_dir = root / "input" / "data" / "train"
    if not (root / "ready").exists():
        rng = np.random.default_rng(0)
        U = rng.normal(0, 0.5, (n_users, 8)).astype(np.float32)
        V = rng.normal(0, 0.5, (n_items, 8)).astype(np.float32)
        pop = 1.0 / (np.arange(n_items) + 10.0)
        pop /= pop.sum()
        t0 = time.perf_counter()
        per = ratings // shards
        for s in range(shards):
            u = rng.integers(0, n_users, per)
            i = rng.choice(n_items, per, p=pop)
            logit = np.einsum("ij,ij->i", U[u], V[i])
            y = (rng.random(per) < 1 / (1 + np.exp(-logit))).astype(np.float32)
            cols = np.stack([u, n_users + i], 1).ravel().astype(np.int32)
            X = sp.csr_matrix(
                (np.ones(2 * per, np.float32), cols, np.arange(0, 2 * per + 1, 2)), shape=(per, dim)
            )
            write_spmatrix_file(train_dir / f"part-{s:05d}.pbr", X, y)
        (root / "input" / "config").mkdir(parents=True, exist_ok=True)
        (root / "ready").write_text("")
        print(f"memory      wrote {ratings:,} rows in {shards} shards in {time.perf_counter() - t0:.0f} s")
    hp = {"feature_dim": str(dim), "num_factors": "64", "predictor_type": "binary_classifier",
          "epochs": "1", "mini_batch_size": "1000"}  # fmt: skip
    (root / "input" / "config" / "hyperparameters.json").write_text(json.dumps(hp))
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, __file__, "--memory-child", str(root)], capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - t0
    result = json.loads(out.stdout.strip().splitlines()[-1])
    size = sum(f.stat().st_size for f in train_dir.iterdir())
    metrics = json.loads((root / "output" / "data" / "metrics.json").read_text())
    peak, rc = result["peak_rss"] / 2**30, result["rc"]
    read_s, train_s = metrics["read_seconds"], metrics["train_seconds"]
    print(
        f"memory      {ratings:,} ratings ({size / 2**30:.2f} GiB recordIO), feature_dim {dim:,}, k=64, "
        "1 epoch"
    )
    print(f"memory      through the twin: peak RSS {peak:.2f} GiB (goal <= 4 GiB), exit code {rc}")
    print(f"memory      {seconds:.0f} s wall: read {read_s:.0f} s, train {train_s:.0f} s")


SHAPES = {"ml-100k": (943, 1682, 100_000), "9k": (671, 9000, 100_004)}  # users, movies, ratings


def prepare_default(work: Path, shape: str) -> Path:
    """Synthetic data of a shape through preprocess with the default objective (today's defaults, whatever
    they are: ranking rows with history columns); cached under `work`."""
    from fmrec.data.synth import SynthConfig, write_synth
    from fmrec.features.options import PreprocessConfig
    from fmrec.stages.preprocess import run

    users, items, ratings = SHAPES[shape]
    prep = work / f"default-{shape}"
    if not (prep / "manifest" / "manifest.json").is_file():
        raw = work / f"synth-{shape}"
        if not raw.is_dir():
            write_synth(raw, SynthConfig(users=users, items=items, ratings=ratings))
        run(raw, prep, PreprocessConfig())
    return prep


def profile_epoch(X: Any, y: Any, hp: dict[str, str]) -> dict[str, float]:
    """CPU seconds of one epoch's three kernel passes (index the batch by feature, forward, backward + Adam),
    called one batch at a time on one thread."""
    import numba

    from fmrec.model import kernels
    from fmrec.model.hyperparameters import parse_hyperparameters
    from fmrec.model.trainer import init_params

    parsed = parse_hyperparameters(hp)
    p = init_params(parsed)
    D, k, bs = parsed.feature_dim, parsed.num_factors, parsed.mini_batch_size
    z = np.zeros
    w, V = p.w.copy(), p.V.copy()
    m_w, v_w, m_V, v_V = z(D, np.float32), z(D, np.float32), z((D, k), np.float32), z((D, k), np.float32)
    sc = kernels.new_scratch(D, k, bs, bs * int(np.diff(X.indptr).max()), 1)
    indptr = X.indptr.astype(np.int64)
    order = np.random.default_rng(0).permutation(X.shape[0]).astype(np.int32)
    f32 = np.float32
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    out = {"index": 0.0, "forward": 0.0, "backward + Adam": 0.0, "touched per batch": 0.0}
    args = (indptr, X.indices, X.data, order)
    slot = (sc.seen[0], sc.touched[0], sc.qstart[0], sc.occ_row[0], sc.occ_x[0])
    for rep in range(2):  # the first compiles (or loads the cache)
        out = dict.fromkeys(out, 0.0)
        for start in range(0, X.shape[0], bs):
            stop = min(start + bs, X.shape[0])
            c0 = time.process_time()
            nt = kernels.index_batch(*args, start, stop, *slot)
            c1 = time.process_time()
            kernels.forward(y, order, start, stop, True, p.w0, w, V, nt, *slot[1:], sc)
            c2 = time.process_time()
            kernels.step_features(nt, *slot[1:], sc.g, sc.xv, sc.acc, w, V,
                                  m_w, v_w, m_V, v_V, f32(1e-3), f32(1e-3), f32(1e-4), f32(1e-4), f32(-1),
                                  f32(1e-8), f32(1 / bs))  # fmt: skip
            c3 = time.process_time()
            out["index"] += c1 - c0
            out["forward"] += c2 - c1
            out["backward + Adam"] += c3 - c2
            out["touched per batch"] += nt / -(-X.shape[0] // bs)
        if rep == 0:
            w, V = p.w.copy(), p.V.copy()
    numba.set_num_threads(before)
    return out


def bench_default(work: Path) -> None:
    """TrainModel on the default objective through the training-job twin: read + train + artifact, both
    shapes; then one epoch split into its kernel passes."""
    from fmrec.codec.reader import read_spmatrix
    from fmrec.model.trainer import training_threads
    from fmrec.stages import evaluate as evaluate_step
    from twins.training.job import run_training

    for shape in SHAPES:
        prep = prepare_default(work, shape)
        dim = json.loads((prep / "manifest" / "manifest.json").read_text())["feature_dim"]
        hp = {"feature_dim": str(dim), **RECOMMENDED_HP}
        threads = training_threads()
        with tempfile.TemporaryDirectory() as tmp:
            channels = {"train": prep / "train", "test": prep / "test"}
            doc, wall, cpu = _timed(lambda: run_training(hp, channels, Path(tmp), Path(tmp)))  # noqa: B023
            # EvaluateModel's work on this model (after reading its inputs): the baselines, scores, ranking
            inputs = evaluate_step.read_processed(Path(tmp) / "model.tar.gz", prep)
            _, ev_wall, ev_cpu = _timed(lambda: evaluate_step.evaluate(inputs))  # noqa: B023
        X, y = read_spmatrix(prep / "train")
        test = doc["history"][-1]["test"]
        width = X.nnz / X.shape[0]
        print(f"default     {shape}: {X.shape[0]:,} rows x {width:.0f} columns, feature_dim {dim:,}, "
              f"{hp['epochs']} epochs, batch {hp['mini_batch_size']}, k {hp['num_factors']}, "
              f"{threads} thread(s)")  # fmt: skip
        print(f"default     {shape}: TrainModel twin {wall:.1f} s wall, {cpu:.1f} CPU-s (read "
              f"{doc['read_seconds']:.1f} s, train {doc['train_seconds']:.1f} s); test "
              f"AUC {test['auc']:.4f}, log loss {test['cross_entropy']:.4f}; "
              f"load {os.getloadavg()[0]:.1f}")  # fmt: skip
        print(f"default     {shape}: EvaluateModel's evaluate() {ev_wall:.1f} s wall, {ev_cpu:.1f} CPU-s")
        prof = profile_epoch(X, y, hp)
        total = sum(v for name, v in prof.items() if name != "touched per batch")
        parts = ", ".join(
            f"{n} {v:.2f} s ({v / total:.0%})" for n, v in prof.items() if n != "touched per batch"
        )
        print(f"default     {shape}: one epoch, 1 thread, {total:.2f} CPU-s: {parts}; "
              f"{prof['touched per batch']:,.0f} feature rows touched per batch")  # fmt: skip


def bench_fidelity(ml100k: Path | None, work: Path) -> None:
    cmd = (
        "fmrec preprocess --data-dir ml-100k --out prep --split ua && "
        "fmrec train --channels prep --model-dir fm --hp num_factors=64 "
        "--hp predictor_type=binary_classifier --hp epochs=100 --hp mini_batch_size=1000"
    )
    print(f"fidelity    one line, for anyone with ml-100k: {cmd}")
    if ml100k is None:
        print(
            "fidelity    (pass --ml100k DIR to run it here; SageMaker reported accuracy 0.693, "
            "cross entropy 0.579)"
        )
        return
    from fmrec.features.options import PreprocessConfig
    from fmrec.stages.preprocess import run

    prep = work / "prep-ml100k"
    if not prep.is_dir():
        run(ml100k, prep, PreprocessConfig(split="ua"))
    from fmrec.model.trainer import train

    X, y, Xt, yt, dim = load(prep)
    _, hist = train(X, y, {"feature_dim": str(dim), **FIDELITY_HP}, test=(Xt, yt))
    m = hist[-1]["test"]
    sm = SAGEMAKER_ML100K
    print(f"fidelity    ml-100k ua, 64/100/1000: {_fmt(m)}")
    print(f"fidelity    SageMaker reported accuracy {sm['accuracy']}, cross entropy {sm['cross_entropy']}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sections = ["all", "throughput", "seed", "accuracy", "peer", "memory", "fidelity", "default"]
    parser.add_argument("--section", choices=sections, default="all")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "fmrec-bench-train")
    parser.add_argument(
        "--ml100k", type=Path, help="a folder with the real ua.base / ua.test (u.data, u.item...)"
    )
    parser.add_argument("--memory-ratings", type=int, default=25_000_000)
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        _memory_child(args.memory_child)
        return
    args.work.mkdir(parents=True, exist_ok=True)
    load_avg = os.getloadavg()[0]
    print(f"# {os.cpu_count()} cores, load average {load_avg:.1f} at start (other jobs share the cores)")
    if args.section == "memory":
        bench_memory(args.work, args.memory_ratings)
        return
    if args.section == "fidelity":
        bench_fidelity(args.ml100k, args.work)
        return
    if args.section == "default":
        bench_default(args.work)
        return
    prep = prepare(args.work)
    X, y, Xt, yt, dim = load(prep)
    if args.section in ("all", "throughput"):
        bench_throughput(X, y, dim)
    if args.section in ("all", "seed", "accuracy"):
        seed_metrics = bench_seed(X, y, Xt, yt, dim, prep)
        if args.section in ("all", "accuracy"):
            bench_accuracy(X, y, Xt, yt, dim, seed_metrics)
    if args.section in ("all", "peer"):
        bench_peer(X, y, Xt, yt, dim)
    if args.section == "all":
        bench_fidelity(args.ml100k, args.work)


if __name__ == "__main__":
    main()
