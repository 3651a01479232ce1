"""Provider selection (pure, on made-up provider lists) and session creation errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import DeviceError, ModelError, ModelNotFoundError, OptionError
from engine.faces.runtime import (
    CPU,
    create_session,
    provider_options,
    select_providers,
)

TRT = "TensorrtExecutionProvider"
CUDA = "CUDAExecutionProvider"


@pytest.mark.parametrize(
    ("available", "expected"),
    [
        ([CPU], [CPU]),
        (["AzureExecutionProvider", CPU], [CPU]),
        ([CUDA, CPU], [CUDA, CPU]),
        ([CPU, CUDA, TRT], [TRT, CUDA, CPU]),
        ([TRT, CPU], [TRT, CPU]),
        (["CoreMLExecutionProvider", CPU], [CPU]),
    ],
)
def test_automatic_order_is_tensorrt_cuda_cpu(available: list[str], expected: list[str]) -> None:
    assert select_providers(available) == expected


def test_no_usable_provider_is_a_device_error() -> None:
    with pytest.raises(DeviceError, match="none of TensorRT, CUDA or CPU"):
        select_providers(["AzureExecutionProvider"])


def test_explicit_list_keeps_its_order_and_appends_cpu() -> None:
    available = [TRT, CUDA, CPU]
    assert select_providers(available, ["cuda"]) == [CUDA, CPU]
    assert select_providers(available, ["cpu"]) == [CPU]
    assert select_providers(available, [CUDA, "tensorrt"]) == [CUDA, TRT, CPU]
    assert select_providers(available, ["cuda", CUDA]) == [CUDA, CPU]


def test_unknown_or_unavailable_provider_is_an_option_error() -> None:
    with pytest.raises(OptionError, match="unknown ONNX Runtime provider 'gpu'"):
        select_providers([CPU], ["gpu"])
    with pytest.raises(OptionError, match="CUDAExecutionProvider not available"):
        select_providers([CPU], ["cuda"])
    with pytest.raises(OptionError, match="empty"):
        select_providers([CPU], [])


def test_tensorrt_gets_an_engine_cache(tmp_path: Path) -> None:
    options = provider_options([TRT, CUDA, CPU], trt_cache_dir=tmp_path)
    assert options[0] == {"trt_engine_cache_enable": "True", "trt_engine_cache_path": str(tmp_path)}
    assert options[1:] == [{}, {}]


def test_session_on_a_real_model_runs_on_cpu_here(scrfd_500m_file: Path) -> None:
    session = create_session(scrfd_500m_file, ["cpu"])
    assert session.get_providers() == [CPU]


def test_missing_and_corrupt_files_are_model_errors(tmp_path: Path, scrfd_500m_file: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        create_session(tmp_path / "nope.onnx")
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(scrfd_500m_file.read_bytes()[:10_000])
    with pytest.raises(ModelError, match="delete it and fetch it again"):
        create_session(truncated)
    text = tmp_path / "text.onnx"
    text.write_text("not a model")
    with pytest.raises(ModelError, match="cannot load"):
        create_session(text)
