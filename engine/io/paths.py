"""Build output paths from a user's template, and keep them inside the output root."""

from __future__ import annotations

import os
import string
from datetime import datetime
from pathlib import Path

from engine.errors import ImageReadError, OptionError, UnsafePathError

TEMPLATE_FIELDS = ("year", "month", "day", "filename", "stem", "ext")

_SEPARATORS = tuple(sep for sep in (os.sep, os.altsep) if sep)


def render_output_path(
    root: Path, template: str, *, source: Path, taken_at: datetime, ext: str
) -> Path:
    """The absolute output path for `source` under `root`, e.g. "{year}/{month}/{filename}".

    Fields: {year} (4 digits), {month}, {day} (2 digits) of `taken_at`; {stem} of the source
    name; {ext}, the output extension without dot; {filename} = "{stem}.{ext}".
    Raises OptionError for a malformed template or an unknown field, and UnsafePathError when
    the result would leave `root`: an absolute template, an empty, "." or ".." component
    (from the template or from a substituted name), a NUL byte, or a symlinked folder that
    leads out of `root`.
    """
    _check_fields(template)
    if os.path.isabs(template) or template.startswith(_SEPARATORS):
        raise UnsafePathError(template, root, "the template must be relative to the output root")
    values = {
        "year": f"{taken_at.year:04d}",
        "month": f"{taken_at.month:02d}",
        "day": f"{taken_at.day:02d}",
        "stem": source.stem,
        "ext": ext,
        "filename": f"{source.stem}.{ext}",
    }
    rendered = template.format_map(values)
    parts = _split(rendered)
    for part in parts:
        if part in ("", ".", "..") or "\x00" in part:
            raise UnsafePathError(
                rendered, root, f"component {part!r} is empty, '.', '..' or holds a NUL byte"
            )

    real_root = root.resolve()
    target = real_root.joinpath(*parts)
    # resolve() follows every symlink that exists along the way (folders, or a file already
    # at the target), so a link planted inside the root cannot redirect the write outside it.
    if not target.resolve().is_relative_to(real_root):
        raise UnsafePathError(rendered, root, "a symlink along the path leads outside the root")
    return target


def file_mtime(path: Path) -> datetime:
    """Last modification time of `path` in local time: the fallback when EXIF has no date."""
    try:
        return datetime.fromtimestamp(path.stat().st_mtime)
    except OSError as exc:
        raise ImageReadError(path, exc.strerror or str(exc)) from exc


def _check_fields(template: str) -> None:
    allowed = ", ".join("{" + field + "}" for field in TEMPLATE_FIELDS)
    if not template:
        raise OptionError(f"the output template is empty; use fields such as {allowed}")
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise OptionError(
            f"output template {template!r} is malformed ({exc}); write literal braces as "
            f"{{{{ and }}}}, and fields as {allowed}"
        ) from None
    for _, field, spec, conversion in parsed:
        if field is None:
            continue
        if field not in TEMPLATE_FIELDS or spec or conversion:
            raise OptionError(
                f"output template {template!r} uses {{{field}}}"
                f"{'' if not (spec or conversion) else ' with a format or conversion'}; "
                f"allowed fields are {allowed}, without format specs"
            )


def _split(rendered: str) -> list[str]:
    for separator in _SEPARATORS[1:]:
        rendered = rendered.replace(separator, _SEPARATORS[0])
    return rendered.split(_SEPARATORS[0])
