""" "Who is in this photo?" — answered locally from the index (nothing leaves the machine), or
by Immich itself after uploading the photo (the original design, on current endpoints).

Locally, each face of the photo is embedded with the index's recognizer and compared with
every indexed face that sync linked to an Immich person; the person of the most similar
face wins when that similarity clears the recognizer's identity threshold. Up to 10 other
photos of that person come from Immich's own assignments (the mirror), each with the best
similarity between the query face and that person's face there.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.errors import ImmichAuthError, ImmichError
from engine.faces.pipeline import SizedDetector, analyze_file
from engine.faces.types import FaceRecognizer
from engine.immich.client import ImmichClient
from engine.immich.mirror import ImmichMirror
from engine.immich.models import AssetFace
from engine.index.indexer import sha1_file
from engine.index.store import FaceIndex

MAX_PHOTOS = 10
NEIGHBOURS = 50


@dataclass(frozen=True)
class PersonPhoto:
    asset_id: str
    path: str | None  # the local file, where sync linked one
    url: str  # the photo in Immich's web UI
    similarity: float | None  # best query-face to person-face similarity there, when known

    def to_dict(self) -> dict[str, object]:
        sim = None if self.similarity is None else round(self.similarity, 4)
        return {"asset_id": self.asset_id, "path": self.path, "url": self.url, "similarity": sim}


@dataclass(frozen=True)
class FaceAnswer:
    box_xyxy: tuple[float, float, float, float]
    person_id: str | None
    name: str | None  # "" for an unnamed person, None when nobody matched
    similarity: float | None
    photos: list[PersonPhoto] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {
            "box_xyxy": [round(v, 1) for v in self.box_xyxy],
            "person_id": self.person_id,
            "name": self.name,
            "similarity": None if self.similarity is None else round(self.similarity, 4),
            "photos": [p.to_dict() for p in self.photos],
        }


@dataclass(frozen=True)
class Identification:
    photo: str
    method: str  # "local" | "upload"
    faces: list[FaceAnswer]

    @property
    def people(self) -> list[FaceAnswer]:
        return [f for f in self.faces if f.person_id is not None]

    def to_dict(self) -> dict[str, object]:
        return {
            "photo": self.photo,
            "method": self.method,
            "faces": [f.to_dict() for f in self.faces],
        }


def web_url(base_url: str) -> str:
    """Immich's web UI lives at the server root; the API under /api."""
    root = base_url.rstrip("/")
    return root[: -len("/api")] if root.endswith("/api") else root


def identify_local(
    photo: Path,
    index: FaceIndex,
    mirror: ImmichMirror,
    *,
    detector: SizedDetector,
    recognizer: FaceRecognizer,
    min_similarity: float,
) -> Identification:
    found = analyze_file(photo, detector, recognizer)
    if not found.faces:
        return Identification(str(photo), "local", [])
    base = web_url(mirror.meta().get("base_url", ""))
    names = index.people()
    own_asset = _own_asset(photo, mirror)
    answers = []
    for face, embedding in zip(found.faces, found.embeddings, strict=True):
        hits = [
            h
            for h in index.search(embedding, recognizer.name, k=NEIGHBOURS)
            if Path(h.path) != photo.resolve()
        ]
        people = index.immich_people_of([h.face_id for h in hits])
        best = next((h for h in hits if h.face_id in people), None)
        if best is None or best.score < min_similarity:
            answers.append(FaceAnswer(face.box_xyxy, None, None, None))
            continue
        person = people[best.face_id]
        photos = _photos_of(person, embedding, mirror, index, recognizer.name, base, own_asset)
        answers.append(FaceAnswer(face.box_xyxy, person, names.get(person, ""), best.score, photos))
    return Identification(str(photo), "local", answers)


def _own_asset(photo: Path, mirror: ImmichMirror) -> str | None:
    """The Immich asset that is this very photo, if Immich has it (same SHA-1)."""
    sha1 = sha1_file(photo)
    return next((a.id for a in mirror.assets() if a.sha1_hex == sha1), None)


def _photos_of(
    person: str,
    query: np.ndarray,
    mirror: ImmichMirror,
    index: FaceIndex,
    recognizer: str,
    base: str,
    own_asset: str | None,
) -> list[PersonPhoto]:
    photos = []
    for asset_id in mirror.assets_of_person(person):
        if asset_id == own_asset:
            continue
        asset = mirror.asset(asset_id)
        path = asset.local_path if asset else None
        photos.append(
            PersonPhoto(
                asset_id,
                path,
                f"{base}/photos/{asset_id}",
                _similarity_in(path, person, query, index, recognizer),
            )
        )
    # The most convincing photos first; those without local evidence after them.
    photos.sort(key=lambda p: -1.0 if p.similarity is None else -p.similarity)
    return photos[:MAX_PHOTOS]


def _similarity_in(
    path: str | None, person: str, query: np.ndarray, index: FaceIndex, recognizer: str
) -> float | None:
    if path is None:
        return None
    faces = [f for f in index.faces_of(path, recognizer) if f.immich_person_id == person]
    if not faces:
        return None
    embeddings = index.embeddings_of([f.face_id for f in faces], recognizer)
    return float((embeddings @ query).max())


# -- the upload flow -----------------------------------------------------------------------


def identify_by_upload(
    photo: Path,
    client: ImmichClient,
    *,
    deadline_s: float = 300.0,
    poll_s: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Identification:
    """Upload the photo, wait (with a deadline and backoff) until Immich's face jobs are done
    for it, then read its faces and list each person's other photos."""
    uploaded = client.upload(photo)
    if uploaded.status != "duplicate":
        client.refresh_faces([uploaded.id])
    faces = _wait_for_faces(client, uploaded.id, deadline_s, poll_s, sleep, clock)
    base = web_url(client.base_url)
    answers = []
    for face in faces:
        box = (
            float(face.bounding_box_x1),
            float(face.bounding_box_y1),
            float(face.bounding_box_x2),
            float(face.bounding_box_y2),
        )
        if face.person is None:
            answers.append(FaceAnswer(box, None, None, None))
            continue
        assets = client.search_person_assets(face.person.id, MAX_PHOTOS + 1)
        photos = [
            PersonPhoto(a.id, None, f"{base}/photos/{a.id}", None)
            for a in assets
            if a.id != uploaded.id
        ][:MAX_PHOTOS]
        answers.append(FaceAnswer(box, face.person.id, face.person.name, None, photos))
    return Identification(str(photo), "upload", answers)


def _wait_for_faces(
    client: ImmichClient,
    asset_id: str,
    deadline_s: float,
    poll_s: float,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> list[AssetFace]:
    """Faces of the asset once each has a person or the face jobs are idle, or what there is
    at the deadline. No face at all is a normal answer."""
    start = clock()
    delay = poll_s
    polls = 0
    while True:
        faces = client.faces(asset_id)
        settled = bool(faces) and all(f.person is not None for f in faces)
        # Idle queues mean something only once the jobs for a new upload had time to start.
        if settled or (polls > 0 and _face_jobs_idle(client)):
            return faces
        polls += 1
        if clock() - start + delay > deadline_s:
            if faces:
                return faces
            raise ImmichError(
                f"Immich did not finish face detection for asset {asset_id} within "
                f"{deadline_s:.0f} s; its job queues are busy — try again later or raise --deadline"
            )
        sleep(delay)
        delay = min(delay * 1.5, 30.0)


def _face_jobs_idle(client: ImmichClient) -> bool:
    """Whether Immich's face queues are empty; False when unknown (only an admin's key may
    read the queues), so waiting falls back to the asset's faces and the deadline."""
    try:
        counts = client.job_counts()
    except ImmichAuthError:
        return False
    busy = 0
    for name in ("faceDetection", "facialRecognition"):
        queue = counts.get(name, {})
        busy += int(queue.get("active", 0)) + int(queue.get("waiting", 0))
    return busy == 0
