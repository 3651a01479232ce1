"""Where a task may read, write and call back, checked before anything is queued.

- `resolve_input_file`: the submitted file, symlinks resolved, must lie under an input root
  (the roots resolved too), exist, be a regular file and have an image header.
- `resolve_storage`: the bucket must be configured, and the path template must stay inside
  its output root (`engine.io.paths.render_output_path`, with a sample date and name).
- `check_callback_url`: the callback must be http(s) and must not target a loopback,
  private, link-local or otherwise non-public address unless its host is allowed. The worker
  calls it again just before sending, since a name can resolve differently later.

Each refusal is an `ApiError` with a stable code.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

from engine.errors import ImageReadError, OptionError, UnsafePathError
from engine.io.decode import probe_image
from engine.io.paths import render_output_path
from engine.service.errors import ApiError

_SAMPLE_SOURCE = Path("IMG_20230615_103045.jpg")
_SAMPLE_DATE = datetime(2023, 6, 15, 10, 30, 45)

Resolver = Callable[[str], Sequence[str]]


def resolve_input_file(file_path: str, roots: Sequence[Path]) -> Path:
    """The real path of `file_path`, checked: under a root, an existing file, an image.

    The root check comes first, on the path with every existing symlink resolved, so a
    client learns nothing about files outside the roots, not even whether they exist.
    """
    if "\x00" in file_path:
        raise ApiError(422, "invalid_file_path", "file_path holds a NUL byte")
    path = Path(file_path)
    if not path.is_absolute():
        raise ApiError(
            422, "invalid_file_path", f"file_path {file_path!r} must be an absolute path"
        )
    try:
        lexical = path.resolve(strict=False)
    except (OSError, RuntimeError) as exc:  # a symlink loop
        raise ApiError(422, "invalid_file_path", f"file_path cannot be resolved: {exc}") from None
    if not any(lexical.is_relative_to(root) for root in _real_roots(roots)):
        raise ApiError(
            403,
            "path_not_allowed",
            f"file_path {file_path!r} is not under an input root of this service "
            "(symlinks are followed before the check)",
            {"input_roots": [str(root) for root in roots]},
        )
    try:
        real = path.resolve(strict=True)
    except FileNotFoundError:
        raise ApiError(422, "file_not_found", f"no file at {file_path!r}") from None
    except (OSError, RuntimeError) as exc:
        raise ApiError(422, "file_not_found", f"cannot reach {file_path!r}: {exc}") from None
    if not real.is_file():
        raise ApiError(
            422, "not_a_file", f"{file_path!r} is not a regular file (a folder?); give a photo"
        )
    try:
        probe_image(real)
    except ImageReadError as exc:
        raise ApiError(422, "not_an_image", f"{file_path!r}: {exc.reason}") from None
    return real


def _real_roots(roots: Sequence[Path]) -> list[Path]:
    return [Path(os.path.realpath(root)) for root in roots]


def resolve_storage(
    bucket: str | None, path_template: str | None, buckets: Mapping[str, Path]
) -> Path:
    """The output root of `bucket`, once `path_template` is shown to stay inside it."""
    known = sorted(buckets)
    if bucket is None:
        raise ApiError(
            422,
            "storage_required",
            "this workflow stores its output: set parameters.storage.bucket",
            {"buckets": known},
        )
    if bucket not in buckets:
        raise ApiError(422, "unknown_bucket", f"no storage bucket {bucket!r}", {"buckets": known})
    if path_template is None:
        raise ApiError(422, "invalid_path_template", "set parameters.storage.path_template")
    root = buckets[bucket]
    try:
        render_output_path(
            root, path_template, source=_SAMPLE_SOURCE, taken_at=_SAMPLE_DATE, ext="jpg"
        )
    except (OptionError, UnsafePathError) as exc:
        raise ApiError(422, "invalid_path_template", str(exc).replace(str(root), bucket)) from None
    return root


def check_callback_url(
    url: str, allowed_hosts: Collection[str], *, resolve: Resolver | None = None
) -> None:
    """Refuse a callback target that is not public, unless its host is in `allowed_hosts`.

    Refused: a scheme other than http(s), no host, an IP literal or a name resolving to an
    address that is loopback, private, link-local, multicast, reserved or unspecified (any
    of a name's addresses). A name that does not resolve passes: nothing can be sent to it,
    and the check runs again before sending. Raises ApiError `callback_not_allowed`.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise _refused(url, f"scheme {parts.scheme!r} is not http or https")
    host = (parts.hostname or "").lower().rstrip(".")
    if not host:
        raise _refused(url, "it names no host")
    if host in {allowed.lower().strip("[]").rstrip(".") for allowed in allowed_hosts}:
        return
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        if host == "localhost" or host.endswith(".localhost"):
            raise _refused(url, f"host {host!r} is the loopback interface") from None
        names = (resolve or _resolve)(host)
        addresses = [ipaddress.ip_address(address.split("%")[0]) for address in names]
    for address in addresses:
        if not _public(address):
            raise _refused(
                url,
                f"host {host!r} is {'' if str(address) == host else f'at {address}, '}"
                "a loopback, private, link-local or reserved address; add it to "
                "callback_allowed_hosts (AMP_CALLBACK_ALLOWED_HOSTS) if it is trusted",
            )


def _public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def _resolve(host: str) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return []
    return [str(info[4][0]) for info in infos]


def _refused(url: str, reason: str) -> ApiError:
    return ApiError(
        422, "callback_not_allowed", f"callback_url is refused: {reason}", {"callback_url": url}
    )
