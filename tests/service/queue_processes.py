"""Child processes that use a queue store at the same time: the scripts they run, the same
for every store but for how the queue is opened (the `children` fixture, in conftest.py,
reaps them)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

Children = list[subprocess.Popen[str]]

# argv[1] names the store (a file or a DSN), argv[2] the file whose existence says "go".
_PRELUDE = """
import json, os, sys, time
from pathlib import Path
from engine.service.queue.types import NewTask
{open_queue}
go = Path(sys.argv[2])
print("ready", flush=True)
while not go.exists():  # start together, for the most contention
    time.sleep(0.005)
"""

_SUBMITTER = """
name, n, shared_keys = sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
created = []
for i in range(n):
    record, new = queue.submit(NewTask(file_path=f"/p/{name}-{i}.jpg", workflow="wf"))
    assert new
    created.append(record.task_id)
    if i < shared_keys:  # every process races for the same keys
        queue.submit(NewTask(file_path=f"/p/key-{i}.jpg", workflow="wf"), idempotency_key=f"k{i}")
queue.close()
print(json.dumps(created), flush=True)
"""

_CLAIMER = """
worker, log = sys.argv[3], Path(sys.argv[4])
with log.open("a") as out:
    while (task := queue.claim(worker, has_gpu=False, lease_s=60)) is not None:
        # Logged before completing: a second lease of the same task would show here.
        out.write(task.task_id + "\\n")
        out.flush()
        time.sleep(0.002)  # the work, outside any transaction: others claim meanwhile
        assert queue.heartbeat(task.task_id, worker, lease_s=60, progress=0.5)
        queue.complete(
            task.task_id, worker, output_path=None, output_metadata={}, resource_usage={}
        )
queue.close()
"""

_HOLDER = """
worker = sys.argv[3]
task = queue.claim(worker, has_gpu=False, lease_s=60)
print(task.task_id, flush=True)
while True:  # a worker busy with its task, heartbeating, until it is killed
    queue.heartbeat(task.task_id, worker, lease_s=60, progress=0.5)
"""


@dataclass(frozen=True)
class ChildScripts:
    submitter: str  # argv: store, go, name, count, shared keys -> prints the ids it created
    claimer: str  # argv: store, go, worker id, log file -> claims and completes until empty
    holder: str  # argv: store, go, worker id -> claims one task and heartbeats forever


def child_scripts(open_queue: str) -> ChildScripts:
    """The scripts, with `open_queue` (code binding `queue` from sys.argv[1]) in front."""
    prelude = _PRELUDE.format(open_queue=open_queue)
    return ChildScripts(prelude + _SUBMITTER, prelude + _CLAIMER, prelude + _HOLDER)
