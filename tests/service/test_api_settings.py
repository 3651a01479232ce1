"""The service's Settings: environment, TOML file, secrets, and refusing to start."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from engine.errors import AmpError
from engine.service.app import create_app
from engine.service.queue.memory import MemoryTaskQueue
from engine.service.settings import ServiceConfigError, Settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("AMP_") and name != "AMP_SHARED_DIR":
            monkeypatch.delenv(name)


def test_environment_with_prefix_nesting_and_comma_lists(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AMP_API_TOKENS", "tok-a, tok-b")
    monkeypatch.setenv("AMP_INPUT_ROOTS", f"{tmp_path}/a,{tmp_path}/b")
    monkeypatch.setenv("AMP_BUCKETS", f'{{"processed-photos": "{tmp_path}/out"}}')
    monkeypatch.setenv("AMP_CALLBACK_ALLOWED_HOSTS", '["Hooks.LAN"]')
    monkeypatch.setenv("AMP_ENHANCE__MODEL", "RealESRGAN_x4plus")
    monkeypatch.setenv("AMP_ENHANCE__TILE", "256")
    monkeypatch.setenv("AMP_FACES__DETECTOR", "yunet")
    monkeypatch.setenv("AMP_MAX_BODY_BYTES", "131072")

    settings = Settings()

    assert [t.get_secret_value() for t in settings.api_tokens] == ["tok-a", "tok-b"]
    assert settings.input_roots == [tmp_path / "a", tmp_path / "b"]
    assert settings.buckets == {"processed-photos": tmp_path / "out"}
    assert settings.callback_allowed_hosts == ["hooks.lan"]
    assert settings.enhance.model == "RealESRGAN_x4plus" and settings.enhance.tile == 256
    assert settings.faces.detector == "yunet"
    assert settings.max_body_bytes == 131072
    assert settings.default_max_retries == 3


def test_tokens_never_show_in_repr_or_errors() -> None:
    settings = Settings(api_tokens=["super-secret-token"])
    assert "super-secret-token" not in repr(settings)
    assert "super-secret-token" not in str(settings.model_dump())
    with pytest.raises(ValidationError) as raised:
        Settings(api_tokens=["super-secret-token", " "])
    assert "super-secret-token" not in str(raised.value)


def test_toml_file_from_amp_config_or_explicit(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "amp.toml"
    config.write_text(
        f"""
api_tokens = ["from-file"]
input_roots = ["{tmp_path}"]
lease_s = 60
heartbeat_s = 5

[buckets]
processed-photos = "{tmp_path}/out"

[enhance]
model = "RealESRGAN_x2plus"
"""
    )
    explicit = Settings.load(config)
    assert explicit.api_tokens[0].get_secret_value() == "from-file"
    assert explicit.enhance.model == "RealESRGAN_x2plus"
    assert explicit.lease_s == 60

    monkeypatch.setenv("AMP_CONFIG", str(config))
    monkeypatch.setenv("AMP_LEASE_S", "90")  # the environment beats the file
    from_env = Settings()
    assert from_env.buckets == {"processed-photos": tmp_path / "out"}
    assert from_env.lease_s == 90
    assert Settings(lease_s=30).lease_s == 30  # explicit arguments beat both


def test_config_file_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ServiceConfigError, match="does not exist"):
        Settings.load(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text('colour = "blue"\n')
    with pytest.raises(ValidationError, match="colour"):
        Settings.load(bad)


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ({"input_roots": ["relative/photos"]}, "absolute"),
        ({"buckets": {"b": "relative"}}, "absolute"),
        ({"buckets": {"a/b": "/out"}}, "bucket name"),
        ({"heartbeat_s": 200, "lease_s": 100}, "shorter than lease_s"),
        ({"priority": 3}, "priority"),
        ({"enhance": {"precision": "fp8"}}, "precision"),
    ],
)
def test_invalid_settings_fail_early(values: dict, match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        Settings(**values)


def test_the_api_refuses_to_start_without_tokens_roots_or_buckets(tmp_path: Path) -> None:
    ready = {"input_roots": [tmp_path], "buckets": {"b": tmp_path / "out"}}
    with pytest.raises(ServiceConfigError, match="AMP_API_TOKENS"):
        create_app(Settings(**ready), MemoryTaskQueue())
    create_app(Settings(**ready, allow_anonymous=True), MemoryTaskQueue())  # starts
    with pytest.raises(ServiceConfigError, match="AMP_INPUT_ROOTS"):
        create_app(Settings(api_tokens=["t"], buckets={"b": tmp_path}), MemoryTaskQueue())
    with pytest.raises(ServiceConfigError, match="not an existing folder"):
        create_app(
            Settings(api_tokens=["t"], input_roots=[tmp_path / "gone"], buckets={"b": tmp_path}),
            MemoryTaskQueue(),
        )
    with pytest.raises(ServiceConfigError, match="AMP_BUCKETS") as raised:
        create_app(Settings(api_tokens=["t"], input_roots=[tmp_path]), MemoryTaskQueue())
    assert isinstance(raised.value, AmpError)  # the CLI prints one line and exits 1
