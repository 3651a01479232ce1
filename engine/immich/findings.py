"""The cross-check's inputs and its report, as plain data.

Inputs are what the caller gathered: Immich's assets, people and faces (boxes already mapped
onto upright original pixels, see `geometry`) and AMP's faces with their embeddings. The
report holds typed findings, each with the evidence a person needs to judge it: ids,
similarities and the boxes to crop. Everything in a report serialises with `to_dict` and is
read back with `ReconcileReport.from_dict`.

Crop keys name the face a crop shows: `immich:<immich face id>` for a face Immich has,
`amp:<amp face id>` for one only AMP found (`crop_key`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import numpy as np

from engine.immich.geometry import BoxXyxy

FindingKind = Literal[
    "missed_by_immich",  # AMP found a face Immich did not detect
    "only_in_immich",  # Immich has a face AMP did not detect (false detection or a manual box)
    "reassign_face",  # a face sits far from its person and close to another person
    "merge_people",  # two people whose faces are one identity
    "split_person",  # one person whose faces form two or more identities (look-alikes)
    "duplicate_in_photo",  # one person on two faces of the same photo
    "unnamed_matches_named",  # an unnamed person or an unassigned face matches a named person
]
FINDING_KINDS: tuple[FindingKind, ...] = get_args(FindingKind)

FaceSource = Literal["immich", "amp"]


def crop_key(source: FaceSource, face_id: str | int) -> str:
    """The key of a face crop in `render_report`'s `crops` mapping."""
    return f"{source}:{face_id}"


@dataclass(frozen=True)
class Thresholds:
    """Decision thresholds. Similarities are cosine similarities of L2-normalised embeddings;
    a distance is 1 - similarity, Immich's `maxDistance` convention.

    `max_distance`: two faces (or a face and a person, or two people, by average linkage)
    are one identity when their distance is below it; Immich's default 0.5 is calibrated
    for its ArcFace model. `min_iou`: an Immich box and an AMP box are one face at or above
    it. `reassign_margin`: a face is moved only when the other person beats its own by at
    least this similarity. `min_split_faces`: each identity found inside one person needs at
    least this many faces before a split is suggested (one stray face is a reassignment or
    noise, not a second identity).
    """

    max_distance: float = 0.5
    min_iou: float = 0.5
    reassign_margin: float = 0.1
    min_split_faces: int = 2

    @property
    def min_similarity(self) -> float:
        return 1.0 - self.max_distance


@dataclass(frozen=True)
class AssetIn:
    """A linked asset: Immich's id, the upright original's size and, when AMP has it, its
    local path (for crops)."""

    asset_id: str
    width: int
    height: int
    path: str | None = None


@dataclass(frozen=True)
class PersonIn:
    person_id: str
    name: str = ""  # "" until a user names the person
    is_hidden: bool = False

    @property
    def label(self) -> str:
        """How a sentence names the person."""
        return self.name if self.name else f"unnamed person {self.person_id[:8]}"


@dataclass(frozen=True)
class ImmichFaceIn:
    """A face as Immich has it, its box mapped onto the upright original's pixels."""

    face_id: str
    asset_id: str
    person_id: str | None
    box_xyxy: BoxXyxy
    source_type: str | None = "machine-learning"  # machine-learning | exif | manual


@dataclass(frozen=True, eq=False)
class AmpFaceIn:
    """A face AMP found, with its L2-normalised embedding."""

    face_id: int
    asset_id: str  # the Immich asset it belongs to
    box_xyxy: BoxXyxy
    embedding: np.ndarray


@dataclass(frozen=True)
class FaceRef:
    """One face shown as evidence: what to crop and what it is to the finding.

    `role`: "face" (the face the finding is about), "person" (a representative face of the
    person it is in now), "suggested" (of the person it should go to), "cluster N" (of one
    identity inside a split person), "other" (of the other person of a merge).
    `similarity`: to the group `role` stands for, when that means something.
    """

    key: str
    asset_id: str
    box_xyxy: BoxXyxy
    role: str
    person_id: str | None = None
    similarity: float | None = None


@dataclass(frozen=True)
class Finding:
    """One suggested correction or detection disagreement.

    `similarity` is the headline figure (for sorting): the similarity that supports the
    suggestion (to the suggested person, between merged people, between split clusters).
    `similarities` names every figure used; `details` holds the rest (sizes, counts).
    """

    kind: FindingKind
    message: str
    asset_ids: tuple[str, ...] = ()
    immich_face_ids: tuple[str, ...] = ()
    amp_face_ids: tuple[int, ...] = ()
    person_ids: tuple[str, ...] = ()
    suggested_person_id: str | None = None
    similarity: float | None = None
    similarities: dict[str, float] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    faces: tuple[FaceRef, ...] = ()


@dataclass(frozen=True)
class DetectionSummary:
    """Immich's detections judged against AMP's as the reference.

    `precision`: matched Immich machine-learning faces / Immich machine-learning faces
    (manual and exif boxes are a user's or camera's, not the detector's). `recall`: AMP faces
    matched by any Immich face / AMP faces. None when the denominator is 0.
    """

    immich_faces: int
    immich_ml_faces: int
    amp_faces: int
    matched: int
    matched_ml: int
    precision: float | None
    recall: float | None
    mean_iou: float | None


@dataclass(frozen=True)
class PersonCohesion:
    """`mean_similarity`: mean cosine similarity over all pairs of the person's faces that
    AMP embedded (None below 2); `min_face_similarity`: the lowest mean similarity of one
    face to the person's other faces (its weakest member)."""

    person_id: str
    name: str
    faces: int
    embedded_faces: int
    mean_similarity: float | None
    min_face_similarity: float | None


@dataclass(frozen=True)
class Summary:
    """`identity_agreement_rate` = identity_agreed / identity_evaluated, where a face is
    evaluated when Immich assigned it to a person, AMP embedded it and that person has at
    least one other embedded face; it agrees when, among all people, its own person has the
    highest mean similarity to it (its own face left out). None when nothing was evaluated.
    """

    detection: DetectionSummary
    identity_evaluated: int
    identity_agreed: int
    identity_agreement_rate: float | None
    cohesion: tuple[PersonCohesion, ...]
    findings_by_kind: dict[str, int]


@dataclass(frozen=True)
class ReconcileReport:
    findings: tuple[Finding, ...]
    summary: Summary
    thresholds: Thresholds
    people: tuple[PersonIn, ...]
    assets: tuple[AssetIn, ...]
    recognizer: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only (tuples become lists when dumped)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReconcileReport:
        """Read back what `to_dict` wrote (after a JSON round trip)."""
        summary = data["summary"]
        return cls(
            findings=tuple(_finding_from_dict(f) for f in data["findings"]),
            summary=Summary(
                detection=DetectionSummary(**summary["detection"]),
                identity_evaluated=summary["identity_evaluated"],
                identity_agreed=summary["identity_agreed"],
                identity_agreement_rate=summary["identity_agreement_rate"],
                cohesion=tuple(PersonCohesion(**c) for c in summary["cohesion"]),
                findings_by_kind=dict(summary["findings_by_kind"]),
            ),
            thresholds=Thresholds(**data["thresholds"]),
            people=tuple(PersonIn(**p) for p in data["people"]),
            assets=tuple(AssetIn(**a) for a in data["assets"]),
            recognizer=data.get("recognizer"),
        )

    def person(self, person_id: str | None) -> PersonIn | None:
        if person_id is None:
            return None
        return next((p for p in self.people if p.person_id == person_id), None)


def _box(values: Any) -> BoxXyxy:
    x1, y1, x2, y2 = (float(v) for v in values)
    return x1, y1, x2, y2


def _finding_from_dict(data: dict[str, Any]) -> Finding:
    return Finding(
        kind=data["kind"],
        message=data["message"],
        asset_ids=tuple(data["asset_ids"]),
        immich_face_ids=tuple(data["immich_face_ids"]),
        amp_face_ids=tuple(int(i) for i in data["amp_face_ids"]),
        person_ids=tuple(data["person_ids"]),
        suggested_person_id=data.get("suggested_person_id"),
        similarity=data.get("similarity"),
        similarities=dict(data.get("similarities", {})),
        details=dict(data.get("details", {})),
        faces=tuple(
            FaceRef(
                key=f["key"],
                asset_id=f["asset_id"],
                box_xyxy=_box(f["box_xyxy"]),
                role=f["role"],
                person_id=f.get("person_id"),
                similarity=f.get("similarity"),
            )
            for f in data.get("faces", [])
        ),
    )
