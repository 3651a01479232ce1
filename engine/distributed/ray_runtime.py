"""Ray at the edge: connect or start, plan the actor pool, say who did what.

- `ray_session(address)` connects to a running cluster (`auto`, `host:6379`,
  `ray://host:10001`) or, without an address, starts a local instance with this machine's
  CPUs and no dashboard. It shuts down only what it started, and reuses a Ray already
  initialised in this process (tests start one per module).
- `plan_actors` turns the cluster's resources and the user's `--device`/actor count into an
  `ActorPlan`: one GPU per actor where the cluster has GPUs, CPU actors otherwise, with torch
  threads that do not oversubscribe the cores.
- `NodeTally` adds up what each node did (files, megapixels, busy and CPU seconds, actors),
  for the per-node lines of the final summary.
- `CrashOnce` kills the actor process that reaches a given file, once (a marker file makes it
  once-only across restarts): the seam the fault-tolerance test and failure drills use.

Ray is imported lazily: without it, `import_ray` raises an `OptionError` that says how to
install it.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Literal

from engine.errors import OptionError, TaskError

log = logging.getLogger(__name__)

LOCAL = "local"  # the address meaning "start a Ray instance on this machine"
INSTALL_HINT = "pip install '.[ray]' (or: pip install 'ray[data]')"

ActorDevice = Literal["cpu", "cuda"]


def import_ray() -> ModuleType:
    """The `ray` module, with Ray Data; an `OptionError` saying how to install it otherwise."""
    try:
        import ray
        import ray.data  # noqa: F401 - Ray Data ships in the `data` extra
    except ImportError as exc:
        raise OptionError(
            f"--ray needs Ray with Ray Data, which is not installed ({exc}): {INSTALL_HINT}"
        ) from exc
    return ray


@dataclass(frozen=True)
class ClusterResources:
    cpus: float
    gpus: float
    nodes: int


@contextmanager
def ray_session(
    address: str | None = None, *, num_cpus: int | None = None
) -> Iterator[ClusterResources]:
    """A connected Ray for the duration of the block, and the cluster's resources.

    `address` None or `local` starts a local instance with `num_cpus` (default: this
    machine's cores) and no dashboard; anything else is passed to `ray.init(address=...)`.
    """
    ray = import_ray()
    started = False
    if not ray.is_initialized():
        _start_or_connect(ray, address, num_cpus)
        started = True
    try:
        _quiet_ray_data(ray)
        yield cluster_resources()
    finally:
        if started:
            ray.shutdown()


def _start_or_connect(ray: ModuleType, address: str | None, num_cpus: int | None) -> None:
    if address in (None, "", LOCAL):
        ray.init(
            num_cpus=num_cpus or os.cpu_count() or 1,
            include_dashboard=False,
            logging_level=logging.WARNING,
        )
        return
    try:
        ray.init(address=address, logging_level=logging.WARNING)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise OptionError(
            f"cannot connect to the Ray cluster at {address!r} ({exc}): check the address "
            "(auto, host:6379 or ray://host:10001) and that the cluster runs the same Ray "
            "and Python versions; or give --ray alone to start a local instance"
        ) from exc


def _quiet_ray_data(ray: ModuleType) -> None:
    """The driver draws its own progress bar: Ray Data's bars and banners stay off."""
    with warnings.catch_warnings():
        # Ray 2.60 builds its default context through a setter that flags some of its own
        # defaults (use_push_based_shuffle, use_polars...) as deprecated; AMP sets none.
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="ray.data.context")
        context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    # Its one message says that the bars are off, which is the point.
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)


def cluster_resources() -> ClusterResources:
    ray = import_ray()
    total = ray.cluster_resources()
    alive = [n for n in ray.nodes() if n.get("Alive")]
    return ClusterResources(
        float(total.get("CPU", 0.0)), float(total.get("GPU", 0.0)), max(len(alive), 1)
    )


@dataclass(frozen=True)
class ActorPlan:
    """How many actors, what each reserves, and how each runs torch."""

    actors: int
    device: ActorDevice
    num_cpus: float
    num_gpus: float
    torch_threads: int | None  # None leaves torch's default (GPU actors)

    def remote_args(self) -> dict[str, float]:
        args = {"num_cpus": self.num_cpus}
        if self.num_gpus:
            args["num_gpus"] = self.num_gpus
        return args


def plan_actors(
    resources: ClusterResources, *, device_spec: str = "auto", actors: int | None = None
) -> ActorPlan:
    """`device_spec` auto takes GPU actors when the cluster has GPUs; cuda/cuda:N needs
    them (inside an actor the GPU Ray assigned is always cuda:0); cpu never asks for one.

    CPU actors default to one per core, each with torch threads = cores / actors, so the pool
    never runs more threads than there are cores.
    """
    spec = device_spec.strip().lower()
    if spec not in ("auto", "cpu") and not spec.startswith("cuda"):
        raise OptionError(f"unsupported device {device_spec!r} on Ray: use auto, cpu or cuda")
    if actors is not None and actors < 1:
        raise OptionError(f"the number of Ray actors must be >= 1, got {actors}")
    use_gpu = spec.startswith("cuda") or (spec == "auto" and resources.gpus >= 1)
    if use_gpu:
        if resources.gpus < 1:
            raise OptionError(
                f"--device {device_spec} was asked for but the Ray cluster has no GPU; "
                "use --device auto or cpu"
            )
        count = actors or int(resources.gpus)
        cpus_each = max(1.0, min(2.0, resources.cpus / count)) if resources.cpus else 0.0
        return ActorPlan(count, "cuda", cpus_each, 1.0, None)
    cpus = max(resources.cpus, 1.0)
    count = actors or int(cpus)
    threads = max(1, int(cpus) // count)
    # More actors than cores: fractional reservations, so every actor still gets scheduled.
    cpus_each = float(threads) if count <= cpus else cpus / count
    return ActorPlan(count, "cpu", cpus_each, 0.0, threads)


def set_torch_threads(threads: int | None) -> None:
    """Inside an actor: torch's intra-op threads (and one inter-op thread) per the plan."""
    if threads is None:
        return
    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set, or parallel work already ran in this process
        pass


@dataclass(frozen=True)
class WorkerIdentity:
    node_id: str
    hostname: str
    pid: int


def worker_identity() -> WorkerIdentity:
    """Who runs this code: the Ray node, its host name and this process."""
    ray = import_ray()
    return WorkerIdentity(
        ray.get_runtime_context().get_node_id(), socket.gethostname(), os.getpid()
    )


@dataclass(frozen=True)
class NodeFigures:
    """What one Ray node did in a run; `busy_s` adds up per-file times, `cpu_s` the actors'
    CPU time (threads included)."""

    node_id: str
    hostname: str
    actors: int
    files: int
    done: int  # files processed (enhanced, indexed), not skipped or failed
    megapixels: float
    busy_s: float
    cpu_s: float

    def to_dict(self) -> dict[str, object]:
        return {
            "node_id": self.node_id,
            "hostname": self.hostname,
            "actors": self.actors,
            "files": self.files,
            "done": self.done,
            "megapixels": round(self.megapixels, 4),
            "busy_seconds": round(self.busy_s, 4),
            "cpu_seconds": round(self.cpu_s, 4),
        }

    def describe(self) -> str:
        """One line for the summary table."""
        return (
            f"{self.hostname} ({self.node_id[:8]}): {self.actors} actor(s), {self.done}/"
            f"{self.files} files, {self.megapixels:.2f} MP, busy {self.busy_s:.1f} s, "
            f"CPU {self.cpu_s:.1f} s"
        )


@dataclass
class _NodeCount:
    hostname: str
    pids: set[int] = field(default_factory=set)
    files: int = 0
    done: int = 0
    megapixels: float = 0.0
    busy_s: float = 0.0
    cpu_s: float = 0.0


class NodeTally:
    """Per-node sums, fed one result row at a time on the driver."""

    def __init__(self) -> None:
        self._nodes: dict[str, _NodeCount] = {}

    def add(
        self,
        worker: WorkerIdentity,
        *,
        done: bool,
        megapixels: float = 0.0,
        seconds: float = 0.0,
        cpu_s: float = 0.0,
    ) -> None:
        count = self._nodes.setdefault(worker.node_id, _NodeCount(worker.hostname))
        count.pids.add(worker.pid)
        count.files += 1
        count.done += int(done)
        count.megapixels += megapixels
        count.busy_s += seconds
        count.cpu_s += cpu_s

    def figures(self) -> list[NodeFigures]:
        return [
            NodeFigures(
                node_id,
                c.hostname,
                len(c.pids),
                c.files,
                c.done,
                c.megapixels,
                c.busy_s,
                c.cpu_s,
            )
            for node_id, c in sorted(self._nodes.items(), key=lambda item: item[1].hostname)
        ]


@dataclass(frozen=True)
class CrashOnce:
    """Fault injection: the actor that reaches the file named `file_name` SIGKILLs itself,
    the first time only (`marker` is created exclusively just before). For tests and
    failure drills; never set in production runs."""

    file_name: str
    marker: Path

    def maybe_crash(self, source: str) -> None:
        if Path(source).name != self.file_name:
            return
        try:
            fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        os.kill(os.getpid(), signal.SIGKILL)


def run_failed(exc: BaseException) -> TaskError:
    """A Ray run that could not finish (retries exhausted, cluster lost), as an AmpError."""
    first_line = next(iter(str(exc).splitlines()), "")
    return TaskError(
        f"the Ray run failed ({type(exc).__name__}: {first_line}); "
        "outputs written so far are kept and a rerun resumes after them"
    )
