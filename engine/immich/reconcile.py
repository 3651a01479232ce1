"""Cross-check Immich's faces and people against AMP's detections and embeddings.

Pure: assets, people and faces in, a `ReconcileReport` out; no file, network or clock.

Steps and precedence (each finding is reported once, by the most specific rule):

1. Detection. Per asset, Immich's boxes (mapped onto upright original pixels) and AMP's are
   paired one-to-one at IoU >= `min_iou` (`geometry.match_boxes`). Unpaired AMP faces are
   `missed_by_immich`, unpaired Immich faces `only_in_immich`. Only paired faces carry an
   embedding into the identity checks; a missed face that resembles a person names it as
   its `suggested_person_id` rather than raising an identity finding of its own.
2. `reassign_face`: a face whose mean similarity to its person's other faces is below the
   bar (distance > `max_distance`) while its mean similarity to another person's faces is
   above it, by at least `reassign_margin`. A reassigned face is left out of its person for
   every later step, so one wrong face never also makes its person look split, merged or
   doubled in a photo.
3. `duplicate_in_photo`: one person on two or more faces of one asset, counted after the
   reassignments (a reassignment that already moves one of the two away replaces it). The
   face least like the person's other faces is named as the likely mistake.
4. `split_person`: the person's remaining faces are clustered by average linkage, stopping
   before any merge whose average distance exceeds `max_distance`; two or more clusters of
   at least `min_split_faces` faces make a split. Faces in smaller clusters (stray outliers
   with no better person) are left alone. A split person takes no part in step 5: each of its
   clusters names its best matching other person instead.
5. People against people, by average linkage (the mean similarity over all pairs of their
   faces): an unnamed person matching a named one is `unnamed_matches_named` (its best named
   match only); any other matching pair (named-named, unnamed-unnamed) is `merge_people`.
   Unassigned Immich faces matching a named person are `unnamed_matches_named` too.

Similarities of a face to a group are means over the group's faces, computed from per-person
embedding sums, so memory grows with faces + people, never faces squared (clustering in
step 4 is the exception, per person).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from engine.immich.findings import (
    FINDING_KINDS,
    AmpFaceIn,
    AssetIn,
    DetectionSummary,
    FaceRef,
    Finding,
    ImmichFaceIn,
    PersonCohesion,
    PersonIn,
    ReconcileReport,
    Summary,
    Thresholds,
    crop_key,
)
from engine.immich.geometry import PREVIEW_SHORT_SIDE_PX, match_boxes, preview_scale

__all__ = [
    "AmpFaceIn",
    "AssetIn",
    "ImmichFaceIn",
    "PersonIn",
    "Thresholds",
    "average_linkage_clusters",
    "default_thresholds",
    "reconcile",
]

IMMICH_THRESHOLDS = Thresholds()  # maxDistance 0.5: Immich's default, for ArcFace

# dlib's ResNet (128-d) puts everyone close: measured on ../shared/faces (8 people, 22
# single-person photos, 2 group photos and the 29 faces of the 1927 Solvay photo; SCRFD boxes,
# dlib embeddings L2-normalised), same-person pairs have cosine similarity 0.932..0.990, pairs
# of different people 0.729..0.894 among the colour portraits and up to 0.907 between a
# Solvay face and a portrait; the Solvay faces among themselves (one old greyscale print)
# reach 0.957. dlib's own rule (euclidean 0.6, i.e. cosine distance 0.18) would call most
# of these pairs one person. 0.08 (similarity 0.92) sits between 0.907 and 0.932; the margin
# scales Immich's 0.1 by the same compression (0.08 / 0.5 of the distance range, ~0.02).
DLIB_THRESHOLDS = Thresholds(max_distance=0.08, reassign_margin=0.02)

_CHUNK_FACES = 4096  # faces per block of face-by-person similarities


def default_thresholds(recognizer_name: str | None) -> Thresholds:
    """Thresholds calibrated for the recognizer that made AMP's embeddings: dlib's ResNet
    (names starting `dlib:`) gets `DLIB_THRESHOLDS`, anything else Immich's (ArcFace)."""
    if recognizer_name is not None and recognizer_name.startswith("dlib:"):
        return DLIB_THRESHOLDS
    return IMMICH_THRESHOLDS


def reconcile(
    assets: Sequence[AssetIn],
    people: Sequence[PersonIn],
    immich_faces: Sequence[ImmichFaceIn],
    amp_faces: Sequence[AmpFaceIn],
    thresholds: Thresholds | None = None,
    *,
    recognizer: str | None = None,
) -> ReconcileReport:
    """Compare Immich's faces and people with AMP's; see the module docstring for the rules.

    `thresholds` None means `default_thresholds(recognizer)`. People that faces refer to but
    `people` lacks are treated as unnamed.
    """
    t = thresholds if thresholds is not None else default_thresholds(recognizer)
    assets_by_id = {a.asset_id: a for a in assets}
    people_by_id = {p.person_id: p for p in people}
    for face in immich_faces:
        if face.person_id is not None and face.person_id not in people_by_id:
            people_by_id[face.person_id] = PersonIn(face.person_id)

    pairs, missed, only = _match_detections(immich_faces, amp_faces, t.min_iou)
    lib = _Library.build(immich_faces, pairs)
    findings: list[Finding] = [_only_in_immich(f, people_by_id) for f in only]

    scan = lib.scan_own_and_others(t)
    reassigned = scan.reassign
    findings += [_reassign_finding(lib, i, q, scan, people_by_id) for i, q in reassigned.items()]

    clean = lib.without(set(reassigned))
    findings += _duplicates(immich_faces, set(lib.face_ids_of(reassigned)), clean, people_by_id)
    split_findings, split_people = _splits(clean, t, people_by_id)
    findings += split_findings
    findings += _people_matches(clean, split_people, t, people_by_id)
    findings += _unassigned_matches(lib, clean, t, people_by_id)
    findings += [_missed_finding(a, assets_by_id, clean, t, people_by_id) for a in missed]

    findings.sort(key=_finding_order)
    summary = Summary(
        detection=_detection_summary(immich_faces, amp_faces, pairs),
        identity_evaluated=scan.evaluated,
        identity_agreed=scan.agreed,
        identity_agreement_rate=scan.agreed / scan.evaluated if scan.evaluated else None,
        cohesion=_cohesion(lib, scan, immich_faces, people_by_id),
        findings_by_kind={k: sum(f.kind == k for f in findings) for k in FINDING_KINDS},
    )
    return ReconcileReport(
        findings=tuple(findings),
        summary=summary,
        thresholds=t,
        people=tuple(sorted(people_by_id.values(), key=lambda p: p.person_id)),
        assets=tuple(sorted(assets, key=lambda a: a.asset_id)),
        recognizer=recognizer,
    )


# -- detection -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Pair:
    immich: ImmichFaceIn
    amp: AmpFaceIn
    iou: float


def _match_detections(
    immich_faces: Sequence[ImmichFaceIn], amp_faces: Sequence[AmpFaceIn], min_iou: float
) -> tuple[list[_Pair], list[AmpFaceIn], list[ImmichFaceIn]]:
    by_asset_immich: dict[str, list[ImmichFaceIn]] = defaultdict(list)
    by_asset_amp: dict[str, list[AmpFaceIn]] = defaultdict(list)
    for face in immich_faces:
        by_asset_immich[face.asset_id].append(face)
    for amp in amp_faces:
        by_asset_amp[amp.asset_id].append(amp)
    pairs: list[_Pair] = []
    missed: list[AmpFaceIn] = []
    only: list[ImmichFaceIn] = []
    for asset_id in sorted(set(by_asset_immich) | set(by_asset_amp)):
        ims, amps = by_asset_immich[asset_id], by_asset_amp[asset_id]
        matched = match_boxes([f.box_xyxy for f in ims], [a.box_xyxy for a in amps], min_iou)
        pairs += [_Pair(ims[i], amps[j], iou) for i, j, iou in matched]
        matched_i = {i for i, _, _ in matched}
        matched_j = {j for _, j, _ in matched}
        only += [f for i, f in enumerate(ims) if i not in matched_i]
        missed += [a for j, a in enumerate(amps) if j not in matched_j]
    return pairs, missed, only


def _is_ml(face: ImmichFaceIn) -> bool:
    return face.source_type in (None, "machine-learning")


def _detection_summary(
    immich_faces: Sequence[ImmichFaceIn], amp_faces: Sequence[AmpFaceIn], pairs: list[_Pair]
) -> DetectionSummary:
    ml = sum(_is_ml(f) for f in immich_faces)
    matched_ml = sum(_is_ml(p.immich) for p in pairs)
    return DetectionSummary(
        immich_faces=len(immich_faces),
        immich_ml_faces=ml,
        amp_faces=len(amp_faces),
        matched=len(pairs),
        matched_ml=matched_ml,
        precision=matched_ml / ml if ml else None,
        recall=len(pairs) / len(amp_faces) if amp_faces else None,
        mean_iou=float(np.mean([p.iou for p in pairs])) if pairs else None,
    )


def _box_size(box: Sequence[float]) -> tuple[int, int]:
    return round(box[2] - box[0]), round(box[3] - box[1])


def _only_in_immich(face: ImmichFaceIn, people: dict[str, PersonIn]) -> Finding:
    w, h = _box_size(face.box_xyxy)
    source = face.source_type or "machine-learning"
    who = f", assigned to {people[face.person_id].label}" if face.person_id else ""
    return Finding(
        kind="only_in_immich",
        message=f"Immich has a {w}x{h} px face ({source}){who} that AMP did not detect.",
        asset_ids=(face.asset_id,),
        immich_face_ids=(face.face_id,),
        person_ids=(face.person_id,) if face.person_id else (),
        details={"width_px": w, "height_px": h, "source_type": source},
        faces=(
            FaceRef(
                crop_key("immich", face.face_id),
                face.asset_id,
                face.box_xyxy,
                "face",
                face.person_id,
            ),
        ),
    )


def _missed_finding(
    amp: AmpFaceIn,
    assets: dict[str, AssetIn],
    clean: _Library,
    t: Thresholds,
    people: dict[str, PersonIn],
) -> Finding:
    w, h = _box_size(amp.box_xyxy)
    details: dict[str, object] = {"width_px": w, "height_px": h}
    size = f"a {w}x{h} px face"
    asset = assets.get(amp.asset_id)
    if asset is not None:
        # Immich saw the face in its preview, where a small face is smaller still.
        scale = preview_scale(asset.width, asset.height)
        pw, ph = round(w * scale), round(h * scale)
        details |= {"preview_width_px": pw, "preview_height_px": ph}
        if scale < 1.0:
            size += f" ({pw}x{ph} px in Immich's {PREVIEW_SHORT_SIDE_PX} px preview)"
    faces = [FaceRef(crop_key("amp", amp.face_id), amp.asset_id, amp.box_xyxy, "face")]
    message = f"AMP found {size} that Immich did not detect."
    suggested, sim = clean.best_person(_unit(amp.embedding), t.min_similarity)
    similarities: dict[str, float] = {}
    if suggested is not None:
        message = (
            message[:-1] + f"; it looks like {people[suggested].label} (similarity {sim:.3f})."
        )
        similarities["suggested_person"] = sim
        faces.append(clean.representative(suggested, "suggested", sim))
    return Finding(
        kind="missed_by_immich",
        message=message,
        asset_ids=(amp.asset_id,),
        amp_face_ids=(amp.face_id,),
        person_ids=(suggested,) if suggested else (),
        suggested_person_id=suggested,
        similarity=sim if suggested else None,
        similarities=similarities,
        details=details,
        faces=tuple(faces),
    )


# -- the embedded library --------------------------------------------------------------------


def _unit(vector: np.ndarray) -> np.ndarray:
    v = np.asarray(vector, dtype=np.float64).ravel()
    norm = np.linalg.norm(v)
    return v / norm if norm > 0 else v


@dataclass(frozen=True)
class _Scan:
    own: np.ndarray  # (n,) mean similarity to own person's other faces; nan without any
    reassign: dict[int, str]  # face index -> suggested person
    best_other: dict[int, float]  # face index -> similarity to the suggested person
    evaluated: int
    agreed: int


@dataclass(frozen=True, eq=False)
class _Library:
    """Immich faces AMP embedded: unit embeddings, their person, and per-person sums."""

    pairs: tuple[_Pair, ...]
    embeddings: np.ndarray  # (n, d) float64, unit rows
    person_of: tuple[str | None, ...]
    person_ids: tuple[str, ...]  # people with at least one face here, sorted
    sums: np.ndarray  # (p, d) sum of each person's embeddings
    counts: np.ndarray  # (p,) faces per person

    @classmethod
    def build(cls, immich_faces: Sequence[ImmichFaceIn], pairs: Sequence[_Pair]) -> _Library:
        order = {f.face_id: k for k, f in enumerate(immich_faces)}
        ordered = tuple(sorted(pairs, key=lambda p: order[p.immich.face_id]))
        dim = len(ordered[0].amp.embedding) if ordered else 0
        emb = np.array([_unit(p.amp.embedding) for p in ordered]).reshape(len(ordered), dim)
        return cls._with_people(ordered, emb, tuple(p.immich.person_id for p in ordered))

    @classmethod
    def _with_people(
        cls, pairs: tuple[_Pair, ...], emb: np.ndarray, person_of: tuple[str | None, ...]
    ) -> _Library:
        person_ids = tuple(sorted({p for p in person_of if p is not None}))
        col = {p: k for k, p in enumerate(person_ids)}
        sums = np.zeros((len(person_ids), emb.shape[1]))
        counts = np.zeros(len(person_ids), dtype=np.int64)
        for i, p in enumerate(person_of):
            if p is not None:
                sums[col[p]] += emb[i]
                counts[col[p]] += 1
        return cls(pairs, emb, person_of, person_ids, sums, counts)

    def without(self, faces: set[int]) -> _Library:
        """The same faces with `faces` taken out of their people (they stay unassigned)."""
        person_of = tuple(None if i in faces else p for i, p in enumerate(self.person_of))
        return self._with_people(self.pairs, self.embeddings, person_of)

    def face_ids_of(self, indices: Iterable[int]) -> list[str]:
        return [self.pairs[i].immich.face_id for i in indices]

    def members(self, person_id: str) -> np.ndarray:
        return np.array([i for i, p in enumerate(self.person_of) if p == person_id], dtype=int)

    def column(self, person_id: str) -> int | None:
        try:
            return self.person_ids.index(person_id)
        except ValueError:
            return None

    def ref(self, i: int, role: str, similarity: float | None = None) -> FaceRef:
        face = self.pairs[i].immich
        key = crop_key("immich", face.face_id)
        return FaceRef(key, face.asset_id, face.box_xyxy, role, self.person_of[i], similarity)

    def mean_to_people(self, vectors: np.ndarray) -> np.ndarray:
        """(k, p) mean similarity of each vector to each person's faces."""
        if not self.person_ids:
            return np.zeros((len(vectors), 0))
        return (vectors @ self.sums.T) / self.counts[None, :]

    def best_person(
        self,
        vector: np.ndarray,
        min_similarity: float,
        *,
        named_in: dict[str, PersonIn] | None = None,
    ) -> tuple[str | None, float]:
        """The person with the highest mean similarity to `vector` when it reaches
        `min_similarity` (only named people when `named_in` is given), else (None, best)."""
        sims = self.mean_to_people(vector[None, :])[0]
        if named_in is not None:
            named = np.array([bool(named_in[p].name) for p in self.person_ids], dtype=bool)
            sims = np.where(named, sims, -np.inf)
        if sims.size == 0 or not np.isfinite(sims.max()):
            return None, float("nan")
        k = int(np.argmax(sims))
        best = float(sims[k])
        return (self.person_ids[k], best) if best >= min_similarity else (None, best)

    def representative(self, person_id: str, role: str, similarity: float | None) -> FaceRef:
        """The person's most typical face: highest mean similarity to its other faces."""
        idx = self.members(person_id)
        return self.ref(int(idx[self._medoid(idx)]), role, similarity)

    def _medoid(self, idx: np.ndarray) -> int:
        if len(idx) <= 2:
            return 0
        sub = self.embeddings[idx]
        return int(np.argmax(sub @ sub.sum(axis=0)))  # self-similarity is the same for all

    def scan_own_and_others(self, t: Thresholds) -> _Scan:
        """Per face: its own person's mean similarity (itself left out), the best other
        person, the reassignment rule and the identity-agreement count."""
        n = len(self.pairs)
        own = np.full(n, np.nan)
        reassign: dict[int, str] = {}
        best_other: dict[int, float] = {}
        evaluated = agreed = 0
        col = np.array(
            [-1 if p is None else self.person_ids.index(p) for p in self.person_of], dtype=int
        )
        for start in range(0, n, _CHUNK_FACES):
            rows = np.arange(start, min(n, start + _CHUNK_FACES))
            rows = rows[col[rows] >= 0]
            if rows.size == 0:
                continue
            vec = self.embeddings[rows]
            dots = vec @ self.sums.T  # (k, p)
            mine = col[rows]
            self_dot = np.einsum("ij,ij->i", vec, vec)
            others_n = self.counts[mine] - 1
            with np.errstate(invalid="ignore", divide="ignore"):
                own_rows = np.where(
                    others_n > 0, (dots[np.arange(rows.size), mine] - self_dot) / others_n, np.nan
                )
            means = dots / self.counts[None, :]
            means[np.arange(rows.size), mine] = -np.inf  # own person: `own_rows` instead
            best_col = np.argmax(means, axis=1)
            best = means[np.arange(rows.size), best_col]  # -inf when there is no other person
            own[rows] = own_rows
            for k, i in enumerate(rows):
                if np.isnan(own_rows[k]):
                    continue
                evaluated += 1
                agreed += bool(own_rows[k] >= best[k])
                if (
                    own_rows[k] < t.min_similarity
                    and best[k] >= t.min_similarity
                    and best[k] - own_rows[k] >= t.reassign_margin
                ):
                    reassign[int(i)] = self.person_ids[int(best_col[k])]
                    best_other[int(i)] = float(best[k])
        return _Scan(own, reassign, best_other, evaluated, agreed)


# -- identity findings -----------------------------------------------------------------------


def _reassign_finding(
    lib: _Library, i: int, target: str, scan: _Scan, people: dict[str, PersonIn]
) -> Finding:
    face = lib.pairs[i].immich
    current = face.person_id
    assert current is not None  # only assigned faces are scanned
    own, other = float(scan.own[i]), scan.best_other[i]
    others = lib.members(current)
    others = others[others != i]
    return Finding(
        kind="reassign_face",
        message=(
            f"This face is assigned to {people[current].label} but looks like "
            f"{people[target].label}: similarity {other:.3f} to {people[target].label}'s "
            f"faces, {own:.3f} to {people[current].label}'s other faces."
        ),
        asset_ids=(face.asset_id,),
        immich_face_ids=(face.face_id,),
        amp_face_ids=(lib.pairs[i].amp.face_id,),
        person_ids=(current, target),
        suggested_person_id=target,
        similarity=other,
        similarities={"own_person": own, "suggested_person": other, "margin": other - own},
        faces=(
            lib.ref(i, "face"),
            lib.ref(int(others[lib._medoid(others)]), "person", own),
            lib.representative(target, "suggested", other),
        ),
    )


def _duplicates(
    immich_faces: Sequence[ImmichFaceIn],
    reassigned_ids: set[str],
    clean: _Library,
    people: dict[str, PersonIn],
) -> list[Finding]:
    groups: dict[tuple[str, str], list[ImmichFaceIn]] = defaultdict(list)
    for face in immich_faces:
        if face.person_id is not None and face.face_id not in reassigned_ids:
            groups[(face.asset_id, face.person_id)].append(face)
    index = {p.immich.face_id: i for i, p in enumerate(clean.pairs)}
    findings = []
    for (asset_id, person_id), faces in sorted(groups.items()):
        if len(faces) < 2:
            continue
        # Each face against the person's faces outside this photo: inside it, the faces
        # would vouch for each other.
        embedded = [index[f.face_id] for f in faces if f.face_id in index]
        col = clean.column(person_id)
        sims: dict[str, float] = {}
        if col is not None and embedded:
            rest_sum = clean.sums[col] - clean.embeddings[embedded].sum(axis=0)
            rest_n = int(clean.counts[col]) - len(embedded)
            if rest_n > 0:
                for i in embedded:
                    sims[clean.pairs[i].immich.face_id] = float(
                        clean.embeddings[i] @ rest_sum / rest_n
                    )
        label = people[person_id].label
        message = f"{label} is assigned to {len(faces)} faces in one photo."
        suspect = min(sims, key=lambda k: sims[k]) if len(sims) >= 2 else None
        if suspect is not None:
            message += (
                f" The face least like {label}'s other photos (similarity "
                f"{sims[suspect]:.3f}) is the likely mistake."
            )
        findings.append(
            Finding(
                kind="duplicate_in_photo",
                message=message,
                asset_ids=(asset_id,),
                immich_face_ids=tuple(f.face_id for f in faces),
                amp_face_ids=tuple(clean.pairs[i].amp.face_id for i in embedded),
                person_ids=(person_id,),
                similarity=sims[suspect] if suspect is not None else None,
                similarities={f"face {k}": v for k, v in sims.items()},
                details={"likely_wrong_face_id": suspect},
                faces=tuple(
                    FaceRef(
                        crop_key("immich", f.face_id),
                        asset_id,
                        f.box_xyxy,
                        "face",
                        person_id,
                        sims.get(f.face_id),
                    )
                    for f in faces
                ),
            )
        )
    return findings


def average_linkage_clusters(embeddings: np.ndarray, max_distance: float) -> list[np.ndarray]:
    """Row groups of unit `embeddings` by average-linkage agglomeration on cosine distance,
    stopped before any merge whose average distance exceeds `max_distance` (average linkage
    never lowers the merge height, so this equals cutting the full tree there). Largest
    group first, ties by first row."""
    n = len(embeddings)
    if n == 0:
        return []
    if n == 1:
        return [np.array([0])]
    distances = np.clip(1.0 - embeddings @ embeddings.T, 0.0, 2.0)
    try:
        from scipy.cluster.hierarchy import fcluster, linkage
        from scipy.spatial.distance import squareform
    except ImportError:  # pragma: no cover - scipy comes with insightface
        labels = _average_linkage_numpy(distances, max_distance)
    else:
        np.fill_diagonal(distances, 0.0)
        tree = linkage(squareform(distances, checks=False), method="average")
        labels = fcluster(tree, t=max_distance, criterion="distance")
    groups = [np.flatnonzero(labels == label) for label in np.unique(labels)]
    return sorted(groups, key=lambda g: (-len(g), int(g[0])))


def _average_linkage_numpy(distances: np.ndarray, max_distance: float) -> np.ndarray:
    n = len(distances)
    d = distances.astype(np.float64).copy()
    np.fill_diagonal(d, np.inf)
    size = np.ones(n)
    alive = np.ones(n, dtype=bool)
    labels = np.arange(n)
    while alive.sum() > 1:
        masked = np.where(alive[:, None] & alive[None, :], d, np.inf)
        a, b = divmod(int(np.argmin(masked)), n)
        if masked[a, b] > max_distance:
            break
        # Lance-Williams update for average linkage: size-weighted mean of the two rows.
        merged = (size[a] * d[a] + size[b] * d[b]) / (size[a] + size[b])
        d[a], d[:, a] = merged, merged
        d[a, a] = np.inf
        size[a] += size[b]
        alive[b] = False
        labels[labels == b] = a
    return labels


def _splits(
    clean: _Library, t: Thresholds, people: dict[str, PersonIn]
) -> tuple[list[Finding], set[str]]:
    findings: list[Finding] = []
    split: set[str] = set()
    for person_id in clean.person_ids:
        idx = clean.members(person_id)
        if len(idx) < 2 * t.min_split_faces:
            continue
        groups = [
            idx[g]
            for g in average_linkage_clusters(clean.embeddings[idx], t.max_distance)
            if len(g) >= t.min_split_faces
        ]
        if len(groups) < 2:
            continue
        split.add(person_id)
        findings.append(_split_finding(clean, person_id, groups, t, people))
    return findings, split


def _split_finding(
    clean: _Library,
    person_id: str,
    groups: list[np.ndarray],
    t: Thresholds,
    people: dict[str, PersonIn],
) -> Finding:
    emb = clean.embeddings
    sums = [emb[g].sum(axis=0) for g in groups]
    between = max(
        float(sums[a] @ sums[b]) / (len(groups[a]) * len(groups[b]))
        for a in range(len(groups))
        for b in range(a + 1, len(groups))
    )
    faces: list[FaceRef] = []
    matches: list[str | None] = []
    similarities: dict[str, float] = {"closest_clusters": between}
    others = clean.without(set(clean.members(person_id).tolist()))
    for k, g in enumerate(groups, start=1):
        within = _mean_pairwise(emb[g])
        similarities[f"cluster {k} cohesion"] = within
        centre = emb[g] @ sums[k - 1]
        for i in g[np.argsort(-centre, kind="stable")][:3]:
            faces.append(clean.ref(int(i), f"cluster {k}", within))
        match, sim = others.best_person(sums[k - 1] / len(g), t.min_similarity)
        matches.append(match)
        if match is not None:
            similarities[f"cluster {k} to {match}"] = sim
    label = people[person_id].label
    sizes = " + ".join(str(len(g)) for g in groups)
    message = (
        f"{label}'s faces form {len(groups)} separate identities ({sizes} faces): the "
        f"closest two have average similarity {between:.3f}, below {t.min_similarity:.3f}."
    )
    for k, match in enumerate(matches, start=1):
        if match is not None:
            message += f" Cluster {k} looks like {people[match].label}."
    return Finding(
        kind="split_person",
        message=message,
        asset_ids=tuple(sorted({clean.pairs[int(i)].immich.asset_id for g in groups for i in g})),
        immich_face_ids=tuple(clean.pairs[int(i)].immich.face_id for g in groups for i in g),
        amp_face_ids=tuple(clean.pairs[int(i)].amp.face_id for g in groups for i in g),
        person_ids=(person_id, *sorted({m for m in matches if m is not None})),
        similarity=between,
        similarities=similarities,
        details={
            "clusters": [[clean.pairs[int(i)].immich.face_id for i in g] for g in groups],
            "cluster_matches": matches,
        },
        faces=tuple(faces),
    )


def _mean_pairwise(emb: np.ndarray) -> float:
    n = len(emb)
    total = emb.sum(axis=0)
    return float((total @ total - np.einsum("ij,ij->", emb, emb)) / (n * (n - 1)))


def _people_matches(
    clean: _Library, split: set[str], t: Thresholds, people: dict[str, PersonIn]
) -> list[Finding]:
    ids = [p for p in clean.person_ids if p not in split]
    if len(ids) < 2:
        return []
    cols = [clean.person_ids.index(p) for p in ids]
    sums, counts = clean.sums[cols], clean.counts[cols]
    linkage = (sums @ sums.T) / np.outer(counts, counts)
    findings: list[Finding] = []
    named = [bool(people[p].name) for p in ids]
    for a in range(len(ids)):
        if not named[a]:
            candidates = [b for b in range(len(ids)) if named[b]]
            if candidates:
                b = max(candidates, key=lambda c: linkage[a, c])
                if linkage[a, b] >= t.min_similarity:
                    findings.append(
                        _person_pair(clean, ids[a], ids[b], float(linkage[a, b]), people, True)
                    )
        for b in range(a + 1, len(ids)):
            if named[a] == named[b] and linkage[a, b] >= t.min_similarity:
                findings.append(
                    _person_pair(clean, ids[a], ids[b], float(linkage[a, b]), people, False)
                )
    return findings


def _person_pair(
    clean: _Library,
    first: str,
    second: str,
    linkage: float,
    people: dict[str, PersonIn],
    unnamed_to_named: bool,
) -> Finding:
    a, b = people[first], people[second]
    fa, fb = clean.members(first), clean.members(second)
    if unnamed_to_named:
        message = (
            f"{a.label} ({_faces(len(fa))}) looks like {b.label} ({_faces(len(fb))}): average "
            f"similarity {linkage:.3f} between their faces."
        )
    else:
        message = (
            f"{a.label} ({_faces(len(fa))}) and {b.label} ({_faces(len(fb))}) look like one "
            f"person: average similarity {linkage:.3f} between their faces."
        )
    idx = np.concatenate([fa, fb])
    return Finding(
        kind="unnamed_matches_named" if unnamed_to_named else "merge_people",
        message=message,
        asset_ids=tuple(sorted({clean.pairs[int(i)].immich.asset_id for i in idx})),
        immich_face_ids=tuple(clean.pairs[int(i)].immich.face_id for i in idx),
        amp_face_ids=tuple(clean.pairs[int(i)].amp.face_id for i in idx),
        person_ids=(first, second),
        suggested_person_id=second,
        similarity=linkage,
        similarities={"average_linkage": linkage},
        details={"faces_first": len(fa), "faces_second": len(fb)},
        faces=(
            clean.representative(first, "person", None),
            clean.representative(second, "suggested" if unnamed_to_named else "other", None),
        ),
    )


def _unassigned_matches(
    lib: _Library, clean: _Library, t: Thresholds, people: dict[str, PersonIn]
) -> list[Finding]:
    """Faces Immich left without a person (reassigned ones excepted: they have a finding)."""
    findings = []
    for i, pair in enumerate(lib.pairs):
        if pair.immich.person_id is not None:
            continue
        target, sim = clean.best_person(clean.embeddings[i], t.min_similarity, named_in=people)
        if target is None:
            continue
        label = people[target].label
        findings.append(
            Finding(
                kind="unnamed_matches_named",
                message=f"An unassigned face looks like {label}: similarity {sim:.3f}.",
                asset_ids=(pair.immich.asset_id,),
                immich_face_ids=(pair.immich.face_id,),
                amp_face_ids=(pair.amp.face_id,),
                person_ids=(target,),
                suggested_person_id=target,
                similarity=sim,
                similarities={"suggested_person": sim},
                faces=(lib.ref(i, "face"), clean.representative(target, "suggested", sim)),
            )
        )
    return findings


# -- summary ---------------------------------------------------------------------------------


def _cohesion(
    lib: _Library, scan: _Scan, immich_faces: Sequence[ImmichFaceIn], people: dict[str, PersonIn]
) -> tuple[PersonCohesion, ...]:
    totals: dict[str, int] = defaultdict(int)
    for face in immich_faces:
        if face.person_id is not None:
            totals[face.person_id] += 1
    rows = []
    for person_id in sorted(totals):
        idx = lib.members(person_id)
        mean = _mean_pairwise(lib.embeddings[idx]) if len(idx) >= 2 else None
        weakest = float(np.nanmin(scan.own[idx])) if len(idx) >= 2 else None
        rows.append(
            PersonCohesion(
                person_id=person_id,
                name=people[person_id].name,
                faces=totals[person_id],
                embedded_faces=len(idx),
                mean_similarity=mean,
                min_face_similarity=weakest,
            )
        )
    return tuple(rows)


def _faces(count: int) -> str:
    return f"{count} face" if count == 1 else f"{count} faces"


def _finding_order(f: Finding) -> tuple[object, ...]:
    return (
        FINDING_KINDS.index(f.kind),
        f.person_ids,
        f.asset_ids,
        f.immich_face_ids,
        f.amp_face_ids,
    )
