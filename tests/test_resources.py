"""Resource figures are measurements: they move with the work done."""

from __future__ import annotations

import time

import numpy as np

from engine.resources import ResourceMeter


def test_cpu_memory_and_io_are_measured() -> None:
    with ResourceMeter(sample_interval_s=0.02) as meter:
        block = np.ones((64, 1024, 1024), dtype=np.uint8)  # 64 MiB held for a while
        deadline = time.perf_counter() + 0.3
        while time.perf_counter() < deadline:  # busy: CPU time accrues
            block[:, :, 0] += 1
        meter.io.add_read(123)
        meter.io.add_write(45)
    usage = meter.usage()
    assert usage.cpu_seconds > 0.1
    assert usage.wall_seconds >= 0.3
    # At least the 64 MiB block over 0.3 s, and at most what the peak allows.
    assert 64 * 0.25 < usage.memory_mb_seconds <= usage.peak_rss_mb * usage.wall_seconds * 1.1
    assert (usage.storage_read_bytes, usage.storage_write_bytes) == (123, 45)
    assert usage.gpu_utilization is None
    assert meter.usage() == usage  # frozen once the run ended
