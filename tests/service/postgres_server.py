"""A throwaway PostgreSQL server for the queue tests: a real server, not a mock.

`PostgresServer.start()` runs `initdb` into a fresh temporary directory and `pg_ctl start`
on 127.0.0.1 (a free port) and a unix socket in that directory, never on any other address;
`stop()` stops it and removes the directory. Durability is switched off (`fsync=off`): the
tests prove atomicity and isolation between clients, not surviving a power cut.

PostgreSQL refuses to run as root (initdb and postgres both check), and CI runs as root: as
root the server's commands run as the `postgres` user the Debian package creates (or
`nobody`), through `subprocess`'s `user=`/`group=` (no sudo, runuser or su needed), in a
directory under /tmp that user owns. As anyone else they run as that user.

The server binaries are found from `AMP_TEST_PG_BINDIR`, else `initdb` on PATH, else the
newest `/usr/lib/postgresql/<version>/bin` (Debian's `postgresql-15` package). If no server
can be started the fixture fails with the reason and the server's log: it never skips, so a
CI without PostgreSQL cannot pass silently.
"""

from __future__ import annotations

import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

SUPERUSER = "amp_test"
_START_TIMEOUT_S = 60


def find_bindir() -> Path:
    """The directory holding initdb, pg_ctl and postgres."""
    configured = os.environ.get("AMP_TEST_PG_BINDIR")
    if configured:
        return Path(configured)
    initdb = shutil.which("initdb")
    if initdb is not None:
        return Path(initdb).resolve().parent
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if not versions:
        raise RuntimeError(
            "no PostgreSQL server binaries: install the Debian package postgresql-15 "
            "(apt-get install postgresql-15), or point AMP_TEST_PG_BINDIR at a directory "
            "holding initdb, pg_ctl and postgres"
        )
    return versions[-1].parent


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PostgresServer:
    root: Path  # the temporary directory: data/, the socket, the log
    bindir: Path
    port: int
    password: str
    run_as: dict[str, Any]  # subprocess's user/group when running as root, else nothing

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    def dsn(self, dbname: str = "postgres", **options: str) -> str:
        """A key=value DSN over TCP on loopback, as a worker on another machine would use."""
        parts = {
            "host": "127.0.0.1",
            "port": str(self.port),
            "user": SUPERUSER,
            "password": self.password,
            "dbname": dbname,
            **options,
        }
        return " ".join(f"{key}='{value}'" for key, value in parts.items())

    @classmethod
    def start(cls) -> PostgresServer:
        bindir = find_bindir()
        run_as: dict[str, Any] = {}
        if os.geteuid() == 0:
            try:
                account = pwd.getpwnam("postgres")
            except KeyError:
                account = pwd.getpwnam("nobody")
            run_as = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
        # /tmp, not $TMPDIR: the server's user must reach it, and a unix socket's path
        # must stay under about 100 bytes.
        root = Path(
            tempfile.mkdtemp(prefix="amp-pg-", dir="/tmp" if Path("/tmp").is_dir() else None)
        )
        if run_as:
            os.chown(root, run_as["user"], run_as["group"])
        server = cls(root, bindir, 0, secrets.token_hex(16), run_as)
        try:
            server._initdb()
            server._start_listening()
        except BaseException:
            server.stop()
            raise
        return server

    def _run(self, *args: str) -> None:
        result = subprocess.run(
            args,
            cwd=self.root,
            env={**os.environ, "LC_ALL": "C", "HOME": str(self.root), "PGTZ": "UTC"},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=_START_TIMEOUT_S,
            check=False,
            **self.run_as,
        )
        if result.returncode != 0:
            log = self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""
            raise RuntimeError(
                f"{Path(args[0]).name} failed (exit {result.returncode}):\n"
                f"{result.stdout[-4000:]}\n{log}"
            )

    def _initdb(self) -> None:
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self.run_as:
            os.chown(pwfile, self.run_as["user"], self.run_as["group"])
        self._run(
            str(self.bindir / "initdb"),
            "--pgdata",
            str(self.data),
            "--username",
            SUPERUSER,
            "--pwfile",
            str(pwfile),
            # The unix socket (in this private directory) trusts its owner; TCP, password.
            "--auth-local",
            "trust",
            "--auth-host",
            "scram-sha-256",
            "--encoding",
            "UTF8",
            "--locale",
            "C",
            "--no-sync",
        )
        pwfile.unlink()

    def _start_listening(self) -> None:
        # Another process may take the free port before the server binds it: try again.
        for attempt in range(3):
            self.port = _free_port()
            options = " ".join(
                [
                    "-c listen_addresses=127.0.0.1",
                    f"-p {self.port}",
                    f"-k {self.root}",
                    "-c fsync=off",
                    "-c synchronous_commit=off",
                    "-c full_page_writes=off",
                    "-c max_connections=200",
                    "-c timezone=UTC",
                ]
            )
            try:
                self._run(
                    str(self.bindir / "pg_ctl"),
                    "start",
                    "--wait",
                    f"--timeout={_START_TIMEOUT_S}",
                    "--pgdata",
                    str(self.data),
                    "--log",
                    str(self.log),
                    "-o",
                    options,
                )
                return
            except RuntimeError as exc:
                if attempt == 2 or "already in use" not in str(exc):
                    raise

    def stop(self) -> None:
        """Stop the server (immediately: nothing in it is worth keeping) and remove it."""
        try:
            if (self.data / "postmaster.pid").exists():
                self._run(
                    str(self.bindir / "pg_ctl"),
                    "stop",
                    "--wait",
                    "--mode",
                    "immediate",
                    "--pgdata",
                    str(self.data),
                )
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


class Stores:
    """Fresh, empty places for a queue on one server: a schema each, in one database.

    A schema costs a millisecond where a database costs a copy of its template (tenths of
    a second); the queue works in whatever schema its DSN's search_path names. Each DSN
    also carries the schema's name as `application_name`, so a test can find (or end) the
    server sessions of its own queue among the others."""

    DATABASE = "amp_test"

    def __init__(self, server: PostgresServer) -> None:
        import psycopg

        self.server = server
        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {self.DATABASE} TEMPLATE template0")
        self._admin = psycopg.connect(server.dsn(self.DATABASE), autocommit=True)
        self._created: list[str] = []

    def create(self) -> str:
        """A new empty schema; the DSN of a queue in it."""
        name = f"t{len(self._created)}_{secrets.token_hex(4)}"
        assert re.fullmatch(r"[a-z0-9_]+", name)
        self._admin.execute(f"CREATE SCHEMA {name}")
        self._created.append(name)
        return self.server.dsn(
            self.DATABASE, options=f"-csearch_path={name}", application_name=name
        )

    def drop_all(self) -> None:
        for name in self._created:
            self._admin.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
        self._created.clear()

    def close(self) -> None:
        self._admin.close()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    try:
        server = PostgresServer.start()
    except (RuntimeError, OSError, subprocess.SubprocessError, KeyError) as exc:
        problem = f"{type(exc).__name__}: {exc}"
    else:
        problem = None
    if problem is not None:  # a failure, never a skip: the suite must not pass without it
        pytest.fail(
            f"cannot start a PostgreSQL server for the queue tests: {problem}\n"
            "The tests need PostgreSQL's server binaries (Debian: apt-get install "
            "postgresql-15), found on PATH, in /usr/lib/postgresql/*/bin or in "
            "AMP_TEST_PG_BINDIR.",
            pytrace=False,
        )
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_stores(postgres_server: PostgresServer) -> Iterator[Stores]:
    stores = Stores(postgres_server)
    try:
        yield stores
    finally:
        stores.close()


@pytest.fixture
def new_postgres_store(postgres_stores: Stores) -> Iterator[Callable[[], str]]:
    """Make fresh, empty stores (the DSN of each); all are dropped after the test."""
    yield postgres_stores.create
    postgres_stores.drop_all()


@pytest.fixture
def postgres_dsn(new_postgres_store: Callable[[], str]) -> str:
    """The DSN of a fresh, empty store on the session's throwaway server."""
    return new_postgres_store()
