"""What a run cost, measured: CPU time, peak memory, GPU utilisation, bytes read and written.

- `cpu_seconds`: user + system CPU time of this process and its finished children during the run.
- `peak_rss_mb`: the process's peak resident set size (the kernel's high-water mark), in MiB.
- `memory_mb_seconds`: the integral over the run of the process's resident set size, in
  MiB x seconds, from samples every `sample_interval_s` (trapezoid rule; the first sample is
  taken at the start, the last at the end).
- `gpu_utilization`: mean of NVML's "GPU busy" ratio (0..1), sampled every 100 ms on the GPU in
  use; None when the run used no NVIDIA GPU or NVML is unavailable.
- `storage_read_bytes` / `storage_write_bytes`: bytes of images and weights the run read and of
  outputs it wrote, counted by the code that does the I/O (not the OS's counters, which would
  include Python's own imports).
"""

from __future__ import annotations

import resource
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from types import TracebackType

import psutil


@dataclass(frozen=True)
class ResourceUsage:
    wall_seconds: float
    cpu_seconds: float
    peak_rss_mb: float
    memory_mb_seconds: float
    gpu_utilization: float | None
    storage_read_bytes: int
    storage_write_bytes: int

    def to_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


@dataclass
class IOCounter:
    read_bytes: int = 0
    write_bytes: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add_read(self, n: int) -> None:
        with self._lock:
            self.read_bytes += n

    def add_write(self, n: int) -> None:
        with self._lock:
            self.write_bytes += n


class ResourceMeter:
    """Context manager measuring one run; `usage()` may be called during or after it."""

    def __init__(self, gpu_index: int | None = None, sample_interval_s: float = 0.1) -> None:
        self.io = IOCounter()
        self._gpu = _GpuSampler(gpu_index, sample_interval_s) if gpu_index is not None else None
        self._process = psutil.Process()
        self._memory = _MemoryIntegral(self._process, sample_interval_s)
        self._start_wall = 0.0
        self._start_cpu = 0.0
        self._frozen: ResourceUsage | None = None

    def __enter__(self) -> ResourceMeter:
        self._start_wall = time.perf_counter()
        self._start_cpu = self._cpu_seconds()
        self._memory.start()
        if self._gpu is not None:
            self._gpu.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._gpu is not None:
            self._gpu.stop()
        self._memory.stop()
        self._frozen = self.usage()

    def usage(self) -> ResourceUsage:
        if self._frozen is not None:
            return self._frozen
        return ResourceUsage(
            wall_seconds=time.perf_counter() - self._start_wall,
            cpu_seconds=self._cpu_seconds() - self._start_cpu,
            peak_rss_mb=_peak_rss_mb(),
            memory_mb_seconds=self._memory.value(),
            gpu_utilization=self._gpu.mean() if self._gpu is not None else None,
            storage_read_bytes=self.io.read_bytes,
            storage_write_bytes=self.io.write_bytes,
        )

    def _cpu_seconds(self) -> float:
        t = self._process.cpu_times()
        return t.user + t.system + t.children_user + t.children_system


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


class _MemoryIntegral:
    """Integrates the process's RSS over time from samples taken in a daemon thread."""

    def __init__(self, process: psutil.Process, interval_s: float) -> None:
        self._process = process
        self._interval_s = interval_s
        self._lock = threading.Lock()
        self._area = 0.0
        self._last: tuple[float, float] | None = None  # (time, MiB)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._sample()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()

    def value(self) -> float:
        """The integral up to the latest sample (read during a run, it lags by one interval)."""
        with self._lock:
            return self._area

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self._sample()

    def _sample(self) -> None:
        now, mib = time.perf_counter(), self._process.memory_info().rss / (1024 * 1024)
        with self._lock:
            if self._last is not None:
                t0, m0 = self._last
                self._area += (now - t0) * (m0 + mib) / 2.0
            self._last = (now, mib)


class _GpuSampler:
    """Samples NVML utilisation in a daemon thread; silent (None) where NVML is missing."""

    def __init__(self, index: int, interval_s: float) -> None:
        self._index = index
        self._interval_s = interval_s
        self._samples: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        try:
            import pynvml

            pynvml.nvmlInit()
            handle = pynvml.nvmlDeviceGetHandleByIndex(self._index)
        except Exception:  # noqa: BLE001 - no driver, no NVML: utilisation is simply unknown
            return
        self._thread = threading.Thread(target=self._run, args=(pynvml, handle), daemon=True)
        self._thread.start()

    def _run(self, pynvml: object, handle: object) -> None:
        while not self._stop.wait(self._interval_s):
            rates = pynvml.nvmlDeviceGetUtilizationRates(handle)  # type: ignore[attr-defined]
            self._samples.append(rates.gpu / 100.0)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def mean(self) -> float | None:
        return sum(self._samples) / len(self._samples) if self._samples else None
