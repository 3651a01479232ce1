"""The cross-check on synthetic embeddings with controlled similarities, and on real photos
(SCRFD boxes, dlib embeddings) with Immich's faces simulated and mistakes planted."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from engine.immich import reconcile as reconcile_module
from engine.immich.findings import (
    FINDING_KINDS,
    AmpFaceIn,
    AssetIn,
    Finding,
    ImmichFaceIn,
    PersonIn,
    ReconcileReport,
    Thresholds,
)
from engine.immich.geometry import (
    original_to_preview,
    preview_size,
    preview_to_original,
    upright_size,
)
from engine.immich.reconcile import (
    DLIB_THRESHOLDS,
    IMMICH_THRESHOLDS,
    average_linkage_clusters,
    default_thresholds,
    reconcile,
)

DIM = 256
COS_TO_CENTRE = 0.9  # each face's similarity to its identity's centre: pairs ~0.81


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


@dataclass
class SyntheticLibrary:
    """Faces of identities whose centres are (nearly) orthogonal unless made alike; each face
    is its centre turned by a fixed angle towards a random direction, so same-identity pairs
    have similarity ~COS_TO_CENTRE**2 and others ~0."""

    seed: int = 0
    centres: dict[str, np.ndarray] = field(default_factory=dict)
    people: dict[str, PersonIn] = field(default_factory=dict)
    assets: dict[str, AssetIn] = field(default_factory=dict)
    immich: list[ImmichFaceIn] = field(default_factory=list)
    amp: list[AmpFaceIn] = field(default_factory=list)
    _slots: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)

    def identity(self, name: str, like: str | None = None, similarity: float = 0.0) -> None:
        noise = _unit(self.rng.normal(size=DIM))
        if like is None:
            self.centres[name] = noise
        else:
            base = self.centres[like]
            ortho = _unit(noise - (noise @ base) * base)
            self.centres[name] = similarity * base + np.sqrt(1 - similarity**2) * ortho

    def person(self, person_id: str, name: str = "") -> None:
        self.people[person_id] = PersonIn(person_id, name)

    def face(
        self,
        asset_id: str,
        identity: str | None,
        person_id: str | None,
        *,
        in_immich: bool = True,
        in_amp: bool = True,
        source_type: str = "machine-learning",
    ) -> str:
        """Add one face; returns its Immich face id (also `amp` ids are numbered alike)."""
        self.assets.setdefault(asset_id, AssetIn(asset_id, 4000, 3000))
        slot = self._slots[asset_id]
        self._slots[asset_id] += 1
        box = (100.0 + 300 * slot, 100.0, 300.0 + 300 * slot, 340.0)
        face_id = f"{asset_id}-f{slot}"
        if in_immich:
            self.immich.append(ImmichFaceIn(face_id, asset_id, person_id, box, source_type))
        if in_amp:
            assert identity is not None
            centre = self.centres[identity]
            noise = self.rng.normal(size=DIM)
            ortho = _unit(noise - (noise @ centre) * centre)
            emb = COS_TO_CENTRE * centre + np.sqrt(1 - COS_TO_CENTRE**2) * ortho
            self.amp.append(AmpFaceIn(len(self.amp) + 1, asset_id, box, emb.astype(np.float32)))
        return face_id

    def run(self, thresholds: Thresholds | None = None) -> ReconcileReport:
        return reconcile(
            list(self.assets.values()),
            list(self.people.values()),
            self.immich,
            self.amp,
            thresholds or IMMICH_THRESHOLDS,
        )


def clean_library(seed: int = 0) -> SyntheticLibrary:
    """Four named people, one unnamed, group photos, and strangers Immich left unassigned."""
    lib = SyntheticLibrary(seed)
    for k, name in enumerate(["Ann", "Bob", "Cid", "Dee", ""]):
        lib.identity(f"id{k}")
        lib.person(f"p{k}", name)
    for k in range(5):
        for n in range(4):
            lib.face(f"solo-{k}-{n}", f"id{k}", f"p{k}")
    lib.face("group-1", "id0", "p0")
    lib.face("group-1", "id1", "p1")
    lib.face("group-2", "id2", "p2")
    lib.face("group-2", "id3", "p3")
    lib.face("group-2", "id4", "p4")
    for k in range(3):
        lib.identity(f"stranger{k}")
        lib.face("group-3", f"stranger{k}", None)
    return lib


def kinds(report: ReconcileReport) -> Counter[str]:
    return Counter(f.kind for f in report.findings)


def only(report: ReconcileReport, kind: str) -> Finding:
    found = [f for f in report.findings if f.kind == kind]
    assert len(found) == 1, report.findings
    return found[0]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_clean_library_has_no_findings(seed: int) -> None:
    report = clean_library(seed).run()
    assert report.findings == ()
    detection = report.summary.detection
    assert detection.precision == detection.recall == 1.0
    assert report.summary.identity_agreement_rate == 1.0
    assert report.summary.identity_evaluated == 4 * 5 + 5
    assert all(v == 0 for v in report.summary.findings_by_kind.values())
    assert set(report.summary.findings_by_kind) == set(FINDING_KINDS)


def test_missed_and_extra_detections() -> None:
    lib = clean_library()
    lib.face("solo-0-0", "id0", None, in_immich=False)  # AMP only: Ann again, unseen
    lib.face("solo-1-0", None, None, in_amp=False)  # Immich only
    lib.face("extra-1", None, "p1", in_amp=False, source_type="manual")
    report = lib.run()
    assert kinds(report) == {"missed_by_immich": 1, "only_in_immich": 2}
    missed = only(report, "missed_by_immich")
    assert missed.suggested_person_id == "p0"
    assert missed.details["width_px"] == 200 and missed.details["height_px"] == 240
    # 4000x3000 shrinks to a 1920x1440 preview: 0.48 of the size.
    assert missed.details["preview_width_px"] == 96
    assert "96x115 px" in missed.message and "Ann" in missed.message
    extra = {f.immich_face_ids[0]: f for f in report.findings if f.kind == "only_in_immich"}
    assert extra["extra-1-f0"].details["source_type"] == "manual"
    detection = report.summary.detection
    # Immich: 28 clean faces + 1 extra machine-learning face (+ 1 manual, not counted);
    # AMP: 28 clean faces + the missed one.
    assert detection.immich_ml_faces == 29 and detection.matched_ml == 28
    assert detection.precision == pytest.approx(28 / 29)
    assert detection.amp_faces == 29 and detection.recall == pytest.approx(28 / 29)


def test_a_face_in_the_wrong_person_is_reassigned_and_nothing_else() -> None:
    lib = clean_library()
    wrong = lib.face("group-1", "id2", "p1")  # Cid's face in a photo, given to Bob
    report = lib.run()
    finding = only(report, "reassign_face")
    assert kinds(report) == {"reassign_face": 1}
    assert finding.immich_face_ids == (wrong,)
    assert finding.person_ids == ("p1", "p2") and finding.suggested_person_id == "p2"
    sims = finding.similarities
    assert sims["own_person"] < 0.5 <= sims["suggested_person"]
    assert sims["suggested_person"] == pytest.approx(0.81, abs=0.08)
    assert [f.role for f in finding.faces] == ["face", "person", "suggested"]
    assert report.summary.identity_agreement_rate == pytest.approx(25 / 26)


def test_a_reassignment_replaces_the_duplicate_it_resolves() -> None:
    lib = clean_library()
    lib.face("group-1", "id0", "p1")  # Ann's face given to Bob, in a photo where Bob is
    report = lib.run()
    assert kinds(report) == {"reassign_face": 1}


def test_the_same_person_twice_in_one_photo() -> None:
    lib = clean_library()
    lib.identity("child")
    child = lib.face("group-1", "child", "p1")  # a face like no one, given to Bob
    report = lib.run()
    finding = only(report, "duplicate_in_photo")
    assert kinds(report) == {"duplicate_in_photo": 1}
    assert set(finding.immich_face_ids) == {"group-1-f1", child}
    assert finding.details["likely_wrong_face_id"] == child
    assert finding.similarities[f"face {child}"] < 0.3 < finding.similarities["face group-1-f1"]


def test_one_person_split_in_two_is_a_merge() -> None:
    lib = clean_library()
    lib.person("p9", "Ann B.")
    for n in range(3):
        lib.face(f"more-{n}", "id0", "p9")
    report = lib.run()
    finding = only(report, "merge_people")
    assert kinds(report) == {"merge_people": 1}
    assert finding.person_ids == ("p0", "p9")
    assert finding.similarity == pytest.approx(0.81, abs=0.08)


def test_unnamed_people_and_unassigned_faces_matching_a_named_person() -> None:
    lib = clean_library()
    lib.person("u1")
    for n in range(3):
        lib.face(f"more-{n}", "id1", "u1")  # Bob again, unnamed
    loose = lib.face("more-9", "id3", None)  # Dee, unassigned
    report = lib.run()
    assert kinds(report) == {"unnamed_matches_named": 2}
    by_person = {f.person_ids: f for f in report.findings}
    assert by_person[("u1", "p1")].suggested_person_id == "p1"
    assert by_person[("p3",)].immich_face_ids == (loose,)
    # Two unnamed people of one identity are a plain merge.
    lib.person("u2")
    lib.face("more-5", "id1", "u2")
    report = lib.run()
    assert kinds(report) == {"unnamed_matches_named": 3, "merge_people": 1}
    assert only(report, "merge_people").person_ids == ("u1", "u2")


def _lookalikes(lib: SyntheticLibrary, *, elsewhere: bool) -> None:
    """Person p5 holds two look-alike identities (centres at 0.45: faces across ~0.36)."""
    lib.identity("twin-a")
    lib.identity("twin-b", like="twin-a", similarity=0.45)
    lib.person("p5", "Twins")
    for n in range(3):
        lib.face(f"twin-a-{n}", "twin-a", "p5")
        lib.face(f"twin-b-{n}", "twin-b", "p5")
    if elsewhere:
        lib.person("p6", "Twin B")
        for n in range(3):
            lib.face(f"twin-b-more-{n}", "twin-b", "p6")


def test_look_alikes_in_one_person_are_a_split() -> None:
    lib = clean_library()
    _lookalikes(lib, elsewhere=False)
    report = lib.run()
    finding = only(report, "split_person")
    assert kinds(report) == {"split_person": 1}
    clusters = finding.details["clusters"]
    assert sorted(sorted(c) for c in clusters) == [
        [f"twin-a-{n}-f0" for n in range(3)],
        [f"twin-b-{n}-f0" for n in range(3)],
    ]
    assert finding.similarity == pytest.approx(0.36, abs=0.08)
    assert {f.role for f in finding.faces} == {"cluster 1", "cluster 2"}


def test_a_split_person_is_not_also_a_merge() -> None:
    lib = clean_library()
    _lookalikes(lib, elsewhere=True)
    report = lib.run()
    # Without the precedence, p5-p6 would be a merge: their average linkage is ~0.58.
    assert kinds(report) == {"split_person": 1}
    finding = only(report, "split_person")
    assert finding.details["cluster_matches"].count("p6") == 1
    assert "p6" in finding.person_ids and "Twin B" in finding.message


def test_a_single_stray_face_does_not_make_a_split() -> None:
    lib = clean_library()
    lib.identity("stray")
    lib.face("solo-0-9", "stray", "p0")  # an outlier with no better person
    assert lib.run().findings == ()


def test_thresholds_are_configurable() -> None:
    lib = clean_library()
    lib.person("p9", "Ann B.")
    for n in range(3):
        lib.face(f"more-{n}", "id0", "p9")
    assert kinds(lib.run()) == {"merge_people": 1}
    strict = Thresholds(max_distance=0.1)
    assert kinds(lib.run(strict))["merge_people"] == 0


def test_summary_figures_by_hand() -> None:
    """Three unit vectors in the plane: a=(1,0), b=(0.8,0.6), c=(0,1)."""
    a, b, c = np.array([1.0, 0.0]), np.array([0.8, 0.6]), np.array([0.0, 1.0])
    assets = [AssetIn("x", 100, 100), AssetIn("y", 100, 100)]
    people = [PersonIn("P", "Pat"), PersonIn("Q", "Quin")]
    boxes = [(0.0, 0.0, 10.0, 10.0), (20.0, 0.0, 30.0, 10.0), (40.0, 0.0, 50.0, 10.0)]
    immich = [
        ImmichFaceIn("i1", "x", "P", boxes[0]),
        ImmichFaceIn("i2", "x", "P", boxes[1]),
        ImmichFaceIn("i3", "y", "Q", boxes[0]),
        ImmichFaceIn("i4", "y", None, (60.0, 60.0, 70.0, 70.0)),  # no AMP face
    ]
    amp = [
        AmpFaceIn(1, "x", boxes[0], a),
        AmpFaceIn(2, "x", (21.0, 0.0, 31.0, 10.0), b),  # IoU 90/110
        AmpFaceIn(3, "y", boxes[0], c),
        AmpFaceIn(4, "y", boxes[2], c),  # missed by Immich
    ]
    report = reconcile(assets, people, immich, amp, Thresholds(max_distance=0.5))
    d = report.summary.detection
    assert (d.immich_faces, d.immich_ml_faces, d.amp_faces, d.matched) == (4, 4, 4, 3)
    assert d.precision == pytest.approx(3 / 4) and d.recall == pytest.approx(3 / 4)
    assert d.mean_iou == pytest.approx((1 + 90 / 110 + 1) / 3)
    # i1: own (P's other face b) 0.8, Q 0.0: agrees. i2: own 0.8 vs Q 0.6: agrees.
    # i3: Q has no other face: not evaluated.
    assert (report.summary.identity_evaluated, report.summary.identity_agreed) == (2, 2)
    cohesion = {c.person_id: c for c in report.summary.cohesion}
    assert cohesion["P"].mean_similarity == pytest.approx(0.8)
    assert cohesion["P"].min_face_similarity == pytest.approx(0.8)
    assert (cohesion["P"].faces, cohesion["P"].embedded_faces) == (2, 2)
    assert cohesion["Q"].mean_similarity is None and cohesion["Q"].faces == 1
    # The missed face (c) is Q's face exactly: similarity 1.
    missed = only(report, "missed_by_immich")
    assert missed.suggested_person_id == "Q" and missed.similarity == pytest.approx(1.0)
    assert report.summary.findings_by_kind["only_in_immich"] == 1


def test_unknown_people_are_unnamed_and_embeddings_are_renormalised() -> None:
    e = np.array([3.0, 4.0])
    report = reconcile(
        [AssetIn("x", 10, 10)],
        [],
        [ImmichFaceIn("i1", "x", "ghost", (0.0, 0.0, 5.0, 5.0))],
        [AmpFaceIn(1, "x", (0.0, 0.0, 5.0, 5.0), e)],
    )
    assert report.people == (PersonIn("ghost", ""),)
    assert report.findings == ()


def test_report_round_trips_through_json() -> None:
    lib = clean_library()
    _lookalikes(lib, elsewhere=True)
    lib.face("group-1", "id2", "p1")
    lib.face("solo-0-0", "id0", None, in_immich=False)
    report = lib.run()
    text = json.dumps(report.to_dict())
    assert ReconcileReport.from_dict(json.loads(text)) == report


def test_default_thresholds_per_recognizer() -> None:
    assert default_thresholds("arcface:w600k_r50").max_distance == 0.5
    assert default_thresholds(None) is IMMICH_THRESHOLDS
    assert default_thresholds("dlib:resnet_v1") is DLIB_THRESHOLDS
    assert DLIB_THRESHOLDS.max_distance == pytest.approx(0.08)


def test_clustering_without_scipy_gives_the_same_groups() -> None:
    rng = np.random.default_rng(3)
    centres = [_unit(rng.normal(size=32)) for _ in range(3)]
    emb = np.array([_unit(c + rng.normal(scale=0.08, size=32)) for c in centres for _ in range(5)])
    groups = average_linkage_clusters(emb, 0.5)
    assert sorted(sorted(g.tolist()) for g in groups) == [
        list(range(0, 5)),
        list(range(5, 10)),
        list(range(10, 15)),
    ]
    labels = reconcile_module._average_linkage_numpy(np.clip(1 - emb @ emb.T, 0, 2), 0.5)
    assert sorted(sorted(np.flatnonzero(labels == k).tolist()) for k in set(labels)) == sorted(
        sorted(g.tolist()) for g in groups
    )
    for threshold in (0.2, 0.8, 0.95):
        fallback = reconcile_module._average_linkage_numpy(
            np.clip(1 - emb @ emb.T, 0, 2), threshold
        )
        assert len(set(fallback)) == len(average_linkage_clusters(emb, threshold))


# -- real photos -----------------------------------------------------------------------------

SCRFD_2_5G = "models/unofficial/scrfd_2.5g_kps.hpc203-reexport.onnx"

# Faces of the group photos, by a point inside each box (independent of any embedding).
GROUP_FACES = {
    "_groups/obama_and_biden": {"barack_obama": (1235, 480), "joe_biden": (850, 510)},
    "_groups/two_people": {"joe_biden": (865, 145), "barack_obama": (310, 125)},
}
CHILD = ("_groups/obama_and_biden", (1700, 1120))  # a small child, not among the 8 people


@dataclass(frozen=True)
class RealFace:
    amp: AmpFaceIn
    identity: str | None  # the folder name, or None for faces of no known person


@dataclass(frozen=True)
class RealLibrary:
    assets: list[AssetIn]
    faces: list[RealFace]
    recognizer: str

    def face_at(self, asset_id: str, point: tuple[int, int]) -> RealFace:
        x, y = point
        (hit,) = [
            f
            for f in self.faces
            if f.amp.asset_id == asset_id
            and f.amp.box_xyxy[0] <= x <= f.amp.box_xyxy[2]
            and f.amp.box_xyxy[1] <= y <= f.amp.box_xyxy[3]
        ]
        return hit


@pytest.fixture(scope="module")
def real_library(faces_dir: Path) -> RealLibrary:
    """SCRFD-2.5G boxes and dlib embeddings of every photo in ../shared/faces (computed once)."""
    from engine.faces.factory import DetectorConfig, build_detector, build_dlib
    from engine.faces.pipeline import analyze_file

    model = faces_dir.parent / SCRFD_2_5G
    assert model.is_file(), f"{model} is missing: tests need the shared weights"
    detector = build_detector(DetectorConfig(kind="scrfd", model=str(model), det_thresh=0.6))
    recognizer = build_dlib()
    assets: list[AssetIn] = []
    faces: list[RealFace] = []
    for path in sorted(faces_dir.glob("*/*.jpg")):
        asset_id = f"{path.parent.name}/{path.stem}"
        found = analyze_file(path, detector, recognizer)  # type: ignore[arg-type]
        assert found.embeddings is not None
        assets.append(AssetIn(asset_id, found.width, found.height, str(path)))
        for face, emb in zip(found.faces, found.embeddings, strict=True):
            identity = None if path.parent.name == "_groups" else path.parent.name
            amp = AmpFaceIn(len(faces) + 1, asset_id, face.box_xyxy, emb)
            faces.append(RealFace(amp, identity))
    lib = RealLibrary(assets, faces, recognizer.name)
    labelled = list(lib.faces)
    for asset_id, who in GROUP_FACES.items():
        for identity, point in who.items():
            hit = lib.face_at(asset_id, point)
            labelled[lib.faces.index(hit)] = RealFace(hit.amp, identity)
    return RealLibrary(assets, labelled, recognizer.name)


def _immich_view(
    lib: RealLibrary, assignment: dict[int, str | None]
) -> tuple[list[PersonIn], list[ImmichFaceIn]]:
    """Immich's faces as its API would give them: boxes on the 1440 px preview, rounded to
    whole pixels, mapped back onto the original; `assignment` maps AMP face id -> person id
    (faces left out of it are ones Immich did not detect)."""
    sizes = {a.asset_id: (a.width, a.height) for a in lib.assets}
    immich = []
    for face in lib.faces:
        if face.amp.face_id not in assignment:
            continue
        # Every photo pretends to be stored sideways (orientation 6), as phones store them.
        stored_w, stored_h = sizes[face.amp.asset_id][::-1]
        ow, oh = upright_size(stored_w, stored_h, "6")
        pw, ph = preview_size(ow, oh)
        preview_box = [round(v) for v in original_to_preview(face.amp.box_xyxy, ow, oh, pw, ph)]
        box = preview_to_original(preview_box, pw, ph, ow, oh)
        immich.append(
            ImmichFaceIn(
                f"imm-{face.amp.face_id}", face.amp.asset_id, assignment[face.amp.face_id], box
            )
        )
    people = [PersonIn(f"person-{who}", who.replace("_", " ").title()) for who in _identities(lib)]
    return people, immich


def _identities(lib: RealLibrary) -> list[str]:
    return sorted({f.identity for f in lib.faces if f.identity is not None})


def _clean_assignment(lib: RealLibrary) -> dict[int, str | None]:
    return {
        f.amp.face_id: None if f.identity is None else f"person-{f.identity}" for f in lib.faces
    }


def _run(lib: RealLibrary, people: list[PersonIn], immich: list[ImmichFaceIn]) -> ReconcileReport:
    amp = [f.amp for f in lib.faces]
    return reconcile(lib.assets, people, immich, amp, recognizer=lib.recognizer)


def test_real_photos_clean_assignment_has_no_findings(real_library: RealLibrary) -> None:
    lib = real_library
    assert len(lib.faces) == 22 + 3 + 2 + 29
    people, immich = _immich_view(lib, _clean_assignment(lib))
    report = _run(lib, people, immich)
    assert report.thresholds == DLIB_THRESHOLDS
    assert report.findings == ()
    assert report.summary.detection.precision == report.summary.detection.recall == 1.0
    assert report.summary.identity_agreement_rate == 1.0


def _faces_of(lib: RealLibrary, asset_id: str) -> list[RealFace]:
    return [f for f in lib.faces if f.amp.asset_id == asset_id]


def test_real_photos_every_planted_mistake_is_found(real_library: RealLibrary) -> None:
    lib = real_library
    assignment = _clean_assignment(lib)
    (obama1,) = _faces_of(lib, "barack_obama/obama1")
    del assignment[obama1.amp.face_id]  # Immich missed it
    (paul2,) = _faces_of(lib, "paul_allen/paul_allen2")
    assignment[paul2.amp.face_id] = "person-steve_wozniak"
    for stem in ("guido_van_rossum3", "guido_van_rossum4"):
        (guido,) = _faces_of(lib, f"guido_van_rossum/{stem}")
        assignment[guido.amp.face_id] = "person-guido-2"
    for face in _faces_of(lib, "rose_leslie/img1") + _faces_of(lib, "rose_leslie/img2"):
        assignment[face.amp.face_id] = "person-kit_harington"  # a couple merged into one
    child = lib.face_at(*CHILD)
    assignment[child.amp.face_id] = "person-barack_obama"
    group_bidens = [lib.face_at(a, who["joe_biden"]) for a, who in GROUP_FACES.items()]
    for face in group_bidens:
        assignment[face.amp.face_id] = "person-unnamed-1"
    (alex,) = _faces_of(lib, "alex_lacamoire/img1")
    assignment[alex.amp.face_id] = None

    people, immich = _immich_view(lib, assignment)
    people = [p for p in people if p.person_id != "person-rose_leslie"]
    people += [PersonIn("person-guido-2", "Guido v. R."), PersonIn("person-unnamed-1", "")]
    immich.append(ImmichFaceIn("imm-ghost", "kit_harington/john1", None, (0.0, 0.0, 60.0, 60.0)))
    report = _run(lib, people, immich)

    found = {(f.kind, f.person_ids, f.immich_face_ids or f.amp_face_ids) for f in report.findings}
    rose_and_kit = {
        f"imm-{f.amp.face_id}" for f in lib.faces if f.identity in ("rose_leslie", "kit_harington")
    }
    split = only(report, "split_person")
    assert {x for c in split.details["clusters"] for x in c} == rose_and_kit
    duplicate = only(report, "duplicate_in_photo")
    assert duplicate.details["likely_wrong_face_id"] == f"imm-{child.amp.face_id}"
    assert found == {
        ("missed_by_immich", ("person-barack_obama",), (obama1.amp.face_id,)),
        ("only_in_immich", (), ("imm-ghost",)),
        (
            "reassign_face",
            ("person-steve_wozniak", "person-paul_allen"),
            (f"imm-{paul2.amp.face_id}",),
        ),
        (
            "merge_people",
            ("person-guido-2", "person-guido_van_rossum"),
            only(report, "merge_people").immich_face_ids,
        ),
        ("split_person", ("person-kit_harington",), split.immich_face_ids),
        ("duplicate_in_photo", ("person-barack_obama",), duplicate.immich_face_ids),
        (
            "unnamed_matches_named",
            ("person-unnamed-1", "person-joe_biden"),
            next(
                f for f in report.findings if f.person_ids[:1] == ("person-unnamed-1",)
            ).immich_face_ids,
        ),
        ("unnamed_matches_named", ("person-alex_lacamoire",), (f"imm-{alex.amp.face_id}",)),
    }
    assert set(duplicate.immich_face_ids) == {
        f"imm-{child.amp.face_id}",
        f"imm-{lib.face_at('_groups/obama_and_biden', (1235, 480)).amp.face_id}",
    }
    detection = report.summary.detection
    assert detection.recall == pytest.approx(1 - 1 / len(lib.faces))
    assert detection.precision == pytest.approx(1 - 1 / (len(lib.faces)))
