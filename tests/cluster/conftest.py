"""A real PostgreSQL for the cluster tests: one throwaway server per session, a fresh database
per test."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from tests.cluster.pg import PgServer

_names = itertools.count()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    server = PgServer.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_dsn(pg_server: PgServer) -> str:
    return pg_server.new_database(f"cluster_{next(_names)}")
