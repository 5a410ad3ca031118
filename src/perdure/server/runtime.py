"""The server's parts wired together, without listeners: store, registry, engine, invoker, and the
ingress and admin ASGI apps. The store goes to the engine, its only user.

``perdure server`` puts HTTP listeners in front of a Runtime; ``perdure dev`` and
``perdure.testing`` use one in-process, with the user's services mounted as ``local://NAME``
deployments (see ``invoker.local``), so one code path serves all three.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path

import httpx

from perdure.protocol.identity import SigningKey
from perdure.server.api.admin import Admin
from perdure.server.api.ingress import Ingress
from perdure.server.engine.driver import Clock, Engine
from perdure.server.engine.messages import Transport
from perdure.server.invoker.invoker import Invoker
from perdure.server.invoker.local import ASGIApp, LocalApps
from perdure.server.partitions import DEFAULT_PARTITIONS, PartitionMap
from perdure.server.registry import Defaults, Registry
from perdure.server.storage import Storage, Store
from perdure.server.storage.lock import StoreLock
from perdure.server.storage.private import private_file

log = logging.getLogger("perdure.server")


def _postgres(url: str, working_copy: Path | str) -> Storage:
    from perdure.server.storage.postgres import PostgresStore  # noqa: PLC0415 (optional driver)

    return PostgresStore(url, working_copy, exit_when_fenced=True)


class RegistrationError(Exception):
    """Registering an in-process app failed; the message is the admin API's answer."""


class Runtime:
    def __init__(
        self,
        db_path: Path | str,
        *,
        defaults: Defaults | None = None,
        clock: Clock | None = None,
        ingress_url: str = "http://127.0.0.1:8080",
        synchronous: str = "FULL",
        identity: SigningKey | None = None,
        store_url: str | None = None,
        partitions: int | None = None,
        owned: Iterable[int] | None = None,
        transport: Transport | None = None,
    ) -> None:
        self.db_path = Path(db_path)
        self.lock = StoreLock(db_path) if str(db_path) != ":memory:" else None
        try:
            if self.lock is not None:
                private_file(Path(db_path))
            store: Storage = (
                Store(db_path, synchronous=synchronous)
                if store_url is None
                else _postgres(store_url, db_path)
            )
        except BaseException:
            if self.lock is not None:
                self.lock.release()
            raise
        try:
            count = store.partition_count(partitions, DEFAULT_PARTITIONS)
        except BaseException:
            store.close()
            if self.lock is not None:
                self.lock.release()
            raise
        self.registry = Registry(defaults or Defaults())
        self.engine = Engine(  # the only owner of the store
            store,
            self.registry,
            clock,
            partitions=PartitionMap(count),
            owned=owned,
            transport=transport,
        )
        self.local = LocalApps()
        self.invoker = Invoker(self.engine, self.local, identity)
        self.engine.invoker = self.invoker
        self.ingress = Ingress(self.engine)
        self.admin = Admin(self.engine, self.invoker, ingress_url)

    def start(self) -> None:
        """Recover what was running before and start firing timers."""
        self.engine.start()

    async def stop(self, shutdown_timeout: float = 10.0) -> None:
        """Let live attempts reach a safe point, commit, and close the store."""
        await self.invoker.drain(shutdown_timeout)
        await self.engine.stop()
        await self.invoker.close()
        self.engine.close()
        if self.lock is not None:
            self.lock.release()

    async def mount(self, name: str, app: ASGIApp, *, force: bool = True) -> str:
        """Serve ``app`` in-process as ``local://name`` and register it (discovery included);
        returns the deployment id. Mounting again under the same name replaces the code and keeps
        the deployment id, so invocations pinned to it go on with the new code."""
        uri = self.local.mount(name, app)
        transport = httpx.ASGITransport(app=self.admin)
        async with httpx.AsyncClient(transport=transport, base_url="http://admin") as admin:
            response = await admin.post("/deployments", json={"uri": uri, "force": force})
        if response.status_code >= 300:
            try:
                message = response.json().get("message", response.text)
            except json.JSONDecodeError:
                message = response.text
            raise RegistrationError(f"registering {uri} failed: {message}")
        deployment_id: str = response.json()["id"]
        return deployment_id
