"""A faithful stand-in for Immich: a real HTTP server on 127.0.0.1 serving a FixtureLibrary.

It answers the endpoints AMP uses with the shapes of Immich's OpenAPI document (SDK 2.4.0 and
3.2.2, ../shared/immich/*.d.ts), in one flavour per server:

- `v2.4` (2.4.0): assets carry `people[].faces` and `unassignedFaces`; uploads require
  `deviceAssetId` and `deviceId`; merging only through `POST /people/{id}/merge`; search pages
  by `page`/`nextPage`.
- `v3.2` (3.2.2): `people` without faces; uploads without device fields (extra fields are
  stripped, as Immich's whitelisting validation does); `POST /people/merge {ids}` (first id is
  the target) beside the deprecated per-id route; search answers `nextCursor` unless the request
  paged by `page`.
- `v1.118` (1.118.0): like v2.4, for the oldest supported server.

Like Immich: `x-api-key` must match (401 `Invalid API key` / `Authentication required`
otherwise, except the public /server/ping and /server/version); a key without an endpoint's
permission gets 403 `Missing required permission: <permission>`; an unknown id gets 400
`Not found or no <permission> access`; a malformed id 400 `id must be a UUID`; /jobs needs an
admin user; GET /people lists an unnamed person only with at least `min_faces` faces (Immich's
default 3). Errors have Immich's body `{message, error, statusCode}`.

Tests drive failures from Python, not HTTP: `fail_next`, `slow`, `malformed`, `not_found`,
`disconnect`, `deny`. Mutations (rename, merge, reassign, create face, upload) change
`library`; `requests` logs every call (never the key).
"""

from __future__ import annotations

import base64
import binascii
import email.parser
import email.policy
import hashlib
import io
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import PurePosixPath
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from PIL import Image, ImageOps

from tests.immich.fixture_library import (
    FixtureAsset,
    FixtureFace,
    FixtureLibrary,
    FixturePerson,
    preview_size,
    stable_id,
)

Flavour = Literal["v1.118", "v2.4", "v3.2"]
FLAVOUR_VERSIONS: dict[str, tuple[int, int, int]] = {
    "v1.118": (1, 118, 0),
    "v2.4": (2, 4, 0),
    "v3.2": (3, 2, 2),
}
DEFAULT_API_KEY = "fake-immich-key-3b1f9a7c5d2e4f60a8b9c0d1e2f3a4b5"
UPLOAD_ROOT = "/usr/src/app/upload/upload"
THUMBS_ROOT = "/usr/src/app/upload/thumbs"
THUMBNAIL_SHORT_SIDE = 250

_QUEUES_COMMON = (
    "backgroundTask", "backupDatabase", "duplicateDetection", "faceDetection",
    "facialRecognition", "library", "metadataExtraction", "migration", "notifications",
    "search", "sidecar", "smartSearch", "storageTemplateMigration", "thumbnailGeneration",
    "videoConversion",
)  # fmt: skip
QUEUES = {
    "v1.118": _QUEUES_COMMON,
    "v2.4": (*_QUEUES_COMMON, "ocr", "workflow"),
    "v3.2": (*_QUEUES_COMMON, "ocr", "workflow", "editor", "integrityCheck"),
}
ASSET_JOB_NAMES = ("refresh-faces", "refresh-metadata", "regenerate-thumbnail", "transcode-video")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)


@dataclass
class LoggedRequest:
    """One request as the server saw it. The API key is never stored: only whether one came."""

    method: str
    path: str  # as requested, e.g. /api/people
    api_path: str  # after /api, e.g. /people
    query: dict[str, str]
    json: Any = None
    form: dict[str, str] = field(default_factory=dict)  # multipart fields that are not files
    files: dict[str, int] = field(default_factory=dict)  # multipart file field -> bytes
    checksum_header: str | None = None
    sent_key: bool = False
    status: int = 0


@dataclass
class _Fault:
    kind: Literal["status", "slow", "malformed", "disconnect"]
    prefix: str
    method: str | None
    remaining: int | None  # None: every matching request
    status: int = 500
    retry_after: str | None = None
    message: str | None = None
    seconds: float = 0.0

    def matches(self, method: str, api_path: str) -> bool:
        if self.remaining is not None and self.remaining <= 0:
            return False
        return api_path.startswith(self.prefix) and self.method in (None, method)


@dataclass
class _Reply:
    status: int
    body: Any = None  # JSON-able, or bytes with content_type
    content_type: str = "application/json; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


class _HttpError(Exception):
    def __init__(self, status: int, message: str | list[str]) -> None:
        super().__init__(str(message))
        self.status = status
        self.message = message


@dataclass(frozen=True)
class _Route:
    method: str
    pattern: re.Pattern[str]
    handler: Callable[[FakeImmich, _Request], _Reply]
    permission: str | None  # None: public
    admin: bool = False
    min_version: tuple[int, int, int] = (0, 0, 0)


@dataclass
class _Request:
    method: str
    api_path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    params: dict[str, str]
    log: LoggedRequest

    def json_body(self) -> Any:
        if not self.body:
            return {}
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise _HttpError(400, f"Unexpected token in JSON: {exc}") from exc


def _error_body(status: int, message: str | list[str]) -> dict[str, Any]:
    return {"message": message, "error": HTTPStatus(status).phrase, "statusCode": status}


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _normalise_prefix(prefix: str) -> str:
    prefix = "/" + prefix.lstrip("/")
    return prefix[4:] if prefix == "/api" or prefix.startswith("/api/") else prefix


class FakeImmich:
    """Start with `start()` (or as a context manager); `url` is the server root, `api_url`
    the API root. `library` is the live, mutable state."""

    def __init__(
        self,
        library: FixtureLibrary,
        *,
        flavour: Flavour = "v3.2",
        api_key: str = DEFAULT_API_KEY,
        missing_permissions: set[str] | None = None,
        admin: bool = True,
        min_faces: int = 3,
    ) -> None:
        if flavour not in FLAVOUR_VERSIONS:
            raise ValueError(f"unknown flavour {flavour!r}")
        self.library = library
        self.flavour = flavour
        self.version = FLAVOUR_VERSIONS[flavour]
        self.api_key = api_key
        self.missing_permissions = set(missing_permissions or ())
        self.admin = admin
        self.min_faces = min_faces
        self.requests: list[LoggedRequest] = []
        self.asset_jobs: list[tuple[str, list[str]]] = []  # (name, asset ids) of POST /assets/jobs
        self.queue_counts: dict[str, dict[str, int]] = {}
        self.on_asset_job: Callable[[FakeImmich, str, list[str]], None] | None = None
        self._faults: list[_Fault] = []
        self._lock = threading.RLock()
        self._previews: dict[tuple[str, str], bytes] = {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> FakeImmich:
        fake = self

        class Handler(_Handler):
            owner = fake

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        server.block_on_close = False
        server.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeImmich:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "the fake server is not started"
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return self.url + "/api"

    # -- fault injection -----------------------------------------------------------------------

    def fail_next(
        self,
        path_prefix: str,
        status: int,
        times: int | None = 1,
        retry_after: float | str | None = None,
        *,
        message: str | None = None,
        method: str | None = None,
    ) -> None:
        """The next `times` matching requests (None: all) answer `status` with Immich's error
        body; `retry_after` (seconds or an HTTP date) adds a Retry-After header."""
        self._add(
            _Fault(
                "status",
                _normalise_prefix(path_prefix),
                method,
                times,
                status=status,
                retry_after=None if retry_after is None else str(retry_after),
                message=message,
            )
        )

    def not_found(
        self, path_prefix: str, times: int | None = 1, *, method: str | None = None
    ) -> None:
        self.fail_next(path_prefix, 404, times, message="Not Found", method=method)

    def slow(
        self,
        path_prefix: str,
        seconds: float,
        times: int | None = None,
        *,
        method: str | None = None,
    ) -> None:
        """Matching requests wait `seconds` before being answered normally."""
        self._add(_Fault("slow", _normalise_prefix(path_prefix), method, times, seconds=seconds))

    def malformed(
        self, path_prefix: str, times: int | None = 1, *, method: str | None = None
    ) -> None:
        """Matching requests get 200 with a body that is not valid JSON."""
        self._add(_Fault("malformed", _normalise_prefix(path_prefix), method, times))

    def disconnect(
        self, path_prefix: str, times: int | None = 1, *, method: str | None = None
    ) -> None:
        """Matching requests have their connection closed without an answer."""
        self._add(_Fault("disconnect", _normalise_prefix(path_prefix), method, times))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def deny(self, *permissions: str) -> None:
        """The key loses these permissions (403 on endpoints that need them)."""
        self.missing_permissions.update(permissions)

    def allow(self, *permissions: str) -> None:
        self.missing_permissions.difference_update(permissions)

    def set_queue(self, name: str, **counts: int) -> None:
        """Counts GET /jobs reports for queue `name` (active, waiting, ...)."""
        self.queue_counts.setdefault(name, {}).update(counts)

    def _add(self, fault: _Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    # -- request log ---------------------------------------------------------------------------

    def calls(self, method: str | None = None, path_prefix: str = "") -> list[LoggedRequest]:
        prefix = _normalise_prefix(path_prefix) if path_prefix else ""
        with self._lock:
            return [
                r
                for r in self.requests
                if (method is None or r.method == method) and r.api_path.startswith(prefix)
            ]

    def count(self, method: str | None = None, path_prefix: str = "") -> int:
        return len(self.calls(method, path_prefix))

    def clear_log(self) -> None:
        with self._lock:
            self.requests.clear()

    # -- helpers for tests ---------------------------------------------------------------------

    def add_face(
        self,
        asset_id: str,
        box: tuple[int, int, int, int],
        person_id: str | None = None,
        *,
        truth: str | None = None,
    ) -> FixtureFace:
        """A machine-learning face on an asset (e.g. from an `on_asset_job` hook)."""
        with self._lock:
            asset = self.library.assets[asset_id]
            face = FixtureFace(
                id=str(uuid.uuid4()),
                asset_id=asset_id,
                box=box,
                image_width=asset.preview_width,
                image_height=asset.preview_height,
                person_id=person_id,
                truth=truth,
                box_original=tuple(float(v) for v in box),  # type: ignore[arg-type]
            )
            self.library.faces[face.id] = face
            return face

    # -- request handling ----------------------------------------------------------------------

    def _handle(self, handler: _Handler) -> None:
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("content-length") or 0)
        body = handler.rfile.read(length) if length else b""
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        path = parts.path
        api_path = path[4:] if path == "/api" or path.startswith("/api/") else ""
        method = handler.command
        headers = {k.lower(): v for k, v in handler.headers.items()}
        entry = LoggedRequest(
            method=method,
            path=path,
            api_path=api_path,
            query=query,
            checksum_header=headers.get("x-immich-checksum"),
            sent_key="x-api-key" in headers,
        )
        if "application/json" in headers.get("content-type", "") and body:
            try:
                entry.json = json.loads(body)
            except ValueError:
                entry.json = None
        with self._lock:
            self.requests.append(entry)
        request = _Request(method, api_path, query, headers, body, {}, entry)
        reply = self._respond(request, path)
        if reply is None:  # a disconnect fault
            entry.status = 0
            handler.close_connection = True
            return
        entry.status = reply.status
        handler.send_reply(reply)

    def _respond(self, request: _Request, path: str) -> _Reply | None:
        if not path.startswith("/api"):
            # Immich serves its web app outside /api: HTML, not JSON.
            return _Reply(200, b"<!doctype html><title>Immich</title>", "text/html; charset=utf-8")
        fault = self._take_fault(request.method, request.api_path)
        if fault is not None:
            if fault.kind == "disconnect":
                return None
            if fault.kind == "malformed":
                return _Reply(200, b'{"people": [{"id": "', "application/json; charset=utf-8")
            headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
            message = fault.message or HTTPStatus(fault.status).phrase
            return _Reply(fault.status, _error_body(fault.status, message), headers=headers)
        try:
            route = self._route(request)
            self._authorise(request, route)
            with self._lock:
                return route.handler(self, request)
        except _HttpError as exc:
            return _Reply(exc.status, _error_body(exc.status, exc.message))

    def _take_fault(self, method: str, api_path: str) -> _Fault | None:
        delay = 0.0
        chosen: _Fault | None = None
        with self._lock:
            for fault in self._faults:
                if not fault.matches(method, api_path):
                    continue
                if fault.kind == "slow":
                    if delay == 0.0:
                        delay = fault.seconds
                        if fault.remaining is not None:
                            fault.remaining -= 1
                    continue
                chosen = fault
                if fault.remaining is not None:
                    fault.remaining -= 1
                break
        if delay:
            time.sleep(delay)
        return chosen

    def _route(self, request: _Request) -> _Route:
        for route in ROUTES:
            match = route.pattern.match(request.api_path)
            if match is None or self.version < route.min_version:
                continue
            if route.method != request.method:
                continue
            request.params = match.groupdict()
            for name, value in request.params.items():
                if not _UUID.match(value):
                    raise _HttpError(400, [f"{name} must be a UUID"])
            return route
        raise _HttpError(404, f"Cannot {request.method} /api{request.api_path}")

    def _authorise(self, request: _Request, route: _Route) -> None:
        if route.permission is None:
            return
        key = request.headers.get("x-api-key")
        if key is None:
            raise _HttpError(401, "Authentication required")
        if key != self.api_key:
            raise _HttpError(401, "Invalid API key")
        if route.admin and not self.admin:
            raise _HttpError(403, "Forbidden")
        if route.permission in self.missing_permissions:
            raise _HttpError(403, f"Missing required permission: {route.permission}")

    # -- shapes --------------------------------------------------------------------------------

    @property
    def _v3(self) -> bool:
        return self.version >= (3, 0, 0)

    def _person_json(self, person: FixturePerson) -> dict[str, Any]:
        return {
            "id": person.id,
            "name": person.name,
            "birthDate": person.birth_date,
            "thumbnailPath": f"{THUMBS_ROOT}/{self.library.owner_id}/{person.id[:2]}/"
            f"{person.id[2:4]}/{person.id}.jpeg",
            "isHidden": person.is_hidden,
            "isFavorite": person.is_favorite,
            "updatedAt": "2024-06-01T12:00:00.000Z",
        }

    def _face_json(self, face: FixtureFace, *, with_person: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": face.id,
            "boundingBoxX1": face.box[0],
            "boundingBoxY1": face.box[1],
            "boundingBoxX2": face.box[2],
            "boundingBoxY2": face.box[3],
            "imageWidth": face.image_width,
            "imageHeight": face.image_height,
            "sourceType": face.source_type,
        }
        if with_person:
            person = self.library.people.get(face.person_id) if face.person_id else None
            data["person"] = self._person_json(person) if person else None
        return data

    def _exif_json(self, asset: FixtureAsset) -> dict[str, Any]:
        return {
            "exifImageWidth": asset.exif_width,
            "exifImageHeight": asset.exif_height,
            "orientation": None if asset.orientation is None else str(asset.orientation),
            "dateTimeOriginal": _iso(asset.date_time_original)
            if asset.date_time_original
            else None,
            "fileSizeInByte": asset.file_size,
            "make": None,
            "model": None,
            "lensModel": None,
            "city": None,
            "country": None,
            "state": None,
            "description": "",
            "latitude": None,
            "longitude": None,
            "timeZone": None,
            "rating": None,
            "projectionType": None,
        }

    def _asset_json(
        self, asset: FixtureAsset, *, with_exif: bool = True, with_people: bool = True
    ) -> dict[str, Any]:
        created = _iso(asset.file_created_at)
        width, height = asset.upright_size
        data: dict[str, Any] = {
            "id": asset.id,
            "type": "IMAGE",
            "checksum": asset.checksum,
            "createdAt": created,
            "updatedAt": created,
            "fileCreatedAt": created,
            "fileModifiedAt": created,
            "localDateTime": created,
            "hasMetadata": True,
            "isArchived": False,
            "isFavorite": False,
            "isOffline": False,
            "isTrashed": False,
            "libraryId": None,
            "livePhotoVideoId": None,
            "originalFileName": asset.original_file_name,
            "originalMimeType": asset.mime_type,
            "originalPath": asset.original_path,
            "ownerId": self.library.owner_id,
            "thumbhash": None,
            "visibility": "timeline",
            "duplicateId": None,
            "resized": True,
        }
        if self._v3:
            data.update(duration=None, isEdited=False, width=width, height=height)
        else:
            data.update(
                duration="0:00:00.00000",
                deviceAssetId=asset.device_asset_id,
                deviceId=asset.device_id,
            )
        if with_exif:
            data["exifInfo"] = self._exif_json(asset)
        if with_people:
            faces = sorted(self.library.faces_of(asset.id), key=lambda f: f.box[0])
            people: dict[str, list[FixtureFace]] = {}
            for face in faces:
                if face.person_id:
                    people.setdefault(face.person_id, []).append(face)
            if self._v3:
                data["people"] = [self._person_json(self.library.people[p]) for p in people]
            else:
                data["people"] = [
                    {
                        **self._person_json(self.library.people[p]),
                        "faces": [self._face_json(f, with_person=False) for f in fs],
                    }
                    for p, fs in people.items()
                ]
                data["unassignedFaces"] = [
                    self._face_json(f, with_person=False) for f in faces if not f.person_id
                ]
        return data

    # -- lookups -------------------------------------------------------------------------------

    def _asset(self, asset_id: str, permission: str = "asset.read") -> FixtureAsset:
        asset = self.library.assets.get(asset_id)
        if asset is None:
            raise _HttpError(400, f"Not found or no {permission} access")
        return asset

    def _person(self, person_id: str, permission: str = "person.read") -> FixturePerson:
        person = self.library.people.get(person_id)
        if person is None:
            raise _HttpError(400, f"Not found or no {permission} access")
        return person

    def _listed(self, person: FixturePerson) -> bool:
        return bool(person.name) or len(self.library.faces_of_person(person.id)) >= self.min_faces

    # -- endpoints -----------------------------------------------------------------------------

    def ping(self, request: _Request) -> _Reply:
        return _Reply(200, {"res": "pong"})

    def server_version(self, request: _Request) -> _Reply:
        major, minor, patch = self.version
        body: dict[str, Any] = {"major": major, "minor": minor, "patch": patch}
        if self._v3:
            body["prerelease"] = None
        return _Reply(200, body)

    def jobs(self, request: _Request) -> _Reply:
        body = {}
        for name in QUEUES[self.flavour]:
            counts = {
                "active": 0,
                "completed": 0,
                "delayed": 0,
                "failed": 0,
                "paused": 0,
                "waiting": 0,
            }
            counts.update(self.queue_counts.get(name, {}))
            body[name] = {
                "jobCounts": counts,
                "queueStatus": {"isActive": counts["active"] > 0, "isPaused": False},
            }
        return _Reply(200, body)

    def asset_statistics(self, request: _Request) -> _Reply:
        total = len(self.library.assets)
        return _Reply(200, {"images": total, "videos": 0, "total": total})

    def people(self, request: _Request) -> _Reply:
        page, size = (
            _int_param(request.query, "page", 1, 1),
            _int_param(request.query, "size", 500, 1),
        )
        if size > 1000:
            raise _HttpError(400, ["size must not be greater than 1000"])
        with_hidden = request.query.get("withHidden", "false") == "true"
        eligible = [p for p in self.library.people.values() if self._listed(p)]
        hidden = sum(p.is_hidden for p in eligible)
        shown = [p for p in eligible if with_hidden or not p.is_hidden]
        shown.sort(
            key=lambda p: (
                p.is_hidden,
                not p.is_favorite,
                p.name == "",
                -len(self.library.faces_of_person(p.id)),
                p.name,
                p.id,
            )
        )
        start = (page - 1) * size
        chunk = shown[start : start + size]
        return _Reply(
            200,
            {
                "people": [self._person_json(p) for p in chunk],
                "total": len(shown),
                "hidden": hidden,
                "hasNextPage": start + size < len(shown),
            },
        )

    def person(self, request: _Request) -> _Reply:
        return _Reply(200, self._person_json(self._person(request.params["id"])))

    def person_statistics(self, request: _Request) -> _Reply:
        person = self._person(request.params["id"])
        assets = {f.asset_id for f in self.library.faces_of_person(person.id)}
        return _Reply(200, {"assets": len(assets)})

    def update_person(self, request: _Request) -> _Reply:
        person = self._person(request.params["id"], "person.update")
        body = request.json_body()
        if not isinstance(body, dict):
            raise _HttpError(400, ["body must be an object"])
        if "name" in body:
            if not isinstance(body["name"], str):
                raise _HttpError(400, ["name must be a string"])
            person.name = body["name"]
        if "isHidden" in body:
            person.is_hidden = bool(body["isHidden"])
        if "isFavorite" in body:
            person.is_favorite = bool(body["isFavorite"])
        if "birthDate" in body:
            person.birth_date = body["birthDate"]
        return _Reply(200, self._person_json(person))

    def merge_person_legacy(self, request: _Request) -> _Reply:
        target = self._person(request.params["id"], "person.merge")
        ids = _ids(request.json_body())
        if target.id in ids:
            raise _HttpError(400, "Cannot merge a person into themselves")
        return _Reply(200, self._merge(target, ids))

    def merge_people(self, request: _Request) -> _Reply:
        ids = _ids(request.json_body())
        if len(ids) < 2:
            raise _HttpError(400, "At least two people are required for merging")
        if len(set(ids)) != len(ids):
            raise _HttpError(400, "Cannot merge a person into themselves")
        target = self.library.people.get(ids[0])
        if target is None:
            return _Reply(200, [{"id": i, "success": False, "error": "not_found"} for i in ids])
        return _Reply(200, self._merge(target, ids[1:]))

    def _merge(self, target: FixturePerson, ids: list[str]) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = []
        for source_id in ids:
            source = self.library.people.get(source_id)
            if source is None:
                results.append({"id": source_id, "success": False, "error": "not_found"})
                continue
            if not target.name and source.name:
                target.name = source.name
            if not target.birth_date and source.birth_date:
                target.birth_date = source.birth_date
            for face in self.library.faces_of_person(source.id):
                face.person_id = target.id
            del self.library.people[source.id]
            results.append({"id": source_id, "success": True})
        return results

    def faces(self, request: _Request) -> _Reply:
        asset_id = request.query.get("id", "")
        if not _UUID.match(asset_id):
            raise _HttpError(400, ["id must be a UUID"])
        asset = self._asset(asset_id)
        faces = sorted(self.library.faces_of(asset.id), key=lambda f: (f.box[0], f.id))
        return _Reply(200, [self._face_json(f) for f in faces])

    def create_face(self, request: _Request) -> _Reply:
        body = request.json_body()
        needed = ("assetId", "personId", "imageWidth", "imageHeight", "x", "y", "width", "height")
        missing = [f"{name} should not be empty" for name in needed if name not in body]
        if missing:
            raise _HttpError(400, missing)
        asset = self._asset(str(body["assetId"]), "asset.update")
        person = self._person(str(body["personId"]))
        face = FixtureFace(
            id=str(uuid.uuid4()),
            asset_id=asset.id,
            box=(body["x"], body["y"], body["x"] + body["width"], body["y"] + body["height"]),
            image_width=int(body["imageWidth"]),
            image_height=int(body["imageHeight"]),
            person_id=person.id,
            truth=None,
            box_original=(0.0, 0.0, 0.0, 0.0),
            source_type="manual",
        )
        self.library.faces[face.id] = face
        return _Reply(201)

    def reassign_face(self, request: _Request) -> _Reply:
        person = self._person(request.params["id"], "person.update")
        body = request.json_body()
        face_id = body.get("id") if isinstance(body, dict) else None
        if not isinstance(face_id, str) or not _UUID.match(face_id):
            raise _HttpError(400, ["id must be a UUID"])
        face = self.library.faces.get(face_id)
        if face is None:
            raise _HttpError(400, "Not found or no face.update access")
        face.person_id = person.id
        return _Reply(200, self._person_json(person))

    def asset(self, request: _Request) -> _Reply:
        return _Reply(200, self._asset_json(self._asset(request.params["id"])))

    def original(self, request: _Request) -> _Reply:
        asset = self._asset(request.params["id"], "asset.download")
        headers = {"Content-Disposition": f'attachment; filename="{asset.original_file_name}"'}
        return _Reply(200, asset.read_bytes(), asset.mime_type, headers)

    def thumbnail(self, request: _Request) -> _Reply:
        asset = self._asset(request.params["id"], "asset.view")
        size = request.query.get("size", "thumbnail")
        if size not in ("thumbnail", "preview", "fullsize"):
            raise _HttpError(400, ["size must be one of: fullsize, preview, thumbnail"])
        key = (asset.id, size)
        if key not in self._previews:
            self._previews[key] = _render(asset, size)
        return _Reply(200, self._previews[key], "image/jpeg")

    def search_metadata(self, request: _Request) -> _Reply:
        body = request.json_body()
        if not isinstance(body, dict):
            raise _HttpError(400, ["body must be an object"])
        size = body.get("size", 250)
        if not isinstance(size, int) or not 1 <= size <= 1000:
            raise _HttpError(
                400, ["size must not be greater than 1000", "size must not be less than 1"]
            )
        cursor = body.get("cursor") if self._v3 else None  # v2 strips unknown fields
        if cursor is not None:
            offset = _decode_cursor(cursor)
        else:
            page = body.get("page", 1)
            if not isinstance(page, int) or page < 1:
                raise _HttpError(400, ["page must not be less than 1"])
            offset = (page - 1) * size
        found = [a for a in self.library.assets.values() if self._search_match(a, body)]
        found.sort(key=lambda a: (a.file_created_at, a.id), reverse=True)
        items = found[offset : offset + size]
        more = offset + size < len(found)
        result: dict[str, Any] = {
            "total": len(items),
            "count": len(items),
            "items": [
                self._asset_json(
                    a,
                    with_exif=bool(body.get("withExif", False)),
                    with_people=bool(body.get("withPeople", False)),
                )
                for a in items
            ],
            "facets": [],
            "nextPage": None,
        }
        if self._v3:
            result["nextCursor"] = None
        if more and self._v3 and "page" not in body:
            result["nextCursor"] = _encode_cursor(offset + size)
        elif more:
            result["nextPage"] = str(offset // size + 2)
        albums = {"total": 0, "count": 0, "items": [], "facets": []}
        return _Reply(200, {"albums": albums, "assets": result})

    def _search_match(self, asset: FixtureAsset, body: dict[str, Any]) -> bool:
        person_ids = body.get("personIds") or []
        if person_ids:
            present = {f.person_id for f in self.library.faces_of(asset.id)}
            if not set(person_ids) <= present:
                return False
        checksum = body.get("checksum")
        if checksum and _checksum_bytes(checksum) != base64.b64decode(asset.checksum):
            return False
        if body.get("id") and body["id"] != asset.id:
            return False
        name = body.get("originalFileName")
        if name and name.lower() not in asset.original_file_name.lower():
            return False
        path = body.get("originalPath")
        if path and path.lower() not in asset.original_path.lower():
            return False
        return body.get("type") in (None, "IMAGE")

    def upload(self, request: _Request) -> _Reply:
        form, files = _parse_multipart(request)
        request.log.form = dict(form)
        request.log.files = {name: len(data) for name, (_, data) in files.items()}
        required = ["fileCreatedAt", "fileModifiedAt"]
        if not self._v3:
            required += ["deviceAssetId", "deviceId"]
        problems = [f"{name} should not be empty" for name in required if not form.get(name)]
        if "assetData" not in files:
            problems.append("assetData is required")
        if problems:
            raise _HttpError(400, problems)
        filename, data = files["assetData"]
        sha1 = hashlib.sha1(data)
        header = request.headers.get("x-immich-checksum")
        for existing in self.library.assets.values():
            if existing.sha1_hex == sha1.hexdigest() or (
                header and _checksum_bytes(header) == base64.b64decode(existing.checksum)
            ):
                return _Reply(200, {"id": existing.id, "status": "duplicate"})
        try:
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                orientation = image.getexif().get(0x0112)
        except Exception as exc:  # noqa: BLE001 - any decoder failure is a bad upload
            raise _HttpError(400, "Unsupported file type") from exc
        asset_id = stable_id("upload", sha1.hexdigest())
        name = form.get("filename") or filename
        suffix = PurePosixPath(name).suffix.lower() or ".jpg"
        upright = (height, width) if orientation in (5, 6, 7, 8) else (width, height)
        preview = preview_size(*upright)
        asset = FixtureAsset(
            id=asset_id,
            relative=f"upload/{name}",
            local_path=None,
            original_path=f"{UPLOAD_ROOT}/{self.library.owner_id}/{asset_id[:2]}/{asset_id[2:4]}/"
            f"{asset_id}{suffix}",
            original_file_name=name,
            checksum=base64.b64encode(sha1.digest()).decode("ascii"),
            sha1_hex=sha1.hexdigest(),
            file_size=len(data),
            exif_width=width,
            exif_height=height,
            orientation=orientation if isinstance(orientation, int) else None,
            preview_width=preview[0],
            preview_height=preview[1],
            file_created_at=_parse_iso(form["fileCreatedAt"]),
            data=data,
            device_asset_id=form.get("deviceAssetId", ""),
            device_id=form.get("deviceId", ""),
        )
        self.library.assets[asset.id] = asset
        return _Reply(201, {"id": asset.id, "status": "created"})

    def asset_jobs(self, request: _Request) -> _Reply:
        body = request.json_body()
        name = body.get("name") if isinstance(body, dict) else None
        ids = body.get("assetIds") if isinstance(body, dict) else None
        if name not in ASSET_JOB_NAMES:
            raise _HttpError(400, [f"name must be one of: {', '.join(ASSET_JOB_NAMES)}"])
        if not isinstance(ids, list) or not all(isinstance(i, str) and _UUID.match(i) for i in ids):
            raise _HttpError(400, ["each value in assetIds must be a UUID"])
        for asset_id in ids:
            self._asset(asset_id, "asset.update")
        self.asset_jobs.append((name, list(ids)))
        if self.on_asset_job is not None:
            self.on_asset_job(self, name, list(ids))
        return _Reply(204)


def _route(
    method: str,
    path: str,
    handler: Callable[[FakeImmich, _Request], _Reply],
    permission: str | None,
    *,
    admin: bool = False,
    since: tuple[int, int, int] = (0, 0, 0),
) -> _Route:
    regex = "^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path) + "$"
    return _Route(method, re.compile(regex), handler, permission, admin, since)


# Literal paths before the `{id}` patterns they would also match, as Nest registers them.
ROUTES: tuple[_Route, ...] = (
    _route("GET", "/server/ping", FakeImmich.ping, None),
    _route("GET", "/server/version", FakeImmich.server_version, None),
    _route("GET", "/jobs", FakeImmich.jobs, "job.read", admin=True),
    _route("GET", "/people", FakeImmich.people, "person.read"),
    _route("POST", "/people/merge", FakeImmich.merge_people, "person.merge", since=(3, 2, 1)),
    _route("GET", "/people/{id}", FakeImmich.person, "person.read"),
    _route("PUT", "/people/{id}", FakeImmich.update_person, "person.update"),
    _route("GET", "/people/{id}/statistics", FakeImmich.person_statistics, "person.statistics"),
    _route("POST", "/people/{id}/merge", FakeImmich.merge_person_legacy, "person.merge"),
    _route("GET", "/faces", FakeImmich.faces, "face.read"),
    _route("POST", "/faces", FakeImmich.create_face, "face.create"),
    _route("PUT", "/faces/{id}", FakeImmich.reassign_face, "face.update"),
    _route("POST", "/assets", FakeImmich.upload, "asset.upload"),
    _route("POST", "/assets/jobs", FakeImmich.asset_jobs, "job.create"),
    _route("GET", "/assets/statistics", FakeImmich.asset_statistics, "asset.statistics"),
    _route("GET", "/assets/{id}", FakeImmich.asset, "asset.read"),
    _route("GET", "/assets/{id}/original", FakeImmich.original, "asset.download"),
    _route("GET", "/assets/{id}/thumbnail", FakeImmich.thumbnail, "asset.view"),
    _route("POST", "/search/metadata", FakeImmich.search_metadata, "asset.read"),
)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as httpx expects of Immich
    owner: FakeImmich

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.owner._handle(self)

    do_POST = do_PUT = do_DELETE = do_GET  # noqa: N815

    def send_reply(self, reply: _Reply) -> None:
        if reply.body is None:
            payload = b""
        elif isinstance(reply.body, bytes):
            payload = reply.body
        else:
            payload = json.dumps(reply.body).encode()
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # the request log is FakeImmich.requests


# -- small parsers -----------------------------------------------------------------------------


def _int_param(query: dict[str, str], name: str, default: int, minimum: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise _HttpError(400, [f"{name} must be an integer number"]) from exc
    if value < minimum:
        raise _HttpError(400, [f"{name} must not be less than {minimum}"])
    return value


def _ids(body: Any) -> list[str]:
    ids = body.get("ids") if isinstance(body, dict) else None
    if not isinstance(ids, list) or not all(isinstance(i, str) and _UUID.match(i) for i in ids):
        raise _HttpError(400, ["each value in ids must be a UUID"])
    return ids


def _checksum_bytes(checksum: str) -> bytes:
    # Immich: 28 characters are base64, anything else hex.
    try:
        if len(checksum) == 28:
            return base64.b64decode(checksum)
        return bytes.fromhex(checksum)
    except (ValueError, binascii.Error) as exc:
        raise _HttpError(400, ["checksum must be a valid SHA-1 (hex or base64)"]) from exc


def _encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def _decode_cursor(cursor: Any) -> int:
    try:
        offset = json.loads(base64.urlsafe_b64decode(str(cursor)))["offset"]
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise _HttpError(400, "Invalid cursor") from exc
    if not isinstance(offset, int) or offset < 0:
        raise _HttpError(400, "Invalid cursor")
    return offset


def _parse_iso(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise _HttpError(400, ["fileCreatedAt must be a valid ISO 8601 date string"]) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _parse_multipart(request: _Request) -> tuple[dict[str, str], dict[str, tuple[str, bytes]]]:
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise _HttpError(400, "Multipart: Boundary not found")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + request.body
    )
    form: dict[str, str] = {}
    files: dict[str, tuple[str, bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        if filename is not None:
            files[name] = (filename, payload)
        else:
            form[name] = payload.decode("utf-8")
    return form, files


def _render(asset: FixtureAsset, size: str) -> bytes:
    """The JPEG Immich would serve: upright, preview shorter side 1440 (never enlarged),
    thumbnail 250, fullsize the upright original."""
    with Image.open(io.BytesIO(asset.read_bytes())) as image:
        upright = ImageOps.exif_transpose(image).convert("RGB")
    if size == "preview":
        target = (asset.preview_width, asset.preview_height)
    elif size == "thumbnail":
        scale = min(1.0, THUMBNAIL_SHORT_SIDE / min(upright.size))
        target = (round(upright.width * scale), round(upright.height * scale))
    else:
        target = upright.size
    if target != upright.size:
        upright = upright.resize(target, Image.Resampling.LANCZOS)
    out = io.BytesIO()
    upright.save(out, "JPEG", quality=85)
    return out.getvalue()


@contextmanager
def running(library: FixtureLibrary, **options: Any) -> Iterator[FakeImmich]:
    """A started server for `library`, stopped afterwards."""
    server = FakeImmich(library, **options).start()
    try:
        yield server
    finally:
        server.stop()
