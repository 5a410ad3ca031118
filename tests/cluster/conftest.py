"""A real PostgreSQL for the cluster tests: the session's throwaway server
(tests/support/postgres.py), a fresh database per test."""

from __future__ import annotations

import pytest

from tests.support import postgres


@pytest.fixture
def pg_dsn() -> str:
    return postgres.shared_server().create_database("cluster")
