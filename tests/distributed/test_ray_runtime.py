"""The pure parts of the Ray runtime: actor planning, per-node sums, the missing-Ray error,
and the fault-injection hook. No Ray is started here."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from engine.distributed.ray_runtime import (
    ClusterResources,
    CrashOnce,
    NodeTally,
    WorkerIdentity,
    import_ray,
    plan_actors,
)
from engine.errors import OptionError


def test_cpu_cluster_gets_one_single_threaded_actor_per_core() -> None:
    plan = plan_actors(ClusterResources(cpus=2, gpus=0, nodes=1))
    assert (plan.actors, plan.device, plan.num_cpus, plan.num_gpus) == (2, "cpu", 1.0, 0.0)
    assert plan.torch_threads == 1
    assert plan.remote_args() == {"num_cpus": 1.0}


def test_fewer_cpu_actors_share_the_cores_and_more_get_fractions() -> None:
    one = plan_actors(ClusterResources(cpus=16, gpus=0, nodes=1), actors=4)
    assert (one.num_cpus, one.torch_threads) == (4.0, 4)
    many = plan_actors(ClusterResources(cpus=2, gpus=0, nodes=1), actors=4)
    assert (many.num_cpus, many.torch_threads) == (0.5, 1)


def test_gpu_cluster_gets_one_gpu_per_actor_unless_cpu_is_asked() -> None:
    resources = ClusterResources(cpus=32, gpus=4, nodes=4)
    plan = plan_actors(resources)
    assert (plan.actors, plan.device, plan.num_gpus) == (4, "cuda", 1.0)
    assert plan.remote_args() == {"num_cpus": 2.0, "num_gpus": 1.0}
    assert plan_actors(resources, device_spec="cpu").device == "cpu"


def test_cuda_without_gpus_and_bad_counts_are_option_errors() -> None:
    cpus_only = ClusterResources(cpus=4, gpus=0, nodes=1)
    with pytest.raises(OptionError, match="has no GPU"):
        plan_actors(cpus_only, device_spec="cuda:1")
    with pytest.raises(OptionError, match=">= 1"):
        plan_actors(cpus_only, actors=0)
    with pytest.raises(OptionError, match="unsupported device"):
        plan_actors(cpus_only, device_spec="tpu")


def test_node_tally_sums_per_node_and_counts_actors() -> None:
    tally = NodeTally()
    a1, a2, b1 = (
        WorkerIdentity("a", "h1", 1),
        WorkerIdentity("a", "h1", 2),
        WorkerIdentity("b", "h2", 3),
    )
    tally.add(a1, done=True, megapixels=1.5, seconds=2.0, cpu_s=1.0)
    tally.add(a2, done=False, seconds=0.1)
    tally.add(b1, done=True, megapixels=0.5, seconds=1.0, cpu_s=0.5)
    first, second = tally.figures()
    assert (first.hostname, first.actors, first.files, first.done) == ("h1", 2, 2, 1)
    assert first.megapixels == pytest.approx(1.5) and first.busy_s == pytest.approx(2.1)
    assert (second.hostname, second.files, second.cpu_s) == ("h2", 1, 0.5)
    assert "h1 (a): 2 actor(s), 1/2 files" in first.describe()


def test_missing_ray_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(OptionError, match=r"pip install '\.\[ray\]'"):
        import_ray()


def test_crash_once_ignores_other_files_and_fires_only_without_its_marker(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    marker.write_text("1")  # already fired: must not kill this test process
    hook = CrashOnce(file_name="x.jpg", marker=marker)
    hook.maybe_crash("/photos/y.jpg")
    hook.maybe_crash("/photos/x.jpg")
    assert marker.read_text() == "1"
