"""The fixture library and the fake Immich themselves: the truth they encode and the shapes
they answer, checked over raw HTTP (no AMP client) against Immich's SDK types."""

from __future__ import annotations

import io
from collections.abc import Iterator

import httpx
import pytest
from PIL import Image

from tests.immich.conftest import ImmichFactory
from tests.immich.fake_immich import FakeImmich
from tests.immich.fixture_library import FixtureLibrary, preview_size


@pytest.fixture
def raw(immich_factory: ImmichFactory) -> Iterator[tuple[FakeImmich, FakeImmich, httpx.Client]]:
    v24 = immich_factory(flavour="v2.4", library="with_mistakes")
    v32 = immich_factory(flavour="v3.2", library="with_mistakes")
    with httpx.Client(headers={"x-api-key": v24.api_key}, timeout=5) as http:
        yield v24, v32, http


# -- the library -----------------------------------------------------------------------------


def test_clean_library_is_right_everywhere(clean_library: FixtureLibrary) -> None:
    lib = clean_library
    assert len(lib.assets) == 25 and lib.planted == [] and lib.missed_faces == []
    assert len(lib.people) == 8 and all(p.name == p.truth for p in lib.people.values())
    for face in lib.faces.values():
        person = lib.people[face.person_id].name if face.person_id else None
        assert person == face.truth
    solvay = lib.asset_by_relative("_groups/solvay_conference_1927.jpg")
    assert len(lib.faces_of(solvay.id)) == 29
    assert all(f.person_id is None for f in lib.faces_of(solvay.id))


def test_assets_carry_immich_fields(clean_library: FixtureLibrary) -> None:
    asset = clean_library.asset_by_relative("paul_allen/paul_allen3.jpg")
    assert asset.original_path == "/usr/src/app/upload/library/admin/paul_allen/paul_allen3.jpg"
    assert (asset.exif_width, asset.exif_height) == (1970, 2048)
    assert (asset.preview_width, asset.preview_height) == (1440, 1497)
    assert len(asset.checksum) == 28
    ids = [a.id for a in clean_library.assets.values()]
    assert len(set(ids)) == 25  # alex_lacamoire/img1.jpg and rose_leslie/img1.jpg differ


def test_preview_boxes_follow_the_detector(clean_library: FixtureLibrary) -> None:
    assert preview_size(3000, 2171) == (1990, 1440)
    assert preview_size(1126, 661) == (1126, 661)  # never enlarged
    for face in clean_library.faces.values():
        asset = clean_library.assets[face.asset_id]
        width, height = asset.upright_size
        sx, sy = face.image_width / width, face.image_height / height
        expected = (
            face.box_original[0] * sx,
            face.box_original[1] * sy,
            face.box_original[2] * sx,
            face.box_original[3] * sy,
        )
        shifts = [abs(got - want) for got, want in zip(face.box, expected, strict=True)]
        assert all(0.4 <= s <= 2.6 for s in shifts if 0 < s), (face, expected)
        assert 0 <= face.box[0] < face.box[2] <= face.image_width
        assert 0 <= face.box[1] < face.box[3] <= face.image_height


def test_planted_mistakes_are_exactly_the_differences(
    clean_library: FixtureLibrary, mistakes_library: FixtureLibrary
) -> None:
    clean, mixed = clean_library, mistakes_library
    assert [m.kind for m in mixed.planted] == [
        "wrong_person",
        "split_person",
        "missed_face",
        "unnamed_person",
        "same_person_twice",
    ]
    # Faces whose person changed, by what their person is called now.
    changed = {
        fid: mixed.people[f.person_id].name if f.person_id else None
        for fid, f in mixed.faces.items()
        if f.person_id != clean.faces[fid].person_id
    }
    planted_faces = {fid for m in mixed.planted for fid in m.face_ids}
    assert set(changed) <= planted_faces
    rel = {f.id: clean.assets[f.asset_id].relative for f in clean.faces.values()}
    assert sorted((rel[fid], name) for fid, name in changed.items()) == [
        ("_groups/two_people.jpg", "Barack Obama"),
        ("guido_van_rossum/guido_van_rossum3.jpg", "Guido van Rossum"),
        ("guido_van_rossum/guido_van_rossum4.jpg", "Guido van Rossum"),
        ("kit_harington/john2.jpg", "Paul Allen"),
        ("steve_wozniak/steve_wozniak4.jpg", ""),
    ]
    assert set(clean.faces) - set(mixed.faces) == {mixed.missed_faces[0].id}
    missed = next(m for m in mixed.planted if m.kind == "missed_face")
    assert missed.missed_box == mixed.missed_faces[0].box
    assert rel[mixed.missed_faces[0].id] == "_groups/obama_and_biden.jpg"
    assert len(mixed.people_named("Guido van Rossum")) == 2
    # Nothing else moved: every other face keeps its clean person.
    for fid, face in mixed.faces.items():
        if fid not in planted_faces:
            assert face.person_id == clean.faces[fid].person_id


# -- the server ------------------------------------------------------------------------------


def test_auth(raw: tuple[FakeImmich, FakeImmich, httpx.Client]) -> None:
    v24, _, http = raw
    assert httpx.get(v24.api_url + "/server/ping").json() == {"res": "pong"}
    missing = httpx.get(v24.api_url + "/people")
    assert missing.status_code == 401 and missing.json()["message"] == "Authentication required"
    wrong = httpx.get(v24.api_url + "/people", headers={"x-api-key": "nope"})
    assert wrong.json() == {
        "message": "Invalid API key",
        "error": "Unauthorized",
        "statusCode": 401,
    }
    v24.deny("person.read")
    denied = http.get(v24.api_url + "/people")
    assert denied.status_code == 403
    assert denied.json() == {
        "message": "Missing required permission: person.read",
        "error": "Forbidden",
        "statusCode": 403,
    }
    assert all(v24.api_key not in repr(r) for r in v24.requests)


def test_asset_shapes_per_version(raw: tuple[FakeImmich, FakeImmich, httpx.Client]) -> None:
    v24, v32, http = raw
    asset = v24.library.asset_by_relative("_groups/two_people.jpg")
    old = http.get(f"{v24.api_url}/assets/{asset.id}").json()
    assert [len(p["faces"]) for p in old["people"]] == [2]  # both faces on Obama (planted)
    assert "deviceAssetId" in old and "unassignedFaces" in old and "width" not in old
    assert "person" not in old["people"][0]["faces"][0]
    new = http.get(f"{v32.api_url}/assets/{asset.id}").json()
    assert "faces" not in new["people"][0] and "deviceAssetId" not in new
    assert (new["width"], new["height"]) == (1126, 661)
    assert new["exifInfo"]["orientation"] is None


def test_version_specific_routes(raw: tuple[FakeImmich, FakeImmich, httpx.Client]) -> None:
    v24, v32, http = raw
    assert http.get(v24.api_url + "/server/version").json() == {"major": 2, "minor": 4, "patch": 0}
    assert http.get(v32.api_url + "/server/version").json()["prerelease"] is None
    ids = sorted(v24.library.people)[:2]
    gone = http.post(v24.api_url + "/people/merge", json={"ids": ids})
    assert gone.status_code == 404
    assert gone.json()["message"] == "Cannot POST /api/people/merge"


def test_unnamed_people_need_min_faces(raw: tuple[FakeImmich, FakeImmich, httpx.Client]) -> None:
    v24, _, http = raw
    unnamed = next(p for p in v24.library.people.values() if not p.name)
    listed = http.get(v24.api_url + "/people", params={"size": 1000}).json()
    assert unnamed.id not in {p["id"] for p in listed["people"]}
    assert listed["total"] == 9 and listed["hasNextPage"] is False
    assert http.get(f"{v24.api_url}/people/{unnamed.id}").json()["name"] == ""
    v24.min_faces = 1
    listed = http.get(v24.api_url + "/people", params={"size": 1000}).json()
    assert unnamed.id in {p["id"] for p in listed["people"]}


def test_unknown_and_malformed_ids(raw: tuple[FakeImmich, FakeImmich, httpx.Client]) -> None:
    v24, _, http = raw
    unknown = http.get(v24.api_url + "/assets/00000000-0000-4000-8000-000000000000")
    assert unknown.status_code == 400
    assert unknown.json()["message"] == "Not found or no asset.read access"
    bad = http.get(v24.api_url + "/people/not-a-uuid")
    assert bad.status_code == 400 and bad.json()["message"] == ["id must be a UUID"]


def test_upload_validation_per_version(raw: tuple[FakeImmich, FakeImmich, httpx.Client]) -> None:
    v24, v32, http = raw
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "JPEG")
    files = {"assetData": ("x.jpg", buffer.getvalue(), "image/jpeg")}
    data = {"fileCreatedAt": "2024-01-01T00:00:00Z", "fileModifiedAt": "2024-01-01T00:00:00Z"}
    old = http.post(v24.api_url + "/assets", data=data, files=files)
    assert old.status_code == 400
    assert "deviceAssetId should not be empty" in old.json()["message"]
    new = http.post(v32.api_url + "/assets", data=data, files=files)
    assert new.status_code == 201 and new.json()["status"] == "created"


def test_thumbnail_sizes(raw: tuple[FakeImmich, FakeImmich, httpx.Client]) -> None:
    v24, _, http = raw
    asset = v24.library.asset_by_relative("_groups/solvay_conference_1927.jpg")
    for size, expected in [("preview", (1990, 1440)), ("thumbnail", (345, 250))]:
        answer = http.get(f"{v24.api_url}/assets/{asset.id}/thumbnail", params={"size": size})
        with Image.open(io.BytesIO(answer.content)) as image:
            assert image.size == expected


def test_faults_consumed_in_order(raw: tuple[FakeImmich, FakeImmich, httpx.Client]) -> None:
    v24, _, http = raw
    v24.fail_next("/api/people", 503, times=2, retry_after=1)
    first = http.get(v24.api_url + "/people")
    assert first.status_code == 503 and first.headers["retry-after"] == "1"
    assert http.get(v24.api_url + "/people").status_code == 503
    assert http.get(v24.api_url + "/people").status_code == 200
    v24.malformed("/people", method="GET")
    with pytest.raises(ValueError):
        http.get(v24.api_url + "/people").json()
    assert [r.status for r in v24.calls("GET", "/people")] == [503, 503, 200, 200]
