"""The model manifest: every model AMP knows, its official files and network settings.

`models/manifest.toml` is the source; this module parses and validates it into frozen
pydantic models. An entry's class follows its `kind`, so its `network` settings are typed:

    EnhanceEntry        kind "enhance"        network: SRVGGNetwork | RRDBNetwork (by `arch`)
    FacePackEntry       kind "face-pack"      network: FacePackNetwork, files from `archive_url`
    FaceDetectorEntry   kind "face-detector"  network: YuNetNetwork
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveInt,
    StringConstraints,
    ValidationError,
    model_validator,
)

from engine.errors import ModelError, ModelNotFoundError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

MANIFEST_ENV = "AMP_MANIFEST"
"""Environment variable naming a manifest file to use instead of the built-in one."""

CHECKOUT_MANIFEST = Path(__file__).resolve().parents[2] / "models" / "manifest.toml"
"""The canonical manifest in a source checkout (absent when AMP is installed from a wheel)."""

PACKAGED_MANIFEST = Path(__file__).with_name("manifest.toml")
"""The copy shipped as package data (see pyproject's package-data)."""

Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
FileName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
HttpUrl = Annotated[str, StringConstraints(pattern=r"^https?://\S+$")]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]

ModelKind = Literal["enhance", "face-pack", "face-detector"]
"""enhance: super-resolution weights (.pth); face-pack: an InsightFace archive of ONNX models
(detector, recognition, landmarks, gender/age); face-detector: a single ONNX detector."""

FileRole = Literal[
    "weights", "detection", "recognition", "landmark-3d68", "landmark-2d106", "gender-age"
]
"""What a file does: the weights of an enhance net, or the job of one face-pack member."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ModelFile(_Frozen):
    """One official file: a direct download (`url` set) or a member of its model's archive."""

    name: FileName
    sha256: Sha256
    size: PositiveInt | None = None
    url: HttpUrl | None = None
    role: FileRole | None = None


class SRVGGNetwork(_Frozen):
    arch: Literal["SRVGGNetCompact"]
    scale: PositiveInt
    num_in_ch: PositiveInt = 3
    num_out_ch: PositiveInt = 3
    num_feat: PositiveInt = 64
    num_conv: PositiveInt
    act_type: Literal["prelu", "relu", "leakyrelu"] = "prelu"


class RRDBNetwork(_Frozen):
    arch: Literal["RRDBNet"]
    scale: Literal[1, 2, 4]
    num_in_ch: PositiveInt = 3
    num_out_ch: PositiveInt = 3
    num_feat: PositiveInt = 64
    num_block: PositiveInt = 23
    num_grow_ch: PositiveInt = 32


class FacePackNetwork(_Frozen):
    det_input_px: PositiveInt
    det_thresh: Probability
    nms_thresh: Probability
    embedding_dim: PositiveInt
    rec_input_px: PositiveInt


class YuNetNetwork(_Frozen):
    input_px: PositiveInt
    score_thresh: Probability
    nms_thresh: Probability
    top_k: PositiveInt


class _EntryBase(_Frozen):
    name: str
    license: str
    description: str
    homepage: HttpUrl | None = None
    archive_url: HttpUrl | None = None
    files: tuple[ModelFile, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _files_have_one_source(self) -> _EntryBase:
        names = [f.name for f in self.files]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate file names in {names}")
        for f in self.files:
            if self.archive_url is not None and f.url is not None:
                raise ValueError(f"{f.name}: archive members take no url (archive_url is set)")
            if self.archive_url is None and f.url is None:
                raise ValueError(f"{f.name}: a url is needed (or an archive_url for the model)")
        return self

    @property
    def total_size(self) -> int | None:
        """Bytes of all files, or None when a size is not pinned."""
        sizes = [f.size for f in self.files]
        return None if None in sizes else sum(s for s in sizes if s is not None)

    @property
    def download_urls(self) -> tuple[str, ...]:
        if self.archive_url is not None:
            return (self.archive_url,)
        return tuple(f.url for f in self.files if f.url is not None)


class EnhanceEntry(_EntryBase):
    kind: Literal["enhance"]
    network: Annotated[SRVGGNetwork | RRDBNetwork, Field(discriminator="arch")]
    # An enhance model of the same network to blend with (DNI) for an adjustable denoise.
    denoise_partner: str | None = None


class FacePackEntry(_EntryBase):
    kind: Literal["face-pack"]
    network: FacePackNetwork
    archive_url: HttpUrl

    @model_validator(mode="after")
    def _has_detector_and_recognizer(self) -> FacePackEntry:
        roles = [f.role for f in self.files]
        for role in ("detection", "recognition"):
            if roles.count(role) != 1:
                raise ValueError(f"a face pack needs exactly one {role} file")
        return self

    def file_for(self, role: FileRole) -> ModelFile:
        return next(f for f in self.files if f.role == role)


class FaceDetectorEntry(_EntryBase):
    kind: Literal["face-detector"]
    network: YuNetNetwork


ModelEntry = Annotated[
    EnhanceEntry | FacePackEntry | FaceDetectorEntry, Field(discriminator="kind")
]
"""Any manifest entry; narrow with `isinstance` or `entry.kind` for its network settings."""


class Manifest(_Frozen):
    schema_version: Literal[1]
    models: dict[str, ModelEntry]

    @model_validator(mode="before")
    @classmethod
    def _name_entries_by_key(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("models"), dict):
            models = {
                key: {**value, "name": key} if isinstance(value, dict) else value
                for key, value in data["models"].items()
            }
            data = {**data, "models": models}
        return data

    @model_validator(mode="after")
    def _partners_exist(self) -> Manifest:
        for entry in self.models.values():
            if isinstance(entry, EnhanceEntry) and entry.denoise_partner is not None:
                partner = self.models.get(entry.denoise_partner)
                if not isinstance(partner, EnhanceEntry) or partner.network != entry.network:
                    raise ValueError(
                        f"{entry.name}: denoise_partner {entry.denoise_partner!r} must be an "
                        "enhance model with the same network"
                    )
        return self

    @property
    def names(self) -> list[str]:
        return list(self.models)

    def get(self, name: str) -> ModelEntry:
        try:
            return self.models[name]
        except KeyError:
            raise ModelNotFoundError(
                f"unknown model {name!r}; known models: {', '.join(self.models)}"
            ) from None


def default_manifest_path() -> Path:
    """$AMP_MANIFEST, else the checkout's models/manifest.toml, else the packaged copy."""
    if override := os.environ.get(MANIFEST_ENV):
        return Path(override).expanduser()
    return CHECKOUT_MANIFEST if CHECKOUT_MANIFEST.is_file() else PACKAGED_MANIFEST


def load_manifest(path: Path | None = None) -> Manifest:
    """Parse and validate a manifest; `path` None means `default_manifest_path()`."""
    source = path if path is not None else default_manifest_path()
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise ModelError(
            f"cannot read the model manifest {source}: {exc.strerror or exc}; "
            f"check ${MANIFEST_ENV} or reinstall AMP"
        ) from exc
    return parse_manifest(text, origin=str(source))


def parse_manifest(text: str, *, origin: str = "<string>") -> Manifest:
    try:
        return Manifest.model_validate(tomllib.loads(text))
    except tomllib.TOMLDecodeError as exc:
        raise ModelError(f"model manifest {origin} is not valid TOML: {exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ModelError(f"model manifest {origin} is invalid: {problems}") from exc
