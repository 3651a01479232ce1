"""The HTML report: every finding on the page, user strings escaped, links into Immich."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import numpy as np
import pytest

from engine.immich.crops import crop_face, to_data_uri_jpeg
from engine.immich.findings import (
    FINDING_KINDS,
    AmpFaceIn,
    AssetIn,
    ImmichFaceIn,
    PersonIn,
    ReconcileReport,
    Thresholds,
)
from engine.immich.reconcile import reconcile
from engine.immich.report_html import KIND_LABELS, render_report, required_crops

EVIL = "<script>alert(1)</script>"
URL = "https://photos.example.org/"


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _report() -> ReconcileReport:
    """Small library with one finding of each kind; a person's name is hostile markup."""
    rng = np.random.default_rng(5)
    dim = 128
    centres = {k: _unit(rng.normal(size=dim)) for k in ("A", "B", "C", "X", "Y")}
    z = rng.normal(size=dim)
    z -= (z @ centres["Y"]) * centres["Y"]
    centres["Z"] = 0.45 * centres["Y"] + np.sqrt(1 - 0.45**2) * _unit(z)
    people = [
        PersonIn("pa", "Ann"),
        PersonIn("pb", EVIL),
        PersonIn("pc", 'Cid "the kid" & co'),
        PersonIn("pa2", "Ann again"),
        PersonIn("pu", ""),
        PersonIn("pt", "Twins"),
    ]
    plan = [
        *[(f"a{n}", "A", "pa", True, True) for n in range(3)],
        *[(f"b{n}", "B", "pb", True, True) for n in range(3)],
        *[(f"c{n}", "C", "pc", True, True) for n in range(3)],
        ("c0", "A", "pc", True, True),  # reassign to Ann
        *[(f"d{n}", "A", "pa2", True, True) for n in range(2)],  # merge with Ann
        *[(f"e{n}", "B", "pu", True, True) for n in range(2)],  # unnamed, like pb
        ("b0", "X", "pb", True, True),  # twice in one photo
        *[(f"y{n}", "Y", "pt", True, True) for n in range(3)],  # look-alikes merged
        *[(f"z{n}", "Z", "pt", True, True) for n in range(3)],
        ("a0", "C", None, False, True),  # missed by Immich
        ("a1/../x?y#z", None, None, True, False),  # only in Immich; an id needing escapes
    ]
    slots: dict[str, int] = {}
    assets: dict[str, AssetIn] = {}
    immich, amp = [], []
    for asset_id, who, person, in_immich, in_amp in plan:
        assets.setdefault(asset_id, AssetIn(asset_id, 1200, 400))
        slot = slots.get(asset_id, 0)
        slots[asset_id] = slot + 1
        box = (100.0 + 400 * slot, 80.0, 300.0 + 400 * slot, 320.0)
        if in_immich:
            immich.append(ImmichFaceIn(f"{asset_id}-{slot}", asset_id, person, box))
        if in_amp:
            noise = rng.normal(size=dim)
            noise -= (noise @ centres[who]) * centres[who]
            emb = 0.9 * centres[who] + np.sqrt(1 - 0.81) * _unit(noise)
            amp.append(AmpFaceIn(len(amp) + 1, asset_id, box, emb))
    return reconcile(list(assets.values()), people, immich, amp, Thresholds())


@pytest.fixture(scope="module")
def report() -> ReconcileReport:
    report = _report()
    assert {f.kind for f in report.findings} == set(FINDING_KINDS)
    return report


@pytest.fixture(scope="module")
def page(report: ReconcileReport) -> str:
    grey = np.full((400, 1200, 3), 128, np.uint8)
    crops = {
        key: to_data_uri_jpeg(crop_face(grey, box))
        for key, (_, box) in required_crops(report).items()
    }
    return render_report(report, crops, immich_web_url=URL, title=f"Report {EVIL}")


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.scripts = 0
        self.rows: list[dict[str, str | None]] = []
        self.links: list[str] = []
        self.images = 0
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "script":
            self.scripts += 1
        if tag == "tr" and "data-kind" in attributes:
            self.rows.append(attributes)
        if tag == "a":
            self.links.append(attributes["href"] or "")
        if tag == "img":
            self.images += 1
            assert (attributes["src"] or "").startswith("data:image/jpeg;base64,")

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(page: str) -> _Collector:
    collector = _Collector()
    collector.feed(page)
    collector.close()
    return collector


def test_every_finding_has_a_row(report: ReconcileReport, page: str) -> None:
    parsed = _parse(page)
    assert [r["data-kind"] for r in parsed.rows] == [f.kind for f in report.findings]
    assert parsed.images == sum(len(f.faces) for f in report.findings)
    text = "".join(parsed.text)
    for finding in report.findings:
        assert finding.message in text  # after unescaping, the sentence is intact
    for kind in FINDING_KINDS:
        assert KIND_LABELS[kind] in text


def test_user_strings_are_escaped(page: str) -> None:
    parsed = _parse(page)
    assert parsed.scripts == 1  # only the page's own
    assert EVIL not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "Cid &quot;the kid&quot; &amp; co" in page
    assert EVIL in "".join(parsed.text)  # shown to the reader as text


def test_links_point_into_immich(report: ReconcileReport, page: str) -> None:
    links = set(_parse(page).links)
    assert "https://photos.example.org/photos/a0" in links
    assert "https://photos.example.org/people/pb" in links
    assert "https://photos.example.org/people/pu" in links
    # Ids are percent-encoded as one path segment.
    assert "https://photos.example.org/photos/a1%2F..%2Fx%3Fy%23z" in links
    for link in links:
        assert re.fullmatch(r"https://photos\.example\.org/(photos|people)/[^/?#]+", link), link


def test_missing_crops_show_a_placeholder_and_foreign_uris_are_dropped(
    report: ReconcileReport,
) -> None:
    key = next(iter(required_crops(report)))
    page = render_report(report, {key: "javascript:alert(1)"}, immich_web_url=URL)
    assert "javascript:" not in page
    assert _parse(page).images == 0
    assert "no crop" in page


def test_a_non_http_base_url_is_refused(report: ReconcileReport) -> None:
    with pytest.raises(ValueError, match="http"):
        render_report(report, {}, immich_web_url="javascript:alert(1)//")


def test_required_crops_name_every_face_shown(report: ReconcileReport) -> None:
    needed = required_crops(report)
    for finding in report.findings:
        for face in finding.faces:
            assert needed[face.key] == (face.asset_id, face.box_xyxy)
            assert face.key.split(":", 1)[0] in ("immich", "amp")


def test_an_empty_report_says_so() -> None:
    empty = reconcile([], [], [], [])
    page = render_report(empty, {}, immich_web_url=URL)
    assert "No findings" in page and _parse(page).rows == []


def test_crop_face_is_square_inside_the_image_and_encodes() -> None:
    rgb = np.zeros((100, 200, 3), np.uint8)
    rgb[:, :100] = 255
    crop = crop_face(rgb, (90, 10, 110, 40), size_px=32, margin=0.25)
    assert crop.shape == (32, 32, 3) and crop.dtype == np.uint8
    # A face at the border: the square is shifted inside, not padded.
    corner = crop_face(rgb, (0, 0, 60, 80), size_px=48)
    assert corner.shape == (48, 48, 3) and corner.min() == 255
    grey = crop_face(np.full((50, 50), 7, np.uint8), (10, 10, 20, 20), size_px=16)
    assert grey.shape == (16, 16, 3)
    uri = to_data_uri_jpeg(crop)
    assert uri.startswith("data:image/jpeg;base64,/9j/")
