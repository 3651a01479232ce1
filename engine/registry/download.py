"""Fetch official model files and check them against the manifest's sha256.

A download streams into `<file>.part`, resumes it with a Range request, and is renamed to its
final name only once size and sha256 match, so a final name always holds the official bytes.
Archives (face packs) are downloaded the same way, then their members are extracted into a
temporary directory, checked, and moved to `DEST/NAME/` in one rename.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
import re
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal
from urllib.parse import urlsplit

import httpx

from engine import __version__
from engine.errors import ModelChecksumError, ModelDownloadError, ModelError
from engine.registry.locate import locate_file
from engine.registry.manifest import ModelEntry, ModelFile

CHUNK_BYTES = 1 << 20
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)

ProgressCallback = Callable[[str, int, int | None], None]
"""Called as `(label, done_bytes, total_bytes)` when a download starts and after each chunk;
`total_bytes` is None when neither the manifest nor the server says."""

VerifyStatus = Literal["ok", "mismatch", "missing"]


@dataclass(frozen=True)
class VerifyResult:
    """One manifest file checked in the lookup dirs: `missing`, or found and `ok`/`mismatch`."""

    model: str
    file: str
    status: VerifyStatus
    path: Path | None
    expected_sha256: str
    actual_sha256: str | None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def verify_model(entry: ModelEntry, dirs: Sequence[Path]) -> list[VerifyResult]:
    """Check the first copy of each of `entry`'s files found in `dirs`."""
    results = []
    for file in entry.files:
        path = locate_file(entry, file, dirs)
        actual = sha256_file(path) if path is not None else None
        status: VerifyStatus = (
            "missing" if actual is None else "ok" if actual == file.sha256 else "mismatch"
        )
        results.append(VerifyResult(entry.name, file.name, status, path, file.sha256, actual))
    return results


def fetch_model(
    entry: ModelEntry,
    dest_dir: Path,
    *,
    client: httpx.Client | None = None,
    progress: ProgressCallback | None = None,
) -> list[Path]:
    """Download `entry` into `dest_dir` (a face pack into `dest_dir/NAME/`); return its files.

    Files already in place with the official sha256 are not downloaded again.
    Raises ModelDownloadError (network, HTTP, bad archive) with a hint to place the files by
    hand, and ModelChecksumError when the bytes are not the official ones.
    """
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelError(f"cannot create model directory {dest_dir}: {exc.strerror}") from exc
    with _http_client(client) as http:
        if entry.archive_url is not None:
            return _fetch_archive(entry, entry.archive_url, dest_dir, http, progress)
        return [_fetch_file(file, dest_dir, http, progress) for file in entry.files]


@contextlib.contextmanager
def _http_client(client: httpx.Client | None) -> Iterator[httpx.Client]:
    if client is not None:
        yield client
        return
    headers = {"User-Agent": f"amp/{__version__}"}
    with httpx.Client(timeout=DEFAULT_TIMEOUT, headers=headers) as own:
        yield own


def _is_official(path: Path, file: ModelFile) -> bool:
    if not path.is_file():
        return False
    if file.size is not None and path.stat().st_size != file.size:
        return False
    return sha256_file(path) == file.sha256


def _check(path: Path, file: ModelFile, report_as: Path) -> None:
    actual = sha256_file(path)
    size_ok = file.size is None or path.stat().st_size == file.size
    if actual != file.sha256 or not size_ok:
        path.unlink(missing_ok=True)
        raise ModelChecksumError(report_as, file.sha256, actual)


def _fetch_file(
    file: ModelFile, dest_dir: Path, http: httpx.Client, progress: ProgressCallback | None
) -> Path:
    if file.url is None:  # the manifest gives every file a url when there is no archive
        raise ModelError(f"{file.name} has no download url in the manifest")
    final = dest_dir / file.name
    if _is_official(final, file):
        return final
    part = final.with_name(f"{final.name}.part")
    hint = (
        f"install it by hand: download {file.url}, check that its sha256 is {file.sha256} "
        f"and save it as {final}"
    )
    _download(http, file.url, part, file.size, file.name, progress, hint)
    _check(part, file, report_as=part)
    os.replace(part, final)
    return final


def _fetch_archive(
    entry: ModelEntry,
    archive_url: str,
    dest_dir: Path,
    http: httpx.Client,
    progress: ProgressCallback | None,
) -> list[Path]:
    pack_dir = dest_dir / entry.name
    paths = [pack_dir / f.name for f in entry.files]
    if all(_is_official(p, f) for p, f in zip(paths, entry.files, strict=True)):
        return paths
    archive_name = posixpath.basename(urlsplit(archive_url).path) or f"{entry.name}.zip"
    part = dest_dir / f"{archive_name}.part"
    hint = (
        f"install it by hand: download {archive_url}, extract "
        f"{', '.join(f.name for f in entry.files)} into {pack_dir} and run "
        f"`amp models verify {entry.name}`"
    )
    _download(http, archive_url, part, None, archive_name, progress, hint)
    try:
        _extract_members(entry, part, pack_dir, archive_url, hint)
    finally:
        # Either the members are in place or the archive is bad; resuming it would not help.
        part.unlink(missing_ok=True)
    return paths


def _download(
    http: httpx.Client,
    url: str,
    part: Path,
    expected_size: int | None,
    label: str,
    progress: ProgressCallback | None,
    hint: str,
) -> None:
    """Stream `url` into `part`, resuming what is there; the caller checks the result."""
    try:
        for _ in range(2):  # a second pass only after the server rejected our Range
            if _stream_once(http, url, part, expected_size, label, progress):
                return
        raise ModelDownloadError(f"cannot download {url}: the server refuses to resume; {hint}")
    except httpx.HTTPStatusError as exc:
        raise ModelDownloadError(
            f"cannot download {url}: HTTP {exc.response.status_code}; {hint}"
        ) from exc
    except httpx.HTTPError as exc:
        reason = str(exc) or type(exc).__name__
        resume = "run the command again to resume, or " if part.is_file() else ""
        raise ModelDownloadError(f"cannot download {url} ({reason}); {resume}{hint}") from exc


def _stream_once(
    http: httpx.Client,
    url: str,
    part: Path,
    expected_size: int | None,
    label: str,
    progress: ProgressCallback | None,
) -> bool:
    """One GET; False when the .part was discarded and the download must start over."""
    offset = part.stat().st_size if part.is_file() else 0
    if expected_size is not None and offset > expected_size:
        part.unlink()
        offset = 0
    if expected_size is not None and offset == expected_size:
        return True
    # identity: byte ranges must address the file itself, not a compressed stream of it.
    headers = {"Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    with http.stream("GET", url, headers=headers, follow_redirects=True) as response:
        if response.status_code == httpx.codes.REQUESTED_RANGE_NOT_SATISFIABLE:
            part.unlink(missing_ok=True)
            return False
        response.raise_for_status()
        if response.status_code == httpx.codes.PARTIAL_CONTENT:
            if _content_range_start(response) != offset:
                part.unlink(missing_ok=True)
                return False
        else:  # 200: the server ignored Range and sends the whole file
            offset = 0
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length and length.isdigit() else expected_size
        done = offset
        with part.open("ab" if offset else "wb") as out:
            if progress is not None:
                progress(label, done, total)
            for chunk in response.iter_bytes(CHUNK_BYTES):
                out.write(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(label, done, total)
                if expected_size is not None and done > expected_size:
                    break  # not the official file; the checksum will say so
    return True


_CONTENT_RANGE = re.compile(r"^bytes (\d+)-\d+/(?:\d+|\*)$")


def _content_range_start(response: httpx.Response) -> int | None:
    match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
    return int(match.group(1)) if match else None


def _is_unsafe_member(name: str) -> bool:
    """Absolute paths, drive letters and `..` components could write outside the target."""
    normalized = name.replace("\\", "/")
    path = PurePosixPath(normalized)
    return (
        path.is_absolute() or ".." in path.parts or re.match(r"^[A-Za-z]:", normalized) is not None
    )


def _extract_members(
    entry: ModelEntry, archive: Path, pack_dir: Path, archive_url: str, hint: str
) -> None:
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as exc:
        raise ModelDownloadError(
            f"{archive_url} is not a valid zip archive ({exc}); {hint}"
        ) from exc
    with zf:
        infos = [info for info in zf.infolist() if not info.is_dir()]
        unsafe = [info.filename for info in infos if _is_unsafe_member(info.filename)]
        if unsafe:
            raise ModelDownloadError(
                f"{archive_url} is not the official archive: member {unsafe[0]!r} would be "
                f"written outside {pack_dir}; {hint}"
            )
        # Members are matched by file name, so `buffalo_l/det_10g.onnx` and `det_10g.onnx`
        # both work; nothing else from the archive is written.
        by_name: dict[str, zipfile.ZipInfo] = {}
        for info in infos:
            by_name.setdefault(PurePosixPath(info.filename.replace("\\", "/")).name, info)
        staging = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=pack_dir.parent))
        try:
            for file in entry.files:
                member = by_name.get(file.name)
                if member is None:
                    raise ModelDownloadError(f"{archive_url} has no member {file.name}; {hint}")
                target = staging / file.name
                _extract_one(zf, member, target, file)
                _check(target, file, report_as=pack_dir / file.name)
            _replace_dir(staging, pack_dir)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise


def _extract_one(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, file: ModelFile) -> None:
    """Copy one member, stopping one byte past the pinned size (no zip bombs)."""
    limit = None if file.size is None else file.size + 1
    written = 0
    with zf.open(info) as source, target.open("wb") as out:
        while chunk := source.read(CHUNK_BYTES):
            out.write(chunk)
            written += len(chunk)
            if limit is not None and written >= limit:
                break


def _replace_dir(new: Path, final: Path) -> None:
    if not final.exists():
        os.replace(new, final)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{final.name}.old.", dir=final.parent))
    os.replace(final, old / final.name)
    os.replace(new, final)
    shutil.rmtree(old, ignore_errors=True)
