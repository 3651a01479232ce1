"""Crash safety: an indexer stopped at any step leaves a consistent index, and a rerun finishes.

The steps of one `add_asset`: (create the file, for a recognizer's first face), write the
rows, write the header, fsync, record the faces, commit. Each test stops the writer at one
of them, by an exception in this process or by SIGKILL in a child process, then checks the
index from outside: a reader before repair, a writer after it, and a rerun to the end.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.index.matrix import HEADER_BYTES, EmbeddingMatrix
from engine.index.store import FaceIndex, matrix_file_name

REPO = Path(__file__).resolve().parents[2]

# The library both the child indexer and the checks here agree on: asset i has i % 4 faces.
LIBRARY = """
import hashlib

import numpy as np

from engine.faces.types import DetectedFace
from engine.index.types import AssetRecord

DIM = 8
RECOGNIZER = "test:rec"


def n_faces(i):
    return i % 4


def embeddings(i):
    x = np.random.default_rng(i).standard_normal((n_faces(i), DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def faces(i):
    marks = np.full((5, 2), i, dtype=np.float32)
    return [DetectedFace((i, j, i + 10.0, j + 10.0), marks, 0.9, "det") for j in range(n_faces(i))]


def record(i):
    content = f"content-{i}".encode()
    sha1 = hashlib.sha1(content).hexdigest()
    return AssetRecord(f"/photos/{i:04d}.jpg", len(content), 1000 + i, sha1, 64, 48)
"""

CHILD = (
    LIBRARY
    + """
import os
import signal
import sys

from engine.index.matrix import EmbeddingMatrix
from engine.index.store import FaceIndex

root, n, kill_at, kill_asset = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
state = {"asset": -1}


def die():
    os.kill(os.getpid(), signal.SIGKILL)


def trap(cls, name, when):
    original = getattr(cls, name)

    def wrapped(self, *args):
        armed = state["asset"] == kill_asset
        if armed and when == "before":
            die()
        if armed and when == "half":  # a torn write: half the bytes reach the file
            f, offset, data = args
            original(self, f, offset, data[: len(data) // 2])
            f.flush()
            die()
        result = original(self, *args)
        if armed:
            die()
        return result

    setattr(cls, name, wrapped)


POINTS = {
    "create": (EmbeddingMatrix, "create", "after"),
    "half-rows": (EmbeddingMatrix, "_write_rows", "half"),
    "rows": (EmbeddingMatrix, "_write_rows", "after"),
    "header": (EmbeddingMatrix, "_write_header", "after"),
    "fsync": (EmbeddingMatrix, "_sync", "after"),
    "records": (FaceIndex, "_record_faces", "after"),
    "commit": (FaceIndex, "_commit", "before"),
    "committed": (FaceIndex, "_commit", "after"),
}
if kill_at in POINTS:
    trap(*POINTS[kill_at])

with FaceIndex(root) as index:
    for i in range(n):
        state["asset"] = i
        rec = record(i)
        if not index.needs_indexing(rec.path, rec.size, rec.mtime_ns, lambda: rec.sha1, RECOGNIZER):
            continue
        index.add_asset(rec, faces(i), embeddings(i), RECOGNIZER)
        print(i, flush=True)
"""
)

lib: dict[str, object] = {}
exec(LIBRARY, lib)  # the same definitions the child uses
DIM, RECOGNIZER = lib["DIM"], lib["RECOGNIZER"]
n_faces, embeddings, faces, record = lib["n_faces"], lib["embeddings"], lib["faces"], lib["record"]


def child(root: Path, n: int, kill_at: str = "none", kill_asset: int = -1) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(root), str(n), kill_at, str(kill_asset)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_child(
    root: Path, n: int, kill_at: str = "none", kill_asset: int = -1
) -> tuple[int, list[int]]:
    proc = child(root, n, kill_at, kill_asset)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode in (0, -signal.SIGKILL), err
    return proc.returncode, [int(line) for line in out.split()]


def check_consistent(root: Path, n: int) -> int:
    """Assert the index holds a prefix of the library, exactly; return its length."""
    with FaceIndex(root, readonly=True) as reader:  # before any repair: debris is invisible
        before = reader.stats()
        probe = [reader.search(e, RECOGNIZER, k=1) for e in embeddings(2)] if before.faces else []
    with FaceIndex(root) as index:  # the writer opens and repairs
        stats = index.stats()
        done = [i for i in range(n) if index.asset(record(i).path) is not None]
        assert done == list(range(len(done)))  # the loop is sequential: a prefix
        total = sum(n_faces(i) for i in done)
        assert stats.assets == before.assets == len(done)
        assert stats.faces == before.faces == total
        if total:
            rec = stats.recognizers[RECOGNIZER]
            assert (rec.rows, rec.dead_rows) == (total, 0)  # debris was overwritten or cut
            path = root / matrix_file_name(RECOGNIZER)
            assert path.stat().st_size == HEADER_BYTES + total * DIM * 4
            assert np.load(path, mmap_mode="r").shape == (total, DIM)
        for i in done:
            stored = index.faces_of(record(i).path)
            assert [f.box_xyxy for f in stored] == [f.box_xyxy for f in faces(i)]
            for face, e in zip(stored, embeddings(i), strict=True):
                hit = index.search(e, RECOGNIZER, k=1)[0]  # its own row, not someone's debris
                assert hit.face_id == face.face_id and hit.score == pytest.approx(1, abs=1e-5)
        for hits in probe:
            assert hits[0].path == record(2).path
    return len(done)


KILL_POINTS = ["half-rows", "rows", "header", "fsync", "records", "commit", "committed"]


@pytest.mark.parametrize("kill_at", ["create", *KILL_POINTS])
def test_sigkill_at_each_step_then_rerun(tmp_path: Path, kill_at: str) -> None:
    root, n = tmp_path / "idx", 12
    # Asset 1 holds the recognizer's first face (the file is created); asset 6 holds two.
    kill_asset = 1 if kill_at == "create" else 6
    code, printed = run_child(root, n, kill_at, kill_asset)
    assert code == -signal.SIGKILL
    committed = kill_asset + 1 if kill_at == "committed" else kill_asset
    assert check_consistent(root, n) == committed
    code, printed = run_child(root, n)
    assert code == 0 and printed == list(range(committed, n))  # skips what was committed
    assert check_consistent(root, n) == n


def test_sigkill_at_random_moments_then_rerun(tmp_path: Path) -> None:
    root, n = tmp_path / "idx", 400
    done = 0
    for _ in range(2):
        proc = child(root, n)
        assert proc.stdout is not None
        for _line in range(25):  # let it commit some, then kill it wherever it is
            assert proc.stdout.readline(), proc.stderr.read() if proc.stderr else ""
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGKILL
        now = check_consistent(root, n)
        assert done + 25 <= now < n
        done = now
    code, printed = run_child(root, n)
    assert code == 0 and printed == list(range(done, n))
    assert check_consistent(root, n) == n


class Boom(Exception):
    pass


STEPS = {
    "create": (EmbeddingMatrix, "create"),
    "rows": (EmbeddingMatrix, "_write_rows"),
    "header": (EmbeddingMatrix, "_write_header"),
    "fsync": (EmbeddingMatrix, "_sync"),
    "records": (FaceIndex, "_record_faces"),
    "commit": (FaceIndex, "_commit"),
}


@pytest.mark.parametrize("step", STEPS)
def test_failure_at_each_step_rolls_back_and_the_writer_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    """An exception (disk full, I/O error) right after the step, or instead of the commit:
    nothing of that asset stays, and the same writer carries on over the debris."""
    root, n = tmp_path / "idx", 10
    cls, name = STEPS[step]
    original = getattr(cls, name)
    fail_at = 1 if step == "create" else 6
    current = {"asset": -1}

    def failing(self, *args):
        if step == "commit" and current["asset"] == fail_at:
            raise Boom(step)  # the commit itself fails
        original(self, *args)
        if current["asset"] == fail_at:
            raise Boom(step)

    monkeypatch.setattr(cls, name, failing)
    with FaceIndex(root) as index:
        for i in range(n):
            current["asset"] = i
            if i == fail_at:
                with pytest.raises(Boom):
                    index.add_asset(record(i), faces(i), embeddings(i), RECOGNIZER)
                assert index.asset(record(i).path) is None
                assert index.stats().faces == sum(n_faces(j) for j in range(i))
                current["asset"] = -1  # the retry succeeds
            index.add_asset(record(i), faces(i), embeddings(i), RECOGNIZER)
    monkeypatch.undo()
    assert check_consistent(root, n) == n
