"""The registered deployments and services, in memory. The engine loads it from storage and
persists its changes (each change is an engine transition, see ``engine.registrations``).

A service points at the deployment that registered its latest revision; new invocations of the
service go there. Settings resolve most specific first: the handler's manifest options, then
admin-API overrides of the service, then the service's manifest options, then server defaults.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from perdure.protocol import HandlerManifest, Manifest, ServiceManifest
from perdure.server.records import DeploymentRecord, ServiceRecord

DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class Defaults:
    """Server-wide defaults (the official server's)."""

    idempotency_retention: int = DAY_MS
    workflow_completion_retention: int = DAY_MS
    journal_retention: int = DAY_MS
    inactivity_timeout: int = 60_000
    abort_timeout: int = 600_000
    retry_initial_interval: int = 500
    retry_exponentiation_factor: float = 2.0
    retry_max_interval: int = 60_000
    retry_max_attempts: int = 70
    retry_on_max_attempts: str = "PAUSE"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    initial_interval: int
    exponentiation_factor: float
    max_interval: int | None
    max_attempts: int | None
    on_max_attempts: str
    """PAUSE or KILL."""

    def delay(self, failed_attempts: int) -> int:
        """Milliseconds before the attempt after ``failed_attempts`` failures (>= 1)."""
        delay = self.initial_interval * self.exponentiation_factor ** max(0, failed_attempts - 1)
        if self.max_interval is not None:
            delay = min(delay, self.max_interval)
        return int(delay)

    def exhausted(self, failed_attempts: int) -> bool:
        return self.max_attempts is not None and failed_attempts >= self.max_attempts


@dataclass(slots=True)
class Deployment:
    record: DeploymentRecord
    manifest: Manifest

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def protocol_version(self) -> int:
        """The version new invocations use with this deployment: 6 (5 if it stops there)."""
        return min(self.record.max_protocol_version, 6)


@dataclass(slots=True)
class Service:
    record: ServiceRecord
    manifest: ServiceManifest
    defaults: Defaults
    overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def ty(self) -> str:
        return self.manifest.ty.value

    def handler(self, name: str) -> HandlerManifest | None:
        return self.manifest.handler(name)

    def handler_type(self, handler: HandlerManifest) -> str | None:
        ty = self.manifest.effective_handler_type(handler)
        return None if ty is None else ty.value

    def setting(self, handler: HandlerManifest | None, name: str) -> Any:
        """A handler/service option value, or None when neither sets it."""
        if handler is not None:
            value = getattr(handler.options, name)
            if value is not None:
                return value
        if self.overrides.get(name) is not None:
            return self.overrides[name]
        return getattr(self.manifest.options, name)

    def public(self, handler: HandlerManifest) -> bool:
        if handler.options.ingress_private is not None:
            return not handler.options.ingress_private
        if self.overrides.get("public") is not None:
            return bool(self.overrides["public"])
        return not self.manifest.options.ingress_private

    def retention(self, handler: HandlerManifest | None, name: str) -> int:
        value = self.setting(handler, name)
        return int(value) if value is not None else int(getattr(self.defaults, name))

    def lazy_state(self, handler: HandlerManifest | None) -> bool:
        return bool(self.setting(handler, "enable_lazy_state"))

    def retry_policy(self, handler: HandlerManifest | None) -> RetryPolicy:
        d = self.defaults

        def pick(name: str, default: Any) -> Any:
            value = self.setting(handler, f"retry_policy_{name}")
            return default if value is None else value

        on_max = pick("on_max_attempts", d.retry_on_max_attempts)
        return RetryPolicy(
            initial_interval=int(pick("initial_interval", d.retry_initial_interval)),
            exponentiation_factor=float(
                pick("exponentiation_factor", d.retry_exponentiation_factor)
            ),
            max_interval=int(pick("max_interval", d.retry_max_interval)),
            max_attempts=int(pick("max_attempts", d.retry_max_attempts)),
            on_max_attempts=str(getattr(on_max, "value", on_max)),
        )


class Registry:
    """Deployments by id and services by name."""

    def __init__(self, defaults: Defaults | None = None) -> None:
        self.defaults = defaults or Defaults()
        self.deployments: dict[str, Deployment] = {}
        self.services: dict[str, Service] = {}

    def load(self, deployments: list[DeploymentRecord], services: list[ServiceRecord]) -> None:
        self.deployments = {
            r.id: Deployment(r, Manifest.from_json(json.loads(r.manifest))) for r in deployments
        }
        self.services = {}
        for s in services:
            deployment = self.deployments.get(s.deployment_id)
            manifest = deployment.manifest.service(s.name) if deployment else None
            if manifest is not None:
                self.services[s.name] = Service(s, manifest, self.defaults, json.loads(s.overrides))

    def service(self, name: str) -> Service | None:
        return self.services.get(name)

    def default_retry_policy(self) -> RetryPolicy:
        d = self.defaults
        return RetryPolicy(
            d.retry_initial_interval, d.retry_exponentiation_factor, d.retry_max_interval,
            d.retry_max_attempts, d.retry_on_max_attempts,
        )  # fmt: skip

    def deployment_of(self, service: str) -> Deployment | None:
        s = self.services.get(service)
        return None if s is None else self.deployments.get(s.record.deployment_id)

    def add_deployment(self, record: DeploymentRecord, manifest: Manifest) -> list[ServiceRecord]:
        """Add a deployment and point each of its services at it (a new revision); returns the
        service records to store."""
        self.deployments[record.id] = Deployment(record, manifest)
        changed: list[ServiceRecord] = []
        for svc in manifest.services:
            previous = self.services.get(svc.name)
            revision = previous.record.revision + 1 if previous else 1
            overrides = previous.overrides if previous else {}
            service_record = ServiceRecord(
                svc.name, revision, record.id, json.dumps({"name": svc.name}),
                json.dumps(overrides),
            )  # fmt: skip
            changed.append(service_record)
            self.services[svc.name] = Service(service_record, svc, self.defaults, dict(overrides))
        return changed

    def remove_deployment(self, deployment_id: str) -> list[str]:
        """Remove a deployment and the services it serves; returns their names."""
        self.deployments.pop(deployment_id, None)
        removed = [n for n, s in self.services.items() if s.record.deployment_id == deployment_id]
        for name in removed:
            del self.services[name]
        return removed

    def set_overrides(self, name: str, overrides: dict[str, Any]) -> Service:
        service = self.services[name]
        service.overrides = overrides
        record = service.record
        service.record = ServiceRecord(
            record.name, record.revision, record.deployment_id, record.manifest,
            json.dumps(overrides),
        )  # fmt: skip
        return service
