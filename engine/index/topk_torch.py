"""Exact cosine top-k with torch, for a CUDA device (it also runs on the CPU).

The same algorithm and the same total order as `topk.cosine_topk` (score descending, ties to
the lower row index), so the two agree exactly wherever their float32 products agree. The
matrix may be a numpy array or memmap (streamed to the device block by block) or a tensor
already on the device (the fast path on a GPU: upload once, search many times).
"""

from __future__ import annotations

import numpy as np
import torch

from engine.index.topk import (
    DEFAULT_BLOCK_ROWS,
    DEFAULT_QUERY_BLOCK,
    check_topk_inputs,
    live_count,
)


def cosine_topk_torch(
    queries: np.ndarray,
    matrix: np.ndarray | torch.Tensor,
    k: int,
    *,
    device: torch.device,
    block_rows: int = DEFAULT_BLOCK_ROWS,
    query_block: int = DEFAULT_QUERY_BLOCK,
    exclude: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """As `topk.cosine_topk`: (scores (q, k'), indices (q, k')) as numpy, computed on `device`."""
    q_np = check_topk_inputs(queries, tuple(matrix.shape), k, exclude)
    n = int(matrix.shape[0])
    k_out = min(k, live_count(n, exclude))
    q_all = torch.from_numpy(q_np).to(device)
    n_q = q_all.shape[0]
    if k_out == 0:
        return np.empty((n_q, 0), np.float32), np.empty((n_q, 0), np.int64)
    dead_all = None if exclude is None else torch.from_numpy(np.asarray(exclude, bool)).to(device)
    sizes = [min(query_block, n_q - a) for a in range(0, n_q, query_block)]
    running = [
        (
            torch.empty((size, 0), dtype=torch.float32, device=device),
            torch.empty((size, 0), dtype=torch.int64, device=device),
        )
        for size in sizes
    ]
    with torch.inference_mode():
        for start in range(0, n, block_rows):
            block = _block_on_device(matrix, start, start + block_rows, device)
            dead = None if dead_all is None else dead_all[start : start + block.shape[0]]
            for j, a in enumerate(range(0, n_q, query_block)):
                scores = q_all[a : a + query_block] @ block.T
                scores = torch.nan_to_num(scores, nan=float("-inf"))
                if dead is not None:
                    scores[:, dead] = float("-inf")
                cand_s, cand_c = _block_topk(scores, k_out)
                running[j] = _merge(*running[j], cand_s, cand_c + start, k_out)
        scores = torch.cat([s for s, _ in running]).cpu().numpy()
        indices = torch.cat([i for _, i in running]).cpu().numpy()
    indices[np.isneginf(scores)] = -1
    return scores, indices


def _block_on_device(
    matrix: np.ndarray | torch.Tensor, start: int, stop: int, device: torch.device
) -> torch.Tensor:
    if isinstance(matrix, torch.Tensor):
        return matrix[start:stop].to(device=device, dtype=torch.float32)
    block = matrix[start:stop]
    # torch refuses (with a warning) to wrap a read-only array such as a mode-'r' memmap;
    # copy that block rather than silence a warning that would be right elsewhere.
    if not block.flags.writeable or not block.flags.c_contiguous:
        block = np.array(block, order="C")
    return torch.from_numpy(block).to(device=device, dtype=torch.float32)


def _block_topk(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k best columns per row, ties to the lower column, in column order (unsorted)."""
    rows, n = scores.shape
    if k >= n:
        cols = torch.arange(n, device=scores.device).expand(rows, n)
        return scores, cols
    kth = torch.topk(scores, k, dim=1, sorted=True).values[:, k - 1 :]
    take = scores >= kth
    tied = torch.nonzero(take.sum(dim=1) > k).flatten()
    if tied.numel():
        sub = scores[tied]
        above = sub > kth[tied]
        equal = sub == kth[tied]
        room = k - above.sum(dim=1, keepdim=True)
        take[tied] = above | (equal & (torch.cumsum(equal, dim=1) <= room))
    cols = torch.nonzero(take)[:, 1].reshape(rows, k)
    return torch.gather(scores, 1, cols), cols


def _merge(
    best_s: torch.Tensor, best_i: torch.Tensor, cand_s: torch.Tensor, cand_i: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    # Candidates follow every running index, in index order: a stable sort keeps ties by index.
    s = torch.cat([best_s, cand_s], dim=1)
    i = torch.cat([best_i, cand_i], dim=1)
    order = torch.sort(s, dim=1, descending=True, stable=True).indices[:, :k]
    return torch.gather(s, 1, order), torch.gather(i, 1, order)
