"""An Immich library built from ../shared/faces, with known truth and planted mistakes.

Every photo becomes an asset: a stable uuid from its path under faces/ (uuid5; two folders
hold an `img1.jpg`), checksum = base64 SHA-1 of the bytes, originalPath
`/usr/src/app/upload/library/admin/<folder>/<file>` (Immich's side: map the prefix to the
faces folder), exifInfo with the stored size and the EXIF orientation (null when absent).

Faces: AMP's SCRFD-2.5G (shared unofficial re-export, det_thresh 0.6) runs once per process on
each photo; its boxes (upright original pixels) are mapped into Immich's preview (upright,
shorter side 1440, never enlarged: `imageWidth` x `imageHeight`), rounded, and moved 1-2 px by
a deterministic jitter so they look like another detector's. `FixtureFace.box_original` keeps
the detector's box.

Identities. Each person folder is one person, named in PERSON_NAMES. Group photos, checked by
eye on the images (not guessed):
- `_groups/two_people.jpg`: two portraits side by side, Barack Obama LEFT, Joe Biden RIGHT;
- `_groups/obama_and_biden.jpg`: Joe Biden LEFT, Barack Obama in the middle, and a small
  child at the lower right (the right-most, lowest face);
faces are told apart by their left edge. `_groups/solvay_conference_1927.jpg`: 29 people who
appear once each; with Immich's defaults (minFaces 3) no person is created for a face without
neighbours, so all its faces stay unassigned (`person: null`), as does the child's.

Flavours:
- `clean`: Immich right everywhere it can be.
- `with_mistakes`: exactly the five `planted` mistakes below, and nothing else differs.
  (a) wrong_person: kit_harington/john2.jpg's face is on "Paul Allen".
  (b) split_person: Guido van Rossum is two people, both named "Guido van Rossum":
      guido_van_rossum1/2.jpg on the first, guido_van_rossum3/4.jpg on the second.
  (c) missed_face: the child in obama_and_biden.jpg has no face at all in Immich.
  (d) unnamed_person: steve_wozniak4.jpg's face is on an unnamed person (the folder's third
      photo in sorted order).
  (e) same_person_twice: two_people.jpg has both faces on "Barack Obama" (the right-hand face,
      Joe Biden, is therefore also on the wrong person).
`FixtureLibrary.planted` lists them with the ids involved; `FixtureFace.truth` says who each
face really shows (None: someone outside the named people).
"""

from __future__ import annotations

import base64
import copy
import functools
import hashlib
import os
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Literal

from PIL import Image

from engine.io.metadata import ORIENTATION, read_taken_at

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("AMP_SHARED_DIR", REPO.parent / "shared")).resolve()
FACES_DIR = SHARED / "faces"
SCRFD_MODEL = SHARED / "models" / "unofficial" / "scrfd_2.5g_kps.hpc203-reexport.onnx"
DET_THRESH = 0.6

IMMICH_LIBRARY_ROOT = "/usr/src/app/upload/library/admin"
PREVIEW_SHORT_SIDE = 1440
NAMESPACE = uuid.UUID("6f1c3a52-8d0e-4b7e-9a57-0d1f3c2b8e41")
OWNER_ID = str(uuid.uuid5(NAMESPACE, "user:admin"))
FIRST_UNDATED = datetime(2021, 1, 1, 12, 0, tzinfo=timezone.utc)

PERSON_NAMES = {
    "alex_lacamoire": "Alex Lacamoire",
    "barack_obama": "Barack Obama",
    "guido_van_rossum": "Guido van Rossum",
    "joe_biden": "Joe Biden",
    "kit_harington": "Kit Harington",
    "paul_allen": "Paul Allen",
    "rose_leslie": "Rose Leslie",
    "steve_wozniak": "Steve Wozniak",
}
# Group photos: names of the faces from left to right; None is someone not named here.
GROUP_FACES: dict[str, tuple[str | None, ...]] = {
    "_groups/two_people.jpg": ("Barack Obama", "Joe Biden"),
    "_groups/obama_and_biden.jpg": ("Joe Biden", "Barack Obama", None),
}
UNASSIGNED_GROUPS = ("_groups/solvay_conference_1927.jpg",)

LibraryKind = Literal["clean", "with_mistakes"]
MistakeKind = Literal[
    "wrong_person", "split_person", "missed_face", "unnamed_person", "same_person_twice"
]


def stable_id(*parts: str) -> str:
    return str(uuid.uuid5(NAMESPACE, ":".join(parts)))


@dataclass
class FixtureAsset:
    id: str
    relative: str  # under the faces folder, e.g. "barack_obama/obama.jpg"
    local_path: Path | None  # None for uploads held in `data`
    original_path: str  # as Immich reports it
    original_file_name: str
    checksum: str  # base64 SHA-1
    sha1_hex: str
    file_size: int
    exif_width: int  # of the stored file, before orientation
    exif_height: int
    orientation: int | None  # EXIF tag, None when absent
    preview_width: int
    preview_height: int
    file_created_at: datetime
    date_time_original: datetime | None = None  # from EXIF, None when the file has none
    mime_type: str = "image/jpeg"
    data: bytes | None = None
    device_asset_id: str = ""
    device_id: str = "Library Import"

    @property
    def upright_size(self) -> tuple[int, int]:
        if self.orientation in (5, 6, 7, 8):
            return self.exif_height, self.exif_width
        return self.exif_width, self.exif_height

    def read_bytes(self) -> bytes:
        if self.data is not None:
            return self.data
        assert self.local_path is not None
        return self.local_path.read_bytes()


@dataclass
class FixtureFace:
    id: str
    asset_id: str
    box: tuple[int, int, int, int]  # x1, y1, x2, y2 in preview pixels
    image_width: int  # the preview's size
    image_height: int
    person_id: str | None
    truth: str | None  # who it really shows; None: someone not among the named people
    box_original: tuple[float, float, float, float]  # AMP's detector, upright original pixels
    source_type: str = "machine-learning"


@dataclass
class FixturePerson:
    id: str
    name: str
    truth: str | None  # who the person's faces really are (None: nobody in particular)
    is_hidden: bool = False
    is_favorite: bool = False
    birth_date: str | None = None


@dataclass(frozen=True)
class PlantedMistake:
    kind: MistakeKind
    description: str
    asset_ids: tuple[str, ...]
    face_ids: tuple[str, ...]  # Immich's faces involved (none for a missed face)
    person_ids: tuple[str, ...]  # the people Immich shows wrongly
    truth: str | None  # who it really is
    missed_box: tuple[int, int, int, int] | None = None  # preview pixels, missed_face only


@dataclass
class FixtureLibrary:
    kind: LibraryKind
    assets: dict[str, FixtureAsset]
    faces: dict[str, FixtureFace]
    people: dict[str, FixturePerson]
    planted: list[PlantedMistake] = field(default_factory=list)
    missed_faces: list[FixtureFace] = field(default_factory=list)  # truth Immich lacks
    owner_id: str = OWNER_ID

    def asset_by_relative(self, relative: str) -> FixtureAsset:
        for asset in self.assets.values():
            if asset.relative == relative:
                return asset
        raise KeyError(relative)

    def faces_of(self, asset_id: str) -> list[FixtureFace]:
        return [f for f in self.faces.values() if f.asset_id == asset_id]

    def faces_of_person(self, person_id: str) -> list[FixtureFace]:
        return [f for f in self.faces.values() if f.person_id == person_id]

    def people_named(self, name: str) -> list[FixturePerson]:
        return [p for p in self.people.values() if p.name == name]

    def person_named(self, name: str) -> FixturePerson:
        """The first person with this name, by id order (there are two Guidos with mistakes)."""
        return sorted(self.people_named(name), key=lambda p: p.id)[0]

    def path_map(self) -> dict[str, Path]:
        """Immich's library prefix -> where the files are here."""
        return {IMMICH_LIBRARY_ROOT: FACES_DIR}


def preview_size(width: int, height: int) -> tuple[int, int]:
    """Immich's preview of an upright `width` x `height` image: shorter side 1440, never
    enlarged (sharp's `fit: outside, withoutEnlargement`)."""
    scale = min(1.0, PREVIEW_SHORT_SIDE / min(width, height))
    return round(width * scale), round(height * scale)


def to_preview_box(
    box: tuple[float, float, float, float],
    upright: tuple[int, int],
    preview: tuple[int, int],
    jitter_seed: str,
) -> tuple[int, int, int, int]:
    """An upright-original box in preview pixels, rounded, each edge moved by 1-2 px in a
    direction fixed by `jitter_seed`, and kept inside the image."""
    sx, sy = preview[0] / upright[0], preview[1] / upright[1]
    digest = hashlib.sha256(jitter_seed.encode()).digest()
    offsets = [(1 + (b & 1)) * (1 if b & 2 else -1) for b in digest[:4]]
    x1, y1, x2, y2 = box
    limits = (preview[0] - 1, preview[1] - 1, preview[0] - 1, preview[1] - 1)
    raw = (x1 * sx, y1 * sy, x2 * sx, y2 * sy)
    moved = [round(v) + d for v, d in zip(raw, offsets, strict=True)]
    x1i, y1i, x2i, y2i = (max(0, min(limit, v)) for v, limit in zip(moved, limits, strict=True))
    return x1i, y1i, x2i, y2i


@functools.lru_cache(maxsize=4)
def detect_ground_truth(faces_dir: Path = FACES_DIR) -> dict[str, tuple[tuple[float, ...], ...]]:
    """relative path -> face boxes (upright original pixels) from AMP's SCRFD-2.5G, sorted by
    left edge. Runs the detector once per process: about 10 s on two CPU cores."""
    from engine.faces.factory import DetectorConfig, build_detector
    from engine.faces.pipeline import detect_file

    if not SCRFD_MODEL.is_file():
        raise FileNotFoundError(f"{SCRFD_MODEL} is missing: the fixture library needs it")
    detector = build_detector(
        DetectorConfig(kind="scrfd", model=str(SCRFD_MODEL), det_thresh=DET_THRESH)
    )
    found: dict[str, tuple[tuple[float, ...], ...]] = {}
    for path in sorted(faces_dir.rglob("*.jpg")):
        result = detect_file(path, detector)  # type: ignore[arg-type]
        boxes = sorted(tuple(float(v) for v in f.box_xyxy) for f in result.faces)
        found[path.relative_to(faces_dir).as_posix()] = tuple(boxes)
    return found


def _asset(path: Path, relative: str, undated_index: int) -> FixtureAsset:
    data = path.read_bytes()
    with Image.open(path) as image:
        width, height = image.size
        exif = image.getexif()
    orientation = exif.get(ORIENTATION)
    taken = read_taken_at(exif)
    created = (
        taken.replace(tzinfo=timezone.utc)
        if taken is not None
        else FIRST_UNDATED + timedelta(days=undated_index)
    )
    sha1 = hashlib.sha1(data)
    upright = (height, width) if orientation in (5, 6, 7, 8) else (width, height)
    preview = preview_size(*upright)
    return FixtureAsset(
        id=stable_id("asset", relative),
        relative=relative,
        local_path=path,
        original_path=f"{IMMICH_LIBRARY_ROOT}/{relative}",
        original_file_name=path.name,
        checksum=base64.b64encode(sha1.digest()).decode("ascii"),
        sha1_hex=sha1.hexdigest(),
        file_size=len(data),
        exif_width=width,
        exif_height=height,
        orientation=orientation if isinstance(orientation, int) else None,
        preview_width=preview[0],
        preview_height=preview[1],
        file_created_at=created,
        date_time_original=created if taken is not None else None,
        device_asset_id=f"{path.name}-{len(data)}",
    )


def _truths(relative: str, count: int) -> tuple[str | None, ...]:
    folder = relative.split("/", 1)[0]
    if folder in PERSON_NAMES:
        if count != 1:
            raise AssertionError(f"{relative}: expected exactly 1 face, the detector found {count}")
        return (PERSON_NAMES[folder],)
    if relative in GROUP_FACES:
        names = GROUP_FACES[relative]
        if count != len(names):
            raise AssertionError(f"{relative}: expected {len(names)} faces, found {count}")
        return names
    if relative in UNASSIGNED_GROUPS:
        return (None,) * count
    raise AssertionError(f"{relative}: a photo the fixture library does not know")


@functools.lru_cache(maxsize=4)
def _build_clean(faces_dir: Path) -> FixtureLibrary:
    boxes = detect_ground_truth(faces_dir)
    people = {
        stable_id("person", folder): FixturePerson(stable_id("person", folder), name, truth=name)
        for folder, name in PERSON_NAMES.items()
    }
    person_of = {p.name: p.id for p in people.values()}
    assets: dict[str, FixtureAsset] = {}
    faces: dict[str, FixtureFace] = {}
    undated = 0
    for relative, found in boxes.items():
        asset = _asset(faces_dir / relative, relative, undated)
        undated += 1
        assets[asset.id] = asset
        upright = asset.upright_size
        preview = (asset.preview_width, asset.preview_height)
        for index, (box, truth) in enumerate(
            zip(found, _truths(relative, len(found)), strict=True)
        ):
            face_id = stable_id("face", relative, str(index))
            faces[face_id] = FixtureFace(
                id=face_id,
                asset_id=asset.id,
                box=to_preview_box(box, upright, preview, face_id),  # type: ignore[arg-type]
                image_width=preview[0],
                image_height=preview[1],
                person_id=person_of.get(truth) if truth else None,
                truth=truth,
                box_original=box,  # type: ignore[arg-type]
            )
    library = FixtureLibrary("clean", assets, faces, people)
    _check_child(library)
    return library


def _check_child(library: FixtureLibrary) -> None:
    # The child must be the lowest face of obama_and_biden.jpg, as seen on the image.
    faces = library.faces_of(library.asset_by_relative("_groups/obama_and_biden.jpg").id)
    child = [f for f in faces if f.truth is None]
    adults = [f for f in faces if f.truth is not None]
    assert len(child) == 1 and all(child[0].box[1] > a.box[3] for a in adults), faces


def _plant_mistakes(library: FixtureLibrary) -> None:
    lib = library
    face = lambda relative: lib.faces_of(lib.asset_by_relative(relative).id)  # noqa: E731
    person = lib.person_named

    # (a) a face on the wrong person
    john2 = face("kit_harington/john2.jpg")[0]
    john2.person_id = person("Paul Allen").id
    lib.planted.append(
        PlantedMistake(
            "wrong_person",
            "kit_harington/john2.jpg: Kit Harington's face is on 'Paul Allen'",
            (john2.asset_id,),
            (john2.id,),
            (person("Paul Allen").id,),
            "Kit Harington",
        )
    )

    # (b) one person split into two, both named
    first = person("Guido van Rossum")
    second = FixturePerson(
        stable_id("person", "guido_van_rossum", "split"), "Guido van Rossum", "Guido van Rossum"
    )
    lib.people[second.id] = second
    moved = [face(f"guido_van_rossum/guido_van_rossum{n}.jpg")[0] for n in (3, 4)]
    for f in moved:
        f.person_id = second.id
    lib.planted.append(
        PlantedMistake(
            "split_person",
            "Guido van Rossum is two people named alike: photos 1-2 on one, 3-4 on the other",
            tuple(f.asset_id for f in moved),
            tuple(f.id for f in moved),
            (first.id, second.id),
            "Guido van Rossum",
        )
    )

    # (c) a small face Immich missed
    group = lib.asset_by_relative("_groups/obama_and_biden.jpg")
    child = next(f for f in lib.faces_of(group.id) if f.truth is None)
    del lib.faces[child.id]
    lib.missed_faces.append(child)
    lib.planted.append(
        PlantedMistake(
            "missed_face",
            "obama_and_biden.jpg: the small child at the lower right has no face in Immich",
            (group.id,),
            (),
            (),
            None,
            missed_box=child.box,
        )
    )

    # (d) an unnamed person who is a named one
    unnamed = FixturePerson(stable_id("person", "steve_wozniak", "unnamed"), "", "Steve Wozniak")
    lib.people[unnamed.id] = unnamed
    woz = face("steve_wozniak/steve_wozniak4.jpg")[0]
    woz.person_id = unnamed.id
    lib.planted.append(
        PlantedMistake(
            "unnamed_person",
            "steve_wozniak4.jpg: Steve Wozniak's face is on an unnamed person",
            (woz.asset_id,),
            (woz.id,),
            (unnamed.id,),
            "Steve Wozniak",
        )
    )

    # (e) two faces of the same person in one photo
    pair = face("_groups/two_people.jpg")
    obama = person("Barack Obama")
    for f in pair:
        f.person_id = obama.id
    lib.planted.append(
        PlantedMistake(
            "same_person_twice",
            "two_people.jpg: both faces are on 'Barack Obama'; the right one is Joe Biden",
            (pair[0].asset_id,),
            tuple(f.id for f in sorted(pair, key=lambda f: f.box[0])),
            (obama.id,),
            "Joe Biden",
        )
    )


def build_library(kind: LibraryKind = "clean", faces_dir: Path = FACES_DIR) -> FixtureLibrary:
    """A fresh, mutable copy of the library (the detector runs once per process)."""
    library = copy.deepcopy(_build_clean(faces_dir.resolve()))
    if kind == "with_mistakes":
        library.kind = "with_mistakes"
        _plant_mistakes(library)
    elif kind != "clean":
        raise ValueError(f"unknown fixture library {kind!r}")
    return library
