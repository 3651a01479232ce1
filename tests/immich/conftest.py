"""Fixtures for the Immich tests: the fixture library and a real fake Immich over HTTP.

- `clean_library` / `mistakes_library`: fresh, mutable FixtureLibrary copies (the face
  detector behind them runs once per session).
- `immich_factory(flavour=..., library=..., **options)`: starts a FakeImmich on 127.0.0.1
  (random port), stopped after the test.
- `fake_immich`: a started server on the clean library, once per flavour (v2.4 and v3.2).
- `immich_client`: an ImmichClient on `fake_immich` with tiny retry delays.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from engine.immich.client import ImmichClient
from tests.immich.fake_immich import FakeImmich, Flavour
from tests.immich.fixture_library import FixtureLibrary, LibraryKind, build_library

FLAVOURS: tuple[Flavour, ...] = ("v2.4", "v3.2")

ImmichFactory = Callable[..., FakeImmich]
ClientFactory = Callable[..., ImmichClient]


@pytest.fixture(scope="session")
def _library_built() -> None:
    build_library("clean")  # runs the detector once, before any timing-sensitive test


@pytest.fixture
def clean_library(_library_built: None) -> FixtureLibrary:
    return build_library("clean")


@pytest.fixture
def mistakes_library(_library_built: None) -> FixtureLibrary:
    return build_library("with_mistakes")


@pytest.fixture
def immich_factory(_library_built: None) -> Iterator[ImmichFactory]:
    started: list[FakeImmich] = []

    def start(
        flavour: Flavour = "v3.2",
        library: FixtureLibrary | LibraryKind = "clean",
        **options: Any,
    ) -> FakeImmich:
        lib = build_library(library) if isinstance(library, str) else library
        server = FakeImmich(lib, flavour=flavour, **options).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(params=FLAVOURS)
def fake_immich(request: pytest.FixtureRequest, immich_factory: ImmichFactory) -> FakeImmich:
    return immich_factory(flavour=request.param)


@pytest.fixture
def client_factory() -> Iterator[ClientFactory]:
    """Clients with test-sized delays (backoff 10 ms, timeout 5 s) unless overridden."""
    made: list[ImmichClient] = []

    def make(server: FakeImmich | str, api_key: str | None = None, **options: Any) -> ImmichClient:
        url = server if isinstance(server, str) else server.url
        key = api_key if api_key is not None else getattr(server, "api_key", "unused-key")
        settings: dict[str, Any] = {"timeout_s": 5.0, "backoff_s": 0.01, "max_retries": 3}
        settings.update(options)
        client = ImmichClient(url, key, **settings)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def immich_client(fake_immich: FakeImmich, client_factory: ClientFactory) -> ImmichClient:
    return client_factory(fake_immich)
