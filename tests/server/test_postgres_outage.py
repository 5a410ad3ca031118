"""perdure's server on PostgreSQL while PostgreSQL goes away and comes back: requests made
meanwhile wait (nothing is acknowledged before PostgreSQL has it), then complete; nothing
acknowledged is lost, and a SIGKILL of the server afterwards loses nothing either."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.support.official import serve_asgi
from tests.support.perdure_server import PerdureServer
from tests.support.postgres import PostgresServer

pytestmark = pytest.mark.interop


def test_a_postgres_restart_delays_answers_and_loses_nothing(tmp_path: Path) -> None:
    with PostgresServer.start() as pg:
        url = pg.create_database()
        with (
            PerdureServer.start(tmp_path, args=["--store", url], store="sqlite") as server,
            serve_asgi("tests.server.official_services:app", tmp_path) as deployment,
            httpx.Client(base_url=server.ingress, timeout=60) as client,
        ):
            server.register(deployment)
            assert client.post("/Counter/a/add", json=1).json() == 1

            pg.stop()
            answers: list[int] = []
            during = threading.Thread(
                target=lambda: answers.append(client.post("/Counter/a/add", json=10).json())
            )
            during.start()
            time.sleep(1.5)
            assert not answers  # not acknowledged while PostgreSQL is away
            pg.resume()
            during.join(timeout=60)
            assert answers == [11]

            server.kill()
            server.restart()
            assert client.post("/Counter/a/get").json() == 11
