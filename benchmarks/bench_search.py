"""Exact cosine top-k: AMP's numpy and torch search against FAISS `IndexFlatIP`, same run.

    python benchmarks/bench_search.py --sizes 10000 100000 1000000 --dim 512 \
        --batches 1 16 256 --k 10 --out benchmarks/results

For each library size: random unit float32 vectors (fixed seed), then for each backend the
latency of single queries (p50/p99) and the throughput (QPS) of batches. Every result is
checked against an independent float64 reference: recall@k must be 1.0 or the run fails.

Recall is tie-aware. Every backend is exact, but float32 sums in a different order (FAISS's
own SIMD kernels, BLAS blockings) can differ in the last bit, so two rows whose true scores
are within rounding of the k-th may swap places across the boundary. A returned row counts
as correct when its float64 score is at least the reference's k-th score minus `--tol`;
the strict id-set overlap is reported too.

Writes `<out>/search.json` (figures plus machine and library versions) and `<out>/search.png`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.machine import cpu_model  # noqa: E402
from engine.index.topk import cosine_topk  # noqa: E402
from engine.index.topk_torch import cosine_topk_torch  # noqa: E402

Search = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=[10_000, 100_000, 1_000_000],
        help="library sizes (rows)",
    )
    p.add_argument("--dim", type=int, default=512, help="embedding dimension")
    p.add_argument(
        "--batches",
        type=int,
        nargs="+",
        default=[1, 16, 256],
        help="query batch sizes; 1 measures single-query latency",
    )
    p.add_argument("--k", type=int, default=10, help="neighbours per query")
    p.add_argument("--seed", type=int, default=0, help="seed of the random data")
    p.add_argument(
        "--single-queries",
        type=int,
        default=200,
        help="most single queries timed per backend and size",
    )
    p.add_argument(
        "--budget-s",
        type=float,
        default=5.0,
        help="time per backend, size and batch size, after which timing stops",
    )
    p.add_argument("--tol", type=float, default=1e-5, help="score tolerance of the recall check")
    p.add_argument(
        "--out",
        type=Path,
        default=REPO / "benchmarks" / "results",
        help="folder for search.json and search.png",
    )
    return p.parse_args(argv)


def machine_info() -> dict[str, object]:
    import faiss

    cpu = cpu_model()
    mem_gib = None
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        total = next(ln for ln in meminfo.read_text().splitlines() if ln.startswith("MemTotal"))
        mem_gib = round(int(total.split()[1]) / 2**20, 1)
    blas = np.show_config(mode="dicts").get("Build Dependencies", {}).get("blas", {})
    return {
        "cpu": cpu,
        "cores": len(os.sched_getaffinity(0)),
        "memory_gib": mem_gib,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numpy_blas": blas.get("name"),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "faiss": faiss.__version__,
        "faiss_threads": faiss.omp_get_max_threads(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def unit_rows(rng: np.random.Generator, n: int, dim: int, chunk: int = 65536) -> np.ndarray:
    """Random unit float32 rows, normalised in place chunk by chunk (no float64 copy)."""
    x = rng.standard_normal((n, dim), dtype=np.float32)
    for a in range(0, n, chunk):
        block = x[a : a + chunk]
        block /= np.linalg.norm(block, axis=1, keepdims=True)
    return x


def exact_reference(
    queries: np.ndarray, matrix: np.ndarray, k: int, chunk: int = 32768
) -> tuple[np.ndarray, np.ndarray]:
    """float64 top-k by a plain full sort per chunk: independent of the code under test."""
    q64 = queries.astype(np.float64)
    best_s = np.full((len(q64), 0), -np.inf)
    best_i = np.zeros((len(q64), 0), dtype=np.int64)
    for a in range(0, len(matrix), chunk):
        block = matrix[a : a + chunk].astype(np.float64)
        s = np.concatenate([best_s, q64 @ block.T], axis=1)
        rows = np.broadcast_to(np.arange(a, a + len(block)), (len(q64), len(block)))
        i = np.concatenate([best_i, rows], axis=1)
        order = np.argsort(-s, axis=1, kind="stable")[:, :k]
        best_s, best_i = np.take_along_axis(s, order, 1), np.take_along_axis(i, order, 1)
    return best_s, best_i


def recall(
    indices: np.ndarray,
    queries: np.ndarray,
    matrix: np.ndarray,
    ref_s: np.ndarray,
    ref_i: np.ndarray,
    tol: float,
) -> tuple[float, float]:
    """(tie-aware recall, strict id recall) of (q, k) results against the reference."""
    k = ref_i.shape[1]
    strict = np.mean([len(set(a) & set(b)) / k for a, b in zip(indices, ref_i, strict=True)])
    ok = 0
    for qi, row in enumerate(indices):
        valid = row[row >= 0]
        true = matrix[valid].astype(np.float64) @ queries[qi].astype(np.float64)
        ok += int(np.count_nonzero(true >= ref_s[qi, -1] - tol)) if len(set(valid)) == k else 0
    return ok / indices.size, float(strict)


def time_calls(
    search: Search, batches: list[np.ndarray], budget_s: float, min_calls: int
) -> tuple[list[float], list[np.ndarray]]:
    """Seconds per call, and each call's indices, until the batches or the budget run out."""
    times, results = [], []
    start = time.perf_counter()
    for i, q in enumerate(batches):
        t0 = time.perf_counter()
        _, idx = search(q)
        times.append(time.perf_counter() - t0)
        results.append(idx)
        if i + 1 >= min_calls and time.perf_counter() - start > budget_s:
            break
    return times, results


def backends(matrix: np.ndarray, k: int) -> dict[str, Search]:
    import faiss

    index = faiss.IndexFlatIP(matrix.shape[1])
    index.add(matrix)
    as_tensor = torch.from_numpy(matrix)  # shares memory: no copy
    cpu = torch.device("cpu")
    found: dict[str, Search] = {
        "numpy (AMP)": lambda q: cosine_topk(q, matrix, k),
        "torch-cpu (AMP)": lambda q: cosine_topk_torch(q, as_tensor, k, device=cpu),
        "faiss IndexFlatIP": lambda q: index.search(q, k),
    }
    if torch.cuda.is_available():
        gpu = torch.device("cuda")
        on_gpu = as_tensor.to(gpu)
        found["torch-cuda (AMP)"] = lambda q: cosine_topk_torch(q, on_gpu, k, device=gpu)
    return found


def bench_size(n: int, args: argparse.Namespace) -> list[dict[str, object]]:
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    matrix = unit_rows(rng, n, args.dim)
    pool = unit_rows(rng, max(max(args.batches), args.single_queries), args.dim)
    ref_s, ref_i = exact_reference(pool, matrix, args.k)
    print(
        f"n={n:,}: data and float64 reference in {time.perf_counter() - t0:.1f} s", file=sys.stderr
    )
    rows = []
    for name, search in backends(matrix, args.k).items():
        search(pool[:1])  # warm-up: first-touch of pages, thread pools, FAISS set-up
        for batch in args.batches:
            if batch == 1:
                calls = [pool[i : i + 1] for i in range(args.single_queries)]
                times, results = time_calls(search, calls, args.budget_s, min_calls=20)
            else:
                calls = [pool[:batch]] * 10
                times, results = time_calls(search, calls, args.budget_s, min_calls=2)
            got = np.concatenate(results)
            queries = np.concatenate(calls[: len(results)])
            ref_rows = np.arange(len(got)) % (len(pool) if batch == 1 else batch)
            rec, strict = recall(got, queries, matrix, ref_s[ref_rows], ref_i[ref_rows], args.tol)
            ms = np.array(times) * 1e3
            row = {
                "size": n,
                "backend": name,
                "batch": batch,
                "k": args.k,
                "calls": len(times),
                "p50_ms": float(np.percentile(ms, 50)),
                "p99_ms": float(np.percentile(ms, 99)),
                "qps": batch / float(np.median(times)),
                "recall": rec,
                "recall_ids": strict,
            }
            rows.append(row)
            print(
                f"  {name:18s} batch {batch:4d}: p50 {row['p50_ms']:9.2f} ms  "
                f"p99 {row['p99_ms']:9.2f} ms  {row['qps']:9.1f} q/s  "
                f"recall {rec:.4f} (ids {strict:.4f}, {len(times)} calls)",
                file=sys.stderr,
            )
    return rows


def plot(rows: list[dict[str, object]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    names = sorted({str(r["backend"]) for r in rows})
    batches = sorted({int(r["batch"]) for r in rows})
    for n_color, name in enumerate(names):
        color = f"C{n_color}"  # one colour per backend in both panels; line style per batch
        single = [r for r in rows if r["backend"] == name and r["batch"] == 1]
        if single:
            left.errorbar(
                [r["size"] for r in single],
                [r["p50_ms"] for r in single],
                yerr=[[0] * len(single), [r["p99_ms"] - r["p50_ms"] for r in single]],
                marker="o",
                capsize=3,
                color=color,
                label=name,
            )
        for batch, style in zip(
            [b for b in batches if b > 1], ["-", "--", ":", "-."], strict=False
        ):
            part = [r for r in rows if r["backend"] == name and r["batch"] == batch]
            right.plot(
                [r["size"] for r in part],
                [r["qps"] for r in part],
                style,
                marker="o",
                color=color,
                label=f"{name}, batch {batch}",
            )
    left.set(
        xscale="log",
        yscale="log",
        xlabel="library size (vectors)",
        ylabel="single-query latency, ms (p50, bar to p99)",
        title="Exact top-k latency",
    )
    right.set(
        xscale="log",
        yscale="log",
        xlabel="library size (vectors)",
        ylabel="queries / s",
        title="Exact top-k throughput (batched)",
    )
    left.legend(fontsize=8)
    right.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def table(rows: list[dict[str, object]]) -> str:
    lines = [
        "| vectors | backend | batch | p50 ms | p99 ms | QPS | recall@k (ids) |",
        "|---:|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['size']:,} | {r['backend']} | {r['batch']} | {r['p50_ms']:.2f} | "
            f"{r['p99_ms']:.2f} | {r['qps']:,.0f} | {r['recall']:.3f} "
            f"({r['recall_ids']:.3f}) |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    machine = machine_info()
    print(json.dumps(machine), file=sys.stderr)
    started = time.perf_counter()
    rows = [row for n in args.sizes for row in bench_size(n, args)]
    failed = [r for r in rows if r["recall"] < 1.0]
    report = {
        "machine": machine,
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "wall_s": round(time.perf_counter() - started, 1),
        "ok": not failed,
        "results": rows,
    }
    (args.out / "search.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(rows, args.out / "search.png")
    print(table(rows))
    if failed:
        where = [(r["size"], r["backend"], r["batch"]) for r in failed]
        print(f"FAILED: recall below 1.0 for {where}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
