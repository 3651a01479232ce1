"""The service's configuration: one pydantic-settings `Settings`, read from the environment.

Every field is an environment variable with the `AMP_` prefix; nested models use `__`
(`AMP_ENHANCE__MODEL=RealESRGAN_x4plus`). Lists and dicts are JSON
(`AMP_BUCKETS='{"processed-photos": "/nas/enhanced"}'`); the list fields also take a
comma-separated string (`AMP_API_TOKENS=token-a,token-b`, `AMP_INPUT_ROOTS=/nas/photos`).

A TOML file holds the same fields (`[enhance]` for the nested models); it is read from
`Settings.load(path)` or the file named by `AMP_CONFIG`. Precedence, highest first: explicit
keyword arguments, environment variables, the TOML file, the defaults.

Tokens are `SecretStr`: they never appear in a repr, a log line or an error message.
"""

from __future__ import annotations

import os
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from engine.errors import AmpError

CONFIG_FILE_ENV = "AMP_CONFIG"

_config_file: ContextVar[Path | None] = ContextVar("amp_config_file", default=None)


class ServiceConfigError(AmpError):
    """The service's settings cannot work: the service refuses to start."""


def _split_commas(value: Any) -> Any:
    """A comma-separated string, or a JSON list, from the environment; lists pass through."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            import json

            return json.loads(text)
        return [item.strip() for item in text.split(",") if item.strip()]
    return value


class EnhanceSettings(BaseModel):
    """The `ai/image-enhance` node: Real-ESRGAN defaults a request may override."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(
        "realesr-general-x4v3", description="A manifest name or a path to a Real-ESRGAN .pth."
    )
    tile: Literal["auto"] | Annotated[int, Field(ge=0)] = Field(
        "auto", description="auto (largest that fits), 0 (whole image) or a tile size in pixels."
    )
    precision: Literal["auto", "fp32", "fp16", "bf16"] = "auto"
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N.")


class FacesSettings(BaseModel):
    """The `ai/face-detect` and `ai/face-embed` nodes."""

    model_config = ConfigDict(extra="forbid")

    detector: Literal["auto", "scrfd", "yunet"] = "auto"
    detector_model: str | None = Field(None, description="Face pack name or .onnx path.")
    recognizer: Literal["auto", "arcface", "dlib"] = "auto"
    recognizer_model: str | None = Field(None, description="Face pack name or .onnx path.")
    providers: list[str] | None = Field(
        None, description="ONNX Runtime providers in order (e.g. cuda, cpu); None: the best."
    )


class Settings(BaseSettings):
    """Everything `amp serve` and its workers need; see the module docstring for sources."""

    model_config = SettingsConfigDict(
        env_prefix="AMP_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
        hide_input_in_errors=True,  # a bad value may be a token
    )

    # --- HTTP API -------------------------------------------------------------------------
    api_tokens: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Bearer tokens accepted by the API. Empty: the service refuses to start "
        "unless allow_anonymous is true.",
    )
    allow_anonymous: bool = Field(
        False, description="Serve the task routes without a token (a trusted network only)."
    )
    host: str = Field("127.0.0.1", description="Address `amp serve` binds to.")
    port: int = Field(8080, ge=1, le=65535)
    max_body_bytes: int = Field(
        64 * 1024, ge=1024, description="Largest request body accepted; larger ones get 413."
    )

    # --- Files ----------------------------------------------------------------------------
    input_roots: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description="Folders a submitted file_path must lie under (after resolving symlinks).",
    )
    buckets: dict[str, Path] = Field(
        default_factory=dict,
        description="Storage bucket name -> output root folder; outputs never leave it.",
    )
    workflows_dir: Path | None = Field(
        None,
        description="Extra workflow TOML files; one with a built-in workflow's name replaces it.",
    )

    # --- Queue and workers ----------------------------------------------------------------
    queue_path: Path = Field(
        Path("~/.local/share/amp/queue.sqlite3"), description="The SQLite queue database."
    )
    queue_url: SecretStr | None = Field(
        None,
        description="PostgreSQL DSN (postgresql://amp:...@db.lan/amp) of a queue shared by workers "
        "on several machines (pip install '.[postgres]'); unset: the SQLite file at queue_path.",
    )
    default_max_retries: int = Field(3, ge=0, le=20)
    lease_s: float = Field(
        120.0,
        gt=0,
        description="A claimed task returns to the queue this long after its "
        "worker's last heartbeat (the worker died).",
    )
    heartbeat_s: float = Field(
        15.0, gt=0, description="How often a worker reports progress and extends its lease."
    )
    callback_allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Callback hosts allowed even when they are loopback or private addresses.",
    )
    callback_secret: SecretStr | None = Field(
        None, description="HMAC-SHA256 key signing callback bodies (X-AMP-Signature)."
    )
    callback_attempts: int = Field(4, ge=1, le=20, description="POSTs before giving up.")
    callback_timeout_s: float = Field(10.0, gt=0)
    index_dir: Path | None = Field(
        None,
        description="Face index searched for similar_images (default: AMP_INDEX_DIR, "
        "else ~/.local/share/amp/index).",
    )

    # --- Stages ---------------------------------------------------------------------------
    enhance: EnhanceSettings = Field(default_factory=EnhanceSettings)
    faces: FacesSettings = Field(default_factory=FacesSettings)

    @field_validator("api_tokens", "input_roots", "callback_allowed_hosts", mode="before")
    @classmethod
    def _lists_from_strings(cls, value: Any) -> Any:
        return _split_commas(value)

    @field_validator("api_tokens")
    @classmethod
    def _no_blank_tokens(cls, tokens: list[SecretStr]) -> list[SecretStr]:
        if any(not token.get_secret_value().strip() for token in tokens):
            raise ValueError("an API token is empty; remove it or give a real token")
        return tokens

    @field_validator("queue_path", "index_dir", "workflows_dir")
    @classmethod
    def _expand_home(cls, path: Path | None) -> Path | None:
        return None if path is None else path.expanduser()

    @field_validator("input_roots")
    @classmethod
    def _absolute_roots(cls, roots: list[Path]) -> list[Path]:
        for root in roots:
            if not root.expanduser().is_absolute():
                raise ValueError(f"input root {str(root)!r} must be an absolute path")
        return [root.expanduser() for root in roots]

    @field_validator("buckets")
    @classmethod
    def _absolute_buckets(cls, buckets: dict[str, Path]) -> dict[str, Path]:
        for name, root in buckets.items():
            if not name or "/" in name:
                raise ValueError(f"bucket name {name!r} must be non-empty and hold no '/'")
            if not root.expanduser().is_absolute():
                raise ValueError(f"bucket {name!r} root {str(root)!r} must be an absolute path")
        return {name: root.expanduser() for name, root in buckets.items()}

    @field_validator("callback_allowed_hosts")
    @classmethod
    def _lower_hosts(cls, hosts: list[str]) -> list[str]:
        return [host.strip().lower().strip("[]") for host in hosts if host.strip()]

    @model_validator(mode="after")
    def _heartbeat_within_lease(self) -> Settings:
        if self.heartbeat_s >= self.lease_s:
            raise ValueError(
                f"heartbeat_s ({self.heartbeat_s}) must be shorter than lease_s "
                f"({self.lease_s}), or every lease expires before it is renewed"
            )
        return self

    def require_servable(self) -> None:
        """Refuse to start an API that could not serve: no tokens, no roots, no buckets."""
        if not self.api_tokens and not self.allow_anonymous:
            raise ServiceConfigError(
                "no API token configured: set AMP_API_TOKENS (comma-separated) or api_tokens "
                "in the config file, or AMP_ALLOW_ANONYMOUS=true on a trusted network"
            )
        if not self.input_roots:
            raise ServiceConfigError(
                "no input root configured: set AMP_INPUT_ROOTS to the folders whose photos "
                "may be submitted (comma-separated absolute paths)"
            )
        for root in self.input_roots:
            if not root.is_dir():
                raise ServiceConfigError(f"input root {root} is not an existing folder")
        if not self.buckets:
            raise ServiceConfigError(
                'no storage bucket configured: set AMP_BUCKETS=\'{"name": "/output/root"}\''
            )

    @classmethod
    def load(cls, config_file: Path | None = None, **overrides: Any) -> Settings:
        """Settings from `config_file` (else the file named by AMP_CONFIG, else none), the
        environment and `overrides`."""
        token = _config_file.set(config_file)
        try:
            return cls(**overrides)
        finally:
            _config_file.reset(token)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: tuple[PydanticBaseSettingsSource, ...] = (init_settings, env_settings)
        path = _config_file.get()
        if path is None and os.environ.get(CONFIG_FILE_ENV):
            path = Path(os.environ[CONFIG_FILE_ENV])
        if path is not None:
            path = path.expanduser()
            if not path.is_file():
                raise ServiceConfigError(
                    f"config file {path} does not exist (given by {CONFIG_FILE_ENV} or --config)"
                )
            sources += (TomlConfigSettingsSource(settings_cls, toml_file=path),)
        return sources
