"""Where model files are looked for, in order, and how a name or path becomes a file.

Lookup order:

1. an explicit path (anything with a directory separator, a leading `~` or a file suffix);
2. each directory in `$AMP_MODELS_DIR` (several allowed, separated by `os.pathsep`);
3. the `models/` directory of a source checkout;
4. the user cache, `$XDG_CACHE_HOME/amp/models`, else `~/.cache/amp/models`.

A face pack's members are looked for in `DIR/PACK/` first, then in `DIR/` itself.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from engine.errors import ModelNotFoundError
from engine.registry.manifest import (
    CHECKOUT_MANIFEST,
    FacePackEntry,
    Manifest,
    ModelEntry,
    ModelFile,
    load_manifest,
)

MODELS_DIR_ENV = "AMP_MODELS_DIR"


def checkout_models_dir() -> Path | None:
    """The source checkout's `models/` directory, or None when AMP runs from a wheel."""
    return CHECKOUT_MANIFEST.parent if CHECKOUT_MANIFEST.is_file() else None


def user_cache_dir(env: Mapping[str, str], home: Path) -> Path:
    cache_home = env.get("XDG_CACHE_HOME")
    base = Path(cache_home) if cache_home else home / ".cache"
    return base / "amp" / "models"


def env_models_dirs(env: Mapping[str, str]) -> list[Path]:
    raw = env.get(MODELS_DIR_ENV, "")
    return [Path(part).expanduser() for part in raw.split(os.pathsep) if part]


def search_dirs(env: Mapping[str, str], checkout_dir: Path | None, home: Path) -> list[Path]:
    """The lookup order from its inputs, without duplicates; directories need not exist."""
    dirs = [*env_models_dirs(env)]
    if checkout_dir is not None:
        dirs.append(checkout_dir)
    dirs.append(user_cache_dir(env, home))
    return list(dict.fromkeys(dirs))


def model_dirs() -> list[Path]:
    """The directories searched for models, first match wins."""
    return search_dirs(os.environ, checkout_models_dir(), Path.home())


def default_fetch_dir() -> Path:
    """Where `amp models fetch` saves: the first $AMP_MODELS_DIR entry, else the user cache."""
    configured = env_models_dirs(os.environ)
    return configured[0] if configured else user_cache_dir(os.environ, Path.home())


def candidate_paths(entry: ModelEntry, file: ModelFile, dirs: Sequence[Path]) -> Iterator[Path]:
    for directory in dirs:
        if isinstance(entry, FacePackEntry):
            yield directory / entry.name / file.name
        yield directory / file.name


def locate_file(entry: ModelEntry, file: ModelFile, dirs: Sequence[Path]) -> Path | None:
    """The first existing copy of one of `entry`'s files, or None."""
    return next((p for p in candidate_paths(entry, file, dirs) if p.is_file()), None)


def looks_like_path(name_or_path: str) -> bool:
    """True for `./x`, `a/b`, `~/x`, `x.pth`: strings meant as paths, not manifest names."""
    separators = {os.sep, "/"} | ({os.altsep} if os.altsep else set())
    return (
        any(sep in name_or_path for sep in separators)
        or name_or_path.startswith("~")
        or Path(name_or_path).suffix != ""
    )


def find_model_file(
    name_or_path: str,
    *,
    manifest: Manifest | None = None,
    dirs: Sequence[Path] | None = None,
) -> Path:
    """An existing path as given, or the first file of a manifest model in the lookup dirs."""
    if looks_like_path(name_or_path):
        path = Path(name_or_path).expanduser()
        if not path.is_file():
            raise ModelNotFoundError(f"model file {path} does not exist")
        return path
    entry = (manifest or load_manifest()).get(name_or_path)
    searched = model_dirs() if dirs is None else list(dirs)
    found = locate_file(entry, entry.files[0], searched)
    if found is None:
        raise ModelNotFoundError(not_found_message(entry, searched))
    return found


def find_pack_dir(
    name: str,
    *,
    manifest: Manifest | None = None,
    dirs: Sequence[Path] | None = None,
) -> Path:
    """The first directory holding every member of face pack `name` (`DIR/name/`, then `DIR/`)."""
    entry = (manifest or load_manifest()).get(name)
    if not isinstance(entry, FacePackEntry):
        raise ModelNotFoundError(f"{name!r} is a {entry.kind} model, not a face pack")
    searched = model_dirs() if dirs is None else list(dirs)
    for directory in searched:
        for candidate in (directory / entry.name, directory):
            if all((candidate / f.name).is_file() for f in entry.files):
                return candidate
    raise ModelNotFoundError(not_found_message(entry, searched))


def not_found_message(entry: ModelEntry, searched: Sequence[Path]) -> str:
    """What to do when `entry` is missing: fetch it, or place the official file by hand."""
    target = default_fetch_dir()
    if entry.archive_url is not None:
        by_hand = (
            f"download {entry.archive_url} by hand and extract "
            f"{', '.join(f.name for f in entry.files)} into {target / entry.name}"
        )
    else:
        by_hand = "; ".join(
            f"download {f.url} by hand and place it in {target}" for f in entry.files
        )
    return (
        f"model {entry.name!r} is not downloaded: run `amp models fetch {entry.name}`, or "
        f"{by_hand} (searched: {', '.join(str(d) for d in searched)}; add directories with "
        f"{MODELS_DIR_ENV}, separated by {os.pathsep!r})"
    )
