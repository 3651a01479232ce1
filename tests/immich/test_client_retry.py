"""Retry, backoff and error translation, driven through httpx.MockTransport: no sockets."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import httpx
import pytest

from engine.errors import (
    ImmichAuthError,
    ImmichError,
    ImmichNotFoundError,
    ImmichResponseError,
    ImmichUnavailableError,
    OptionError,
)
from engine.immich.auth import endpoint_permission
from engine.immich.client import ImmichClient, api_root, checksum_base64
from engine.immich.retry import (
    RetryPolicy,
    backoff_delay_s,
    delay_before_retry_s,
    parse_retry_after_s,
)

KEY = "secret-key-7f3a9c1e5b2d4a6f8e0c"

Handler = Callable[[httpx.Request], httpx.Response]


def make_client(handler: Handler, **options: object) -> tuple[ImmichClient, list[float]]:
    slept: list[float] = []
    settings: dict[str, object] = {"max_retries": 3, "backoff_s": 0.5, "sleep": slept.append}
    settings.update(options)
    client = ImmichClient(
        "http://immich.test:2283", KEY, transport=httpx.MockTransport(handler), **settings
    )
    return client, slept


def scripted(*responses: httpx.Response | Exception) -> tuple[Handler, list[httpx.Request]]:
    """A handler answering the given responses in turn (raising the exceptions)."""
    seen: list[httpx.Request] = []
    queue = list(responses)

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        item = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(item, Exception):
            raise item
        return item

    return handle, seen


def ok_person() -> httpx.Response:
    return httpx.Response(200, json={"id": "p1", "name": "Ada", "isHidden": False})


# -- the pure parts --------------------------------------------------------------------------


def test_backoff_is_full_jitter_within_exponential_cap() -> None:
    policy = RetryPolicy(backoff_s=0.5, max_backoff_s=3.0)
    rng = random.Random(1)
    for retry, cap in [(0, 0.5), (1, 1.0), (2, 2.0), (3, 3.0), (8, 3.0)]:
        delays = [backoff_delay_s(retry, policy, rng) for _ in range(200)]
        assert all(0.0 <= d <= cap for d in delays)
        assert max(delays) > cap * 0.8  # spread over the whole range, not a fixed step


def test_retry_after_seconds_and_http_date() -> None:
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
    assert parse_retry_after_s("2", now) == 2.0
    assert parse_retry_after_s("0.25", now) == 0.25
    assert parse_retry_after_s(format_datetime(now + timedelta(seconds=7), usegmt=True), now) == 7
    assert parse_retry_after_s(format_datetime(now - timedelta(seconds=7), usegmt=True), now) == 0
    assert parse_retry_after_s("soon", now) is None
    assert parse_retry_after_s(None, now) is None
    policy = RetryPolicy(max_retry_after_s=10.0)
    assert delay_before_retry_s(0, policy, random.Random(0), retry_after="3600") == 10.0


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://h:2283", "http://h:2283/api"),
        ("http://h:2283/", "http://h:2283/api"),
        ("http://h:2283/api", "http://h:2283/api"),
        ("http://h:2283/api/", "http://h:2283/api"),
        (" https://photos.example.org/immich ", "https://photos.example.org/immich/api"),
    ],
)
def test_base_url_is_normalised_to_api(given: str, expected: str) -> None:
    assert api_root(given) == expected


def test_base_url_must_be_http() -> None:
    with pytest.raises(OptionError):
        api_root("immich.local:2283")


def test_checksums_hex_and_base64() -> None:
    hex_sum = "a9993e364706816aba3e25717850c26c9cd0d89d"
    assert checksum_base64(hex_sum) == "qZk+NkcGgWq6PiVxeFDCbJzQ2J0="
    assert checksum_base64("qZk+NkcGgWq6PiVxeFDCbJzQ2J0=") == "qZk+NkcGgWq6PiVxeFDCbJzQ2J0="
    with pytest.raises(OptionError):
        checksum_base64("not a checksum")


def test_permission_table() -> None:
    assert endpoint_permission("GET", "/people").permission == "person.read"  # type: ignore[union-attr]
    assert endpoint_permission("PUT", "/faces/abc").permission == "face.update"  # type: ignore[union-attr]
    assert endpoint_permission("POST", "/people/merge").permission == "person.merge"  # type: ignore[union-attr]
    assert endpoint_permission("POST", "/assets/jobs").permission == "job.create"  # type: ignore[union-attr]
    assert endpoint_permission("GET", "/assets/x/original").permission == "asset.download"  # type: ignore[union-attr]
    assert endpoint_permission("DELETE", "/people") is None


# -- retries ---------------------------------------------------------------------------------


def test_key_sent_in_header_only() -> None:
    handler, seen = scripted(ok_person())
    client, _ = make_client(handler)
    client.person("p1")
    assert seen[0].headers["x-api-key"] == KEY
    assert KEY not in str(seen[0].url)
    assert seen[0].url.path == "/api/people/p1"


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_retried_then_success(status: int) -> None:
    handler, seen = scripted(httpx.Response(status), httpx.Response(status), ok_person())
    client, slept = make_client(handler)
    assert client.person("p1").name == "Ada"
    assert len(seen) == 3 and len(slept) == 2
    assert 0 <= slept[0] <= 0.5 and 0 <= slept[1] <= 1.0


def test_429_waits_retry_after_exactly() -> None:
    handler, seen = scripted(httpx.Response(429, headers={"Retry-After": "2"}), ok_person())
    client, slept = make_client(handler)
    client.person("p1")
    assert slept == [2.0]


def test_429_retry_after_is_capped() -> None:
    handler, _ = scripted(httpx.Response(429, headers={"Retry-After": "86400"}), ok_person())
    client, slept = make_client(handler, max_retry_after_s=5.0)
    client.person("p1")
    assert slept == [5.0]


def test_5xx_forever_gives_unavailable_after_max_retries() -> None:
    handler, seen = scripted(httpx.Response(503, json={"message": "down for maintenance"}))
    client, slept = make_client(handler, max_retries=3)
    with pytest.raises(ImmichUnavailableError) as caught:
        client.person("p1")
    assert len(seen) == 4 and len(slept) == 3
    error = caught.value
    assert (error.method, error.path, error.status) == ("GET", "/people/p1", 503)
    assert "4 attempts" in str(error) and "down for maintenance" in str(error)


@pytest.mark.parametrize("status", [400, 404, 409, 422])
def test_other_4xx_not_retried(status: int) -> None:
    handler, seen = scripted(httpx.Response(status, json={"message": "nope"}))
    client, slept = make_client(handler)
    with pytest.raises(ImmichError):
        client.person("p1")
    assert len(seen) == 1 and slept == []


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ConnectError("[Errno 111] Connection refused"),
        httpx.ReadTimeout("timed out"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
    ],
)
def test_transport_errors_retried(exc: Exception) -> None:
    handler, seen = scripted(exc, ok_person())
    client, slept = make_client(handler)
    assert client.person("p1").name == "Ada"
    assert len(seen) == 2 and len(slept) == 1


def test_connect_error_names_the_url() -> None:
    handler, seen = scripted(httpx.ConnectError("[Errno 111] Connection refused"))
    client, _ = make_client(handler, max_retries=1)
    with pytest.raises(
        ImmichUnavailableError, match=r"cannot reach Immich at http://immich.test:2283/api"
    ) as caught:
        client.version()
    assert "is the server running" in str(caught.value)
    assert len(seen) == 2


# -- translation -----------------------------------------------------------------------------


def test_401_explains_the_key() -> None:
    handler, _ = scripted(httpx.Response(401, json={"message": "Invalid API key"}))
    client, _ = make_client(handler)
    with pytest.raises(ImmichAuthError, match=r"rejected the API key \(401\).*API Keys") as caught:
        client.person("p1")
    assert caught.value.status == 401


def test_403_names_permission_from_server_message() -> None:
    body = {"message": "Missing required permission: face.read", "error": "Forbidden"}
    handler, _ = scripted(httpx.Response(403, json=body))
    client, _ = make_client(handler)
    with pytest.raises(ImmichAuthError, match=r"'face.read' permission"):
        client.faces("a1")


def test_403_without_message_names_permission_from_table() -> None:
    handler, _ = scripted(httpx.Response(403, text="Forbidden"))
    client, _ = make_client(handler)
    with pytest.raises(ImmichAuthError, match=r"'person.merge' permission"):
        client._http.call_json("POST", "/people/p1/merge", json_body={"ids": ["p2"]})  # noqa: SLF001


def test_400_not_found_or_no_access_is_not_found() -> None:
    body = {"message": "Not found or no asset.read access", "statusCode": 400}
    handler, _ = scripted(httpx.Response(400, json=body))
    client, _ = make_client(handler)
    with pytest.raises(ImmichNotFoundError, match="asset.read"):
        client.asset("a1")


def test_malformed_json_is_response_error() -> None:
    handler, _ = scripted(httpx.Response(200, text="<html>login</html>"))
    client, _ = make_client(handler)
    with pytest.raises(ImmichResponseError, match="invalid JSON.*login"):
        client.person("p1")


def test_wrong_shape_is_response_error() -> None:
    handler, _ = scripted(httpx.Response(200, json={"people": "not a list", "total": 1}))
    client, _ = make_client(handler)
    with pytest.raises(ImmichResponseError, match="PeoplePage"):
        list(client.iter_people())


def test_people_paging_without_has_next_page_stops_on_short_page() -> None:
    pages = {
        "1": [{"id": "a", "name": "A"}, {"id": "b", "name": "B"}],
        "2": [{"id": "c", "name": "C"}],
    }

    def handle(request: httpx.Request) -> httpx.Response:
        people = pages[request.url.params["page"]]
        return httpx.Response(200, json={"people": people, "total": 3, "hidden": 0})

    client, _ = make_client(handle)
    assert [p.id for p in client.iter_people(page_size=2)] == ["a", "b", "c"]


def test_search_repeating_token_raises() -> None:
    page = {"items": [{"id": "a", "checksum": "x"}], "total": 1, "count": 1, "nextPage": "2"}
    handler, _ = scripted(httpx.Response(200, json={"assets": page}))
    client, _ = make_client(handler)
    with pytest.raises(ImmichResponseError, match="repeated"):
        list(client.iter_assets(page_size=1))


def test_key_never_in_errors_logs_or_repr(caplog: pytest.LogCaptureFixture) -> None:
    # A hostile proxy echoing the key back in every body must not leak it either.
    echo = {"message": f"bad key {KEY}", "error": "x"}
    responses: list[httpx.Response | Exception] = [
        httpx.Response(401, json=echo),
        httpx.Response(403, json=echo),
        httpx.Response(404, json=echo),
        httpx.Response(400, json=echo),
        httpx.Response(200, text=f"not json {KEY}"),
        httpx.Response(200, json={"people": KEY}),
        httpx.ConnectError(f"refused {KEY}"),
        httpx.ReadTimeout(f"slow {KEY}"),
        httpx.Response(500, json=echo),
    ]
    texts: list[str] = []
    caplog.set_level(logging.DEBUG)
    for response in responses:
        handler, _ = scripted(response)
        client, _ = make_client(handler, max_retries=1)
        texts.append(repr(client))
        with pytest.raises(ImmichError) as caught:
            list(client.iter_people())
        texts += [str(caught.value), repr(caught.value)]
        cause = caught.value.__cause__
        if cause is not None and not isinstance(cause, httpx.TransportError):
            texts.append(str(cause))
        client.close()
    texts += [record.getMessage() for record in caplog.records]
    assert texts and not [t for t in texts if KEY in t]
    assert any("retry 1 of 1" in r.getMessage() for r in caplog.records)


def test_empty_key_refused_without_echo() -> None:
    from engine.errors import ImmichAuthError as AuthError

    with pytest.raises(AuthError, match="no Immich API key"):
        ImmichClient("http://h", "  ")
    with pytest.raises(AuthError) as caught:
        ImmichClient("http://h", "abc\ndef")
    assert "abc" not in str(caught.value)
