"""ImmichClient against the fake Immich over real HTTP, in both flavours (v2.4 and v3.2)."""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from engine.errors import (
    ImmichAuthError,
    ImmichError,
    ImmichNotFoundError,
    ImmichResponseError,
    ImmichUnavailableError,
)
from engine.immich.client import ImmichClient
from tests.immich.conftest import ClientFactory, ImmichFactory
from tests.immich.fake_immich import FakeImmich
from tests.immich.fixture_library import FACES_DIR

UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"


def _named(server: FakeImmich, name: str) -> str:
    return server.library.person_named(name).id


# -- reading -------------------------------------------------------------------------------


def test_version_detected_once(fake_immich: FakeImmich, immich_client: ImmichClient) -> None:
    expected = {"v2.4": (2, 4, 0), "v3.2": (3, 2, 2)}[fake_immich.flavour]
    version = immich_client.version()
    assert (version.major, version.minor, version.patch) == expected
    immich_client.version()
    assert fake_immich.count("GET", "/server/version") == 1
    assert immich_client.ping()


@pytest.mark.parametrize("suffix", ["", "/", "/api", "/api/"])
def test_base_url_with_or_without_api(
    immich_factory: ImmichFactory, client_factory: ClientFactory, suffix: str
) -> None:
    server = immich_factory()
    client = client_factory(server.url + suffix, server.api_key)
    assert client.base_url == server.api_url
    assert client.person(_named(server, "Rose Leslie")).name == "Rose Leslie"


def test_people_paginated(fake_immich: FakeImmich, immich_client: ImmichClient) -> None:
    people = list(immich_client.iter_people(page_size=3))
    names = sorted(p.name for p in people)
    assert names == sorted(p.name for p in fake_immich.library.people.values())
    assert len(names) == 8
    pages = fake_immich.calls("GET", "/people")
    assert [r.query["page"] for r in pages] == ["1", "2", "3"]
    assert all(r.query["size"] == "3" for r in pages)


def test_hidden_people(fake_immich: FakeImmich, immich_client: ImmichClient) -> None:
    hidden = immich_client.update_person(_named(fake_immich, "Paul Allen"), is_hidden=True)
    assert hidden.is_hidden
    assert "Paul Allen" in {p.name for p in immich_client.iter_people(with_hidden=True)}
    assert "Paul Allen" not in {p.name for p in immich_client.iter_people(with_hidden=False)}


def test_search_paginated_page_or_cursor(
    fake_immich: FakeImmich, immich_client: ImmichClient
) -> None:
    assets = list(immich_client.iter_assets(page_size=4))
    assert sorted(a.id for a in assets) == sorted(fake_immich.library.assets)
    calls = fake_immich.calls("POST", "/search/metadata")
    assert len(calls) == 7  # 25 assets, 4 a page
    later = [c.json for c in calls[1:]]
    if fake_immich.flavour == "v3.2":
        assert all("cursor" in body and "page" not in body for body in later)
    else:
        assert [body["page"] for body in later] == [2, 3, 4, 5, 6, 7]
    assert all(a.exif_info is not None for a in assets)


def test_asset_and_faces_match_fixture(
    fake_immich: FakeImmich, immich_client: ImmichClient
) -> None:
    lib = fake_immich.library
    fixture = lib.asset_by_relative("_groups/obama_and_biden.jpg")
    asset = immich_client.asset(fixture.id)
    assert asset.checksum == fixture.checksum
    assert asset.original_path == f"/usr/src/app/upload/library/admin/{fixture.relative}"
    assert asset.exif_info is not None
    assert (asset.exif_info.exif_image_width, asset.exif_info.exif_image_height) == (2000, 1428)
    faces = immich_client.faces(fixture.id)
    expected = sorted(lib.faces_of(fixture.id), key=lambda f: f.box[0])
    assert [f.id for f in faces] == [f.id for f in expected]
    for got, want in zip(faces, expected, strict=True):
        assert got.box_xyxy == tuple(float(v) for v in want.box)
        assert (got.image_width, got.image_height) == (want.image_width, want.image_height)
        assert (got.person.id if got.person else None) == want.person_id
    assert [f.person.name if f.person else None for f in faces] == [
        "Joe Biden",
        "Barack Obama",
        None,
    ]


def test_person_assets_and_checksum(fake_immich: FakeImmich, immich_client: ImmichClient) -> None:
    obama = _named(fake_immich, "Barack Obama")
    assets = immich_client.search_person_assets(obama, limit=10)
    names = sorted(a.original_file_name for a in assets)
    assert names == sorted(
        ["obama.jpg", "obama1.jpg", "obama2.jpg", "two_people.jpg", "obama_and_biden.jpg"]
    )
    assert len(immich_client.search_person_assets(obama, limit=2)) == 2
    assert immich_client.person_asset_count(obama) == 5

    data = (FACES_DIR / "joe_biden" / "biden.jpg").read_bytes()
    by_hex = immich_client.find_by_checksum(hashlib.sha1(data).hexdigest())
    by_b64 = immich_client.find_by_checksum(base64.b64encode(hashlib.sha1(data).digest()).decode())
    assert by_hex is not None and by_b64 is not None and by_hex.id == by_b64.id
    assert by_hex.original_file_name == "biden.jpg"
    assert immich_client.find_by_checksum(hashlib.sha1(b"nothing").hexdigest()) is None


def test_job_counts(fake_immich: FakeImmich, immich_client: ImmichClient) -> None:
    fake_immich.set_queue("faceDetection", active=2, waiting=5)
    counts = immich_client.job_counts()
    assert counts["faceDetection"]["active"] == 2
    assert counts["faceDetection"]["waiting"] == 5
    assert counts["faceDetection"]["is_active"] is True
    assert counts["facialRecognition"]["waiting"] == 0


def test_preview_has_preview_size(fake_immich: FakeImmich, immich_client: ImmichClient) -> None:
    fixture = fake_immich.library.asset_by_relative("steve_wozniak/steve_wozniak4.jpg")
    with Image.open(io.BytesIO(immich_client.preview(fixture.id))) as image:
        assert image.size == (fixture.preview_width, fixture.preview_height) == (1920, 1440)


def test_map_concurrent_keeps_order(fake_immich: FakeImmich, client_factory: ClientFactory) -> None:
    client = client_factory(fake_immich, max_concurrency=4)
    ids = sorted(fake_immich.library.assets)
    fake_immich.slow("/faces", 0.05)
    started = time.monotonic()
    faces = client.map_concurrent(client.faces, ids)
    elapsed = time.monotonic() - started
    assert [len(f) for f in faces] == [len(fake_immich.library.faces_of(i)) for i in ids]
    assert elapsed < 0.05 * len(ids)  # one after another could not be this fast


# -- mutations -----------------------------------------------------------------------------


def test_rename(fake_immich: FakeImmich, immich_client: ImmichClient) -> None:
    person_id = _named(fake_immich, "Rose Leslie")
    assert immich_client.rename_person(person_id, "Rose Leslie-Harington").name == (
        "Rose Leslie-Harington"
    )
    assert fake_immich.library.people[person_id].name == "Rose Leslie-Harington"


def test_merge_split_person(immich_factory: ImmichFactory, client_factory: ClientFactory) -> None:
    for flavour, route in [("v2.4", "/people/{}/merge"), ("v3.2", "/people/merge")]:
        server = immich_factory(flavour=flavour, library="with_mistakes")
        client = client_factory(server)
        first, second = sorted(p.id for p in server.library.people_named("Guido van Rossum"))
        results = client.merge_people(first, [second])
        assert [(r.id, r.success) for r in results] == [(second, True)]
        assert server.count("POST", route.format(first) if "{}" in route else route) == 1
        assert second not in server.library.people
        assert len(server.library.faces_of_person(first)) == 4
        missing = client.merge_people(first, [UNKNOWN_ID])
        assert [(r.id, r.success, r.error) for r in missing] == [(UNKNOWN_ID, False, "not_found")]


def test_merge_into_unnamed_takes_name(
    immich_factory: ImmichFactory, client_factory: ClientFactory
) -> None:
    server = immich_factory(flavour="v3.2", library="with_mistakes")
    client = client_factory(server)
    unnamed = next(p for p in server.library.people.values() if not p.name)
    woz = _named(server, "Steve Wozniak")
    client.merge_people(unnamed.id, [woz])
    assert server.library.people[unnamed.id].name == "Steve Wozniak"
    assert server.count("POST", "/people/merge") == 1
    body = server.calls("POST", "/people/merge")[0].json
    assert body == {"ids": [unnamed.id, woz]}


def test_reassign_face(immich_factory: ImmichFactory, client_factory: ClientFactory) -> None:
    server = immich_factory(flavour="v2.4", library="with_mistakes")
    client = client_factory(server)
    planted = next(m for m in server.library.planted if m.kind == "wrong_person")
    kit = _named(server, "Kit Harington")
    target = client.reassign_face(planted.face_ids[0], kit)
    assert target.id == kit and target.name == "Kit Harington"
    assert server.library.faces[planted.face_ids[0]].person_id == kit
    call = server.calls("PUT", "/faces")[0]
    assert call.api_path == f"/faces/{kit}" and call.json == {"id": planted.face_ids[0]}


def test_refresh_faces_queues_job(fake_immich: FakeImmich, immich_client: ImmichClient) -> None:
    ids = sorted(fake_immich.library.assets)[:2]
    immich_client.refresh_faces(ids)
    assert fake_immich.asset_jobs == [("refresh-faces", ids)]


def test_create_face(fake_immich: FakeImmich, immich_client: ImmichClient) -> None:
    fixture = fake_immich.library.asset_by_relative("_groups/two_people.jpg")
    person = _named(fake_immich, "Joe Biden")
    immich_client.create_face(fixture.id, person, (10, 20, 30, 40), (1126, 661))
    faces = immich_client.faces(fixture.id)
    manual = [f for f in faces if f.source_type == "manual"]
    assert len(manual) == 1 and manual[0].box_xyxy == (10, 20, 40, 60)


@pytest.mark.parametrize("flavour", ["v2.4", "v3.2"])
def test_upload_fields_per_version(
    immich_factory: ImmichFactory, client_factory: ClientFactory, tmp_path: Path, flavour: str
) -> None:
    server = immich_factory(flavour=flavour)
    client = client_factory(server)
    photo = tmp_path / "new photo.jpg"
    Image.new("RGB", (64, 48), (200, 30, 30)).save(photo)
    created = client.upload(photo)
    assert created.status == "created"
    call = server.calls("POST", "/assets")[0]
    assert call.files == {"assetData": photo.stat().st_size}
    assert call.checksum_header == hashlib.sha1(photo.read_bytes()).hexdigest()
    assert {"fileCreatedAt", "fileModifiedAt", "filename"} <= set(call.form)
    if flavour == "v2.4":
        assert call.form["deviceId"] == "amp"
        assert call.form["deviceAssetId"] == f"newphoto.jpg-{photo.stat().st_size}"
    else:
        assert "deviceId" not in call.form and "deviceAssetId" not in call.form
    assert client.asset(created.id).original_file_name == "new photo.jpg"
    again = client.upload(photo)
    assert (again.id, again.status) == (created.id, "duplicate")
    existing = client.upload(FACES_DIR / "rose_leslie" / "img2.jpg")
    assert existing.status == "duplicate"


def test_download_original_atomic(
    fake_immich: FakeImmich, immich_client: ImmichClient, tmp_path: Path
) -> None:
    fixture = fake_immich.library.asset_by_relative("paul_allen/paul_allen3.jpg")
    dest = tmp_path / "out" / "paul.jpg"
    assert immich_client.download_original(fixture.id, dest, expected_checksum=fixture.checksum)
    assert dest.read_bytes() == (FACES_DIR / fixture.relative).read_bytes()
    assert sorted(p.name for p in dest.parent.iterdir()) == ["paul.jpg"]

    other = fake_immich.library.asset_by_relative("rose_leslie/img1.jpg")
    with pytest.raises(ImmichResponseError, match="SHA-1"):
        immich_client.download_original(other.id, dest, expected_checksum=fixture.sha1_hex)
    assert dest.read_bytes() == (FACES_DIR / fixture.relative).read_bytes()
    assert sorted(p.name for p in dest.parent.iterdir()) == ["paul.jpg"]


# -- failures --------------------------------------------------------------------------------


def test_wrong_key_401(fake_immich: FakeImmich, client_factory: ClientFactory) -> None:
    client = client_factory(fake_immich, api_key="wrong-key")
    with pytest.raises(ImmichAuthError, match=r"401.*API Keys") as caught:
        list(client.iter_people())
    assert caught.value.status == 401
    assert fake_immich.count("GET", "/people") == 1


FIRST = "00000000-0000-4000-8000-000000000001"
FORBIDDEN_CALLS: list[tuple[str, Callable[[ImmichClient, str, Path], object]]] = [
    ("person.read", lambda c, asset, tmp: list(c.iter_people())),
    ("face.read", lambda c, asset, tmp: c.faces(asset)),
    ("asset.download", lambda c, asset, tmp: c.download_original(asset, tmp / "x.jpg")),
    ("person.merge", lambda c, asset, tmp: c.merge_people(UNKNOWN_ID, [FIRST])),
    ("face.update", lambda c, asset, tmp: c.reassign_face(UNKNOWN_ID, FIRST)),
]


@pytest.mark.parametrize(("permission", "call"), FORBIDDEN_CALLS)
def test_forbidden_names_permission(
    fake_immich: FakeImmich,
    immich_client: ImmichClient,
    tmp_path: Path,
    permission: str,
    call: Callable[[ImmichClient, str, Path], object],
) -> None:
    fake_immich.deny(permission)
    asset_id = sorted(fake_immich.library.assets)[0]
    with pytest.raises(ImmichAuthError, match=rf"'{permission}' permission") as caught:
        call(immich_client, asset_id, tmp_path)
    assert caught.value.status == 403
    assert fake_immich.count() == (2 if permission == "person.merge" else 1)  # + version
    assert list(tmp_path.iterdir()) == []


def test_jobs_need_admin(immich_factory: ImmichFactory, client_factory: ClientFactory) -> None:
    server = immich_factory(admin=False)
    with pytest.raises(ImmichAuthError, match="admin"):
        client_factory(server).job_counts()


def test_not_found(fake_immich: FakeImmich, immich_client: ImmichClient) -> None:
    with pytest.raises(ImmichNotFoundError):
        immich_client.asset(UNKNOWN_ID)  # Immich: 400 "Not found or no asset.read access"
    asset_id = sorted(fake_immich.library.assets)[0]
    fake_immich.not_found("/assets/")
    with pytest.raises(ImmichNotFoundError) as caught:
        immich_client.asset(asset_id)
    assert caught.value.status == 404
    assert fake_immich.count("GET", "/assets/") == 2  # neither retried


def test_400_not_retried(fake_immich: FakeImmich, immich_client: ImmichClient) -> None:
    fake_immich.fail_next("/people", 400, message="bad request")
    with pytest.raises(ImmichResponseError, match="bad request") as caught:
        list(immich_client.iter_people())
    assert caught.value.status == 400
    assert fake_immich.count("GET", "/people") == 1


def test_429_honours_retry_after(fake_immich: FakeImmich, immich_client: ImmichClient) -> None:
    fake_immich.fail_next("/people", 429, times=1, retry_after=0.3)
    started = time.monotonic()
    assert len(list(immich_client.iter_people())) == 8
    assert time.monotonic() - started >= 0.3
    assert fake_immich.count("GET", "/people") == 2


def test_500_twice_then_success(fake_immich: FakeImmich, immich_client: ImmichClient) -> None:
    fake_immich.fail_next("/faces", 500, times=2)
    asset_id = fake_immich.library.asset_by_relative("_groups/two_people.jpg").id
    assert len(immich_client.faces(asset_id)) == 2
    assert fake_immich.count("GET", "/faces") == 3


def test_500_forever_gives_up_in_bounded_time(
    fake_immich: FakeImmich, client_factory: ClientFactory
) -> None:
    client = client_factory(fake_immich, max_retries=3, backoff_s=0.05)
    fake_immich.fail_next("/people", 500, times=None)
    started = time.monotonic()
    with pytest.raises(ImmichUnavailableError, match="4 attempts") as caught:
        list(client.iter_people())
    assert time.monotonic() - started < 0.05 * (1 + 2 + 4) + 1.0
    assert caught.value.status == 500 and caught.value.path == "/people"
    assert fake_immich.count("GET", "/people") == 4


def test_disconnect_retried(fake_immich: FakeImmich, immich_client: ImmichClient) -> None:
    fake_immich.disconnect("/people", times=1)
    assert len(list(immich_client.iter_people())) == 8
    assert fake_immich.count("GET", "/people") == 2


def test_connection_refused_names_url(client_factory: ClientFactory) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = client_factory(f"http://127.0.0.1:{port}", "some-key", max_retries=1)
    with pytest.raises(ImmichUnavailableError) as caught:
        client.version()
    message = str(caught.value)
    assert f"cannot reach Immich at http://127.0.0.1:{port}/api" in message
    assert "is the server running and the URL right?" in message


def test_slow_answer_times_out(fake_immich: FakeImmich, client_factory: ClientFactory) -> None:
    client = client_factory(fake_immich, timeout_s=0.2, max_retries=1)
    fake_immich.slow("/people", 1.0)
    with pytest.raises(ImmichUnavailableError, match=r"did not answer within 0.2 s \(2 attempts\)"):
        list(client.iter_people())
    assert fake_immich.count("GET", "/people") == 2


def test_slow_once_then_fine(fake_immich: FakeImmich, client_factory: ClientFactory) -> None:
    client = client_factory(fake_immich, timeout_s=0.3, max_retries=2)
    fake_immich.slow("/people", 0.6, times=1)
    assert len(list(client.iter_people())) == 8


def test_malformed_json(fake_immich: FakeImmich, immich_client: ImmichClient) -> None:
    fake_immich.malformed("/people")
    with pytest.raises(ImmichResponseError, match="invalid JSON"):
        list(immich_client.iter_people())
    assert fake_immich.count("GET", "/people") == 1


def test_key_never_leaks(
    fake_immich: FakeImmich, client_factory: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    key = fake_immich.api_key
    client = client_factory(fake_immich, timeout_s=0.2, max_retries=1)
    texts = [repr(client), str(client.__dict__)]
    faults = [
        lambda: fake_immich.fail_next("/people", 500, times=None),
        lambda: fake_immich.fail_next("/people", 429, times=None, retry_after=0),
        lambda: fake_immich.slow("/people", 0.5),
        lambda: fake_immich.malformed("/people", times=None),
        lambda: fake_immich.deny("person.read"),
        lambda: fake_immich.fail_next("/people", 401, times=None, message=f"bad {key}"),
    ]
    for fault in faults:
        fake_immich.clear_faults()
        fake_immich.allow("person.read")
        fault()
        with pytest.raises(ImmichError) as caught:
            list(client.iter_people())
        texts += [str(caught.value), repr(caught.value), repr(caught.value.__cause__)]
    texts += [r.getMessage() for r in caplog.records]
    texts += [repr(r) for r in fake_immich.requests]
    assert not [t for t in texts if key in t]


def test_map_concurrent_raises_first_error(
    fake_immich: FakeImmich, immich_client: ImmichClient
) -> None:
    ids = sorted(fake_immich.library.assets)[:5] + [UNKNOWN_ID]
    with pytest.raises(ImmichNotFoundError):
        immich_client.map_concurrent(immich_client.faces, ids)


def test_oldest_supported_server(
    immich_factory: ImmichFactory, client_factory: ClientFactory, tmp_path: Path
) -> None:
    server = immich_factory(flavour="v1.118", library="with_mistakes")
    client = client_factory(server)
    assert str(client.version()) == "1.118.0"
    assert len(list(client.iter_people(page_size=4))) == 9
    assert len(list(client.iter_assets(page_size=10))) == 25
    first, second = sorted(p.id for p in server.library.people_named("Guido van Rossum"))
    assert [r.success for r in client.merge_people(first, [second])] == [True]
    assert server.count("POST", f"/people/{first}/merge") == 1
    photo = tmp_path / "p.jpg"
    Image.new("RGB", (32, 32)).save(photo)
    assert client.upload(photo).status == "created"
    assert "deviceAssetId" in server.calls("POST", "/assets")[0].form
    assert "faceDetection" in client.job_counts()
