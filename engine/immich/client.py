"""Immich's REST API as AMP uses it, for servers v1.118 and later (v2.x and v3.x included).

The server's version is asked once (`GET /server/version`) and decides the few calls that
differ: upload fields (`deviceAssetId`/`deviceId` before v3), merging (`POST /people/merge`
from v3.2.1) and search paging (v3 adds `cursor`/`nextCursor`). Everything else is the same
call on every supported version. Requests go through `ImmichHttp`, which retries and turns
failures into `ImmichError`s; this module only knows endpoints and shapes.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import mimetypes
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
from pydantic.alias_generators import to_camel

from engine.errors import ImmichResponseError, OptionError
from engine.immich.auth import check_api_key
from engine.immich.http import ImmichHttp
from engine.immich.models import (
    Asset,
    AssetFace,
    AssetPage,
    MergeResult,
    PeoplePage,
    Person,
    ServerVersion,
    UploadResult,
)
from engine.immich.retry import RetryPolicy

T = TypeVar("T")
R = TypeVar("R")

MAX_PAGE_SIZE = 1000  # Immich's limit for /people and /search/metadata
DOWNLOAD_CHUNK_BYTES = 1 << 20
JobCounts = dict[str, dict[str, int | bool]]


def api_root(base_url: str) -> str:
    """`base_url` normalised to end in `/api` (given with or without it, with or without a
    trailing slash)."""
    text = base_url.strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise OptionError(
            f"Immich URL {text!r} is not an http(s) URL; give it like http://immich.local:2283"
        )
    path = parts.path.rstrip("/")
    if not path.endswith("/api"):
        path += "/api"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def checksum_base64(checksum: str) -> str:
    """A SHA-1 given as 40 hex digits or as Immich's base64 (28 characters), as base64."""
    text = checksum.strip()
    try:
        if len(text) == 40:
            return base64.b64encode(bytes.fromhex(text)).decode("ascii")
        if len(base64.b64decode(text, validate=True)) == 20:
            return text
    except (ValueError, binascii.Error):
        pass
    raise OptionError(f"{checksum!r} is not a SHA-1 checksum (40 hex digits or 28 base64 chars)")


def _segment(value: str) -> str:
    # ids go into the path; quoting keeps a malformed id from changing the route
    return quote(value, safe="")


class ImmichClient:
    """A synchronous, thread-safe client for one Immich server and one API key.

    `max_concurrency` bounds both the connection pool and `map_concurrent`'s threads.
    `transport` replaces the network (httpx.MockTransport in unit tests).
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout_s: float = 30,
        max_retries: int = 4,
        backoff_s: float = 0.5,
        max_concurrency: int = 8,
        transport: httpx.BaseTransport | None = None,
        max_retry_after_s: float = 60.0,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        if max_concurrency < 1:
            raise OptionError(f"max_concurrency must be at least 1, not {max_concurrency}")
        if max_retries < 0:
            raise OptionError(f"max_retries cannot be negative ({max_retries})")
        self.base_url = api_root(base_url)
        self.max_concurrency = max_concurrency
        policy = RetryPolicy(
            max_retries=max_retries, backoff_s=backoff_s, max_retry_after_s=max_retry_after_s
        )
        extra = {"sleep": sleep} if sleep is not None else {}
        self._http = ImmichHttp(
            self.base_url,
            check_api_key(api_key),
            timeout_s=timeout_s,
            policy=policy,
            max_connections=max_concurrency,
            transport=transport,
            **extra,
        )
        self._version: ServerVersion | None = None
        self._version_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ImmichClient(base_url={self.base_url!r}, api_key='***')"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ImmichClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- server --------------------------------------------------------------------------------

    def version(self) -> ServerVersion:
        """The server's version, asked once per client."""
        with self._version_lock:
            if self._version is None:
                path = "/server/version"
                data = self._http.get_json(path)
                self._version = self._http.parse(ServerVersion, data, "GET", path)
            return self._version

    def ping(self) -> bool:
        """True when the server answers `pong` (no key needed, but the key is sent anyway)."""
        data = self._http.get_json("/server/ping")
        return isinstance(data, dict) and data.get("res") == "pong"

    def job_counts(self) -> JobCounts:
        """Queue counts per job (`faceDetection`, `facialRecognition`, ...), as
        `{name: {active, completed, delayed, failed, paused, waiting, is_active, is_paused}}`.
        Needs an admin user's key with `job.read`."""
        path = "/jobs"
        data = self._http.get_json(path)
        if not isinstance(data, dict):
            raise ImmichResponseError(
                f"GET {path}: expected an object of queues, got {type(data).__name__}",
                method="GET",
                path=path,
            )
        counts: JobCounts = {}
        for name, queue in data.items():
            if not isinstance(queue, dict) or not isinstance(queue.get("jobCounts"), dict):
                raise ImmichResponseError(
                    f"GET {path}: queue {name!r} has no jobCounts", method="GET", path=path
                )
            entry: dict[str, int | bool] = {
                key: int(value)
                for key, value in queue["jobCounts"].items()
                if isinstance(value, int | float)
            }
            status = queue.get("queueStatus") or {}
            entry["is_active"] = bool(status.get("isActive", False))
            entry["is_paused"] = bool(status.get("isPaused", False))
            counts[name] = entry
        return counts

    def asset_statistics(self) -> dict[str, int]:
        """`{images, videos, total}` of the key's user (needs `asset.statistics`)."""
        data = self._http.get_json("/assets/statistics")
        if not isinstance(data, dict):
            raise ImmichResponseError("GET /assets/statistics: expected an object")
        return {key: int(value) for key, value in data.items() if isinstance(value, int)}

    # -- people --------------------------------------------------------------------------------

    def iter_people(self, *, with_hidden: bool = True, page_size: int = 500) -> Iterator[Person]:
        """Every person the server lists, page by page. Immich lists an unnamed person only
        once it has `minFaces` faces (3 by default)."""
        size = _page_size(page_size)
        page = 1
        path = "/people"
        while True:
            params = {"page": page, "size": size, "withHidden": str(with_hidden).lower()}
            data = self._http.get_json(path, params=params)
            result = self._http.parse(PeoplePage, data, "GET", path)
            yield from result.people
            if result.has_next_page is False or not result.people:
                return
            # Servers before v1.110 have no hasNextPage: a short page is the last one.
            if result.has_next_page is None and len(result.people) < size:
                return
            page += 1

    def person(self, person_id: str) -> Person:
        path = f"/people/{_segment(person_id)}"
        return self._http.parse(Person, self._http.get_json(path), "GET", path)

    def person_asset_count(self, person_id: str) -> int:
        """How many assets show the person (`GET /people/{id}/statistics`)."""
        path = f"/people/{_segment(person_id)}/statistics"
        data = self._http.get_json(path)
        if not isinstance(data, dict) or not isinstance(data.get("assets"), int):
            raise ImmichResponseError(f"GET {path}: expected {{assets: int}}", path=path)
        return int(data["assets"])

    def rename_person(self, person_id: str, name: str) -> Person:
        return self.update_person(person_id, name=name)

    def update_person(
        self,
        person_id: str,
        *,
        name: str | None = None,
        is_hidden: bool | None = None,
        birth_date: str | None = None,
    ) -> Person:
        """`PUT /people/{id}` with only the fields given."""
        body: dict[str, Any] = {}
        if name is not None:
            body["name"] = name
        if is_hidden is not None:
            body["isHidden"] = is_hidden
        if birth_date is not None:
            body["birthDate"] = birth_date
        path = f"/people/{_segment(person_id)}"
        return self._http.parse(
            Person, self._http.call_json("PUT", path, json_body=body), "PUT", path
        )

    def merge_people(self, target_id: str, source_ids: Iterable[str]) -> list[MergeResult]:
        """Merge `source_ids` into `target_id`: their faces move to the target and they are
        deleted; the target takes a source's name only if it has none. One result per source.

        v3.2.1+ has `POST /people/merge {ids}` whose first id is the target; older servers
        take the target in the path (`POST /people/{id}/merge {ids}`), deprecated since.
        """
        sources = [s for s in source_ids]
        if not sources:
            return []
        if self.version().at_least(3, 2, 1):
            path = "/people/merge"
            body = {"ids": [target_id, *sources]}
        else:
            path = f"/people/{_segment(target_id)}/merge"
            body = {"ids": sources}
        data = self._http.call_json("POST", path, json_body=body)
        return self._http.parse_list(MergeResult, data, "POST", path)

    # -- faces ---------------------------------------------------------------------------------

    def faces(self, asset_id: str) -> list[AssetFace]:
        """The asset's faces, boxes in pixels of its preview (`image_width` x `image_height`)."""
        path = "/faces"
        data = self._http.get_json(path, params={"id": asset_id})
        return self._http.parse_list(AssetFace, data, "GET", path)

    def reassign_face(self, face_id: str, person_id: str) -> Person:
        """Move one face to `person_id`. Immich's path id is the TARGET PERSON, the body the
        face (`PUT /faces/{personId} {id: faceId}`); the answer is the target person."""
        path = f"/faces/{_segment(person_id)}"
        data = self._http.call_json("PUT", path, json_body={"id": face_id})
        return self._http.parse(Person, data, "PUT", path)

    def create_face(
        self,
        asset_id: str,
        person_id: str,
        box_xywh: tuple[int, int, int, int],
        image_size: tuple[int, int],
    ) -> None:
        """Add a manual face (a face Immich missed) in preview pixels: `box_xywh` within an
        image of `image_size` (width, height)."""
        x, y, width, height = box_xywh
        body = {
            "assetId": asset_id,
            "personId": person_id,
            "imageWidth": image_size[0],
            "imageHeight": image_size[1],
            "x": x,
            "y": y,
            "width": width,
            "height": height,
        }
        self._http.call_json("POST", "/faces", json_body=body)

    def refresh_faces(self, asset_ids: Iterable[str]) -> None:
        """Queue face detection and recognition again for these assets."""
        ids = list(asset_ids)
        if ids:
            body = {"assetIds": ids, "name": "refresh-faces"}
            self._http.call_json("POST", "/assets/jobs", json_body=body)

    # -- assets --------------------------------------------------------------------------------

    def asset(self, asset_id: str) -> Asset:
        path = f"/assets/{_segment(asset_id)}"
        return self._http.parse(Asset, self._http.get_json(path), "GET", path)

    def iter_assets(self, *, page_size: int = MAX_PAGE_SIZE, **filters: Any) -> Iterator[Asset]:
        """Assets matching `filters` (MetadataSearchDto fields, snake_case or camelCase:
        `person_ids=[...]`, `original_path=...`), with EXIF, page by page.

        Follows `nextCursor` when the server gives one (v3), else `nextPage`.
        """
        size = _page_size(page_size)
        body: dict[str, Any] = {to_camel(key): value for key, value in filters.items()}
        body.setdefault("withExif", True)
        body["size"] = size
        path = "/search/metadata"
        seen: set[str] = set()
        while True:
            data = self._http.call_json("POST", path, json_body=body)
            if not isinstance(data, dict):
                raise ImmichResponseError(f"POST {path}: expected an object", path=path)
            page = self._http.parse(AssetPage, data.get("assets"), "POST", path)
            yield from page.items
            body.pop("cursor", None)
            body.pop("page", None)
            if page.next_cursor:
                token, key, value = f"c:{page.next_cursor}", "cursor", page.next_cursor
            elif page.next_page:
                token, key, value = f"p:{page.next_page}", "page", _page_number(page.next_page)
            else:
                return
            if token in seen or not page.items:
                # A server repeating a page token would loop forever.
                raise ImmichResponseError(
                    f"POST {path}: the server repeated page token {token!r}", path=path
                )
            seen.add(token)
            body[key] = value

    def search_person_assets(self, person_id: str, limit: int = 10) -> list[Asset]:
        """Up to `limit` assets that show the person (the removed `GET /person/{id}/assets`)."""
        if limit <= 0:
            return []
        found: list[Asset] = []
        for asset in self.iter_assets(page_size=min(limit, MAX_PAGE_SIZE), person_ids=[person_id]):
            found.append(asset)
            if len(found) >= limit:
                break
        return found

    def find_by_checksum(self, checksum: str) -> Asset | None:
        """The asset whose original has this SHA-1 (hex or base64), or None."""
        wanted = checksum_base64(checksum)
        for asset in self.iter_assets(page_size=1, checksum=wanted):
            return asset
        return None

    def download_original(
        self, asset_id: str, dest: Path, *, expected_checksum: str | None = None
    ) -> Path:
        """Stream the original to `dest` atomically: into `dest`'s name + `.part`, then
        renamed. With `expected_checksum` (SHA-1, hex or base64) a mismatch raises and leaves
        `dest` untouched."""
        path = f"/assets/{_segment(asset_id)}/original"
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial = dest.with_name(dest.name + ".part")
        digest = hashlib.sha1()
        response = self._http.send("GET", path, stream=True, headers={"accept": "*/*"})
        try:
            with open(partial, "wb") as file:
                for chunk in response.iter_bytes(DOWNLOAD_CHUNK_BYTES):
                    file.write(chunk)
                    digest.update(chunk)
                file.flush()
                os.fsync(file.fileno())
        except httpx.HTTPError as exc:
            _remove(partial)
            raise self._http.transport_error("GET", path, exc, 1) from exc
        except BaseException:
            _remove(partial)
            raise
        finally:
            response.close()
        actual = base64.b64encode(digest.digest()).decode("ascii")
        if expected_checksum is not None and actual != checksum_base64(expected_checksum):
            _remove(partial)
            raise ImmichResponseError(
                f"GET {path}: the downloaded original has SHA-1 {actual}, not the asset's "
                f"{checksum_base64(expected_checksum)}; the file changed or the download broke",
                method="GET",
                path=path,
            )
        os.replace(partial, dest)
        return dest

    def preview(self, asset_id: str) -> bytes:
        """The preview JPEG Immich detects faces on (shorter side 1440, upright)."""
        path = f"/assets/{_segment(asset_id)}/thumbnail"
        response = self._http.send(
            "GET", path, params={"size": "preview"}, headers={"accept": "image/*"}
        )
        return response.content

    def upload(
        self,
        path: Path,
        *,
        device_id: str = "amp",
        file_created_at: datetime | None = None,
    ) -> UploadResult:
        """Upload a photo (`POST /assets`); `status` says `created` or `duplicate`.

        The SHA-1 goes in `x-immich-checksum`, so a server that already has the file answers
        `duplicate` without storing it twice. Servers before v3 require `deviceAssetId` and
        `deviceId`; v3 removed them.
        """
        data = path.read_bytes()
        stat = path.stat()
        modified = datetime.fromtimestamp(stat.st_mtime, tz=timezone.utc)
        created = file_created_at or modified
        fields = {
            "fileCreatedAt": _iso(created),
            "fileModifiedAt": _iso(modified),
            "filename": path.name,
        }
        if not self.version().at_least(3):
            # The Immich CLI's convention: file name and size, whitespace removed.
            fields["deviceAssetId"] = "".join(f"{path.name}-{stat.st_size}".split())
            fields["deviceId"] = device_id
        mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"

        def extras() -> dict[str, Any]:
            return {"data": fields, "files": {"assetData": (path.name, data, mime)}}

        api_path = "/assets"
        body = self._http.call_json(
            "POST",
            api_path,
            extras=extras,
            headers={"x-immich-checksum": hashlib.sha1(data).hexdigest()},
        )
        return self._http.parse(UploadResult, body, "POST", api_path)

    # -- concurrency ---------------------------------------------------------------------------

    def map_concurrent(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """`[fn(item) for item in items]` on up to `max_concurrency` threads, in order. The
        first exception cancels what has not started and is raised."""
        work = list(items)
        if len(work) <= 1 or self.max_concurrency == 1:
            return [fn(item) for item in work]
        executor = ThreadPoolExecutor(
            max_workers=min(self.max_concurrency, len(work)), thread_name_prefix="immich"
        )
        try:
            futures = [executor.submit(fn, item) for item in work]
            return [future.result() for future in futures]
        finally:
            executor.shutdown(wait=True, cancel_futures=True)


def _page_size(size: int) -> int:
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise OptionError(f"page size must be within 1..{MAX_PAGE_SIZE}, not {size}")
    return size


def _page_number(token: str) -> int:
    try:
        return int(token)
    except ValueError as exc:
        raise ImmichResponseError(
            f"POST /search/metadata: nextPage {token!r} is not a number"
        ) from exc


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
