"""Registry changes as engine transitions: a deployment registered or removed, a service's
settings overridden. Each changes the in-memory registry and writes its records in the same batch,
so they are durable before any answer or attempt depends on them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from perdure.protocol import Manifest
from perdure.server.records import DeploymentRecord, ServiceRecord
from perdure.server.registry import Service

if TYPE_CHECKING:
    from perdure.server.engine.core import Core


def add_deployment(core: Core, record: DeploymentRecord, manifest: Manifest) -> None:
    """Store a deployment and point each of its services at it (a new revision)."""
    core.store.put_deployment(record)
    for service in core.registry.add_deployment(record, manifest):
        core.store.put_service(service)


def remove_deployment(core: Core, deployment_id: str) -> None:
    core.store.delete_deployment(deployment_id)
    for name in core.registry.remove_deployment(deployment_id):
        core.store.delete_service(name)


def set_overrides(core: Core, name: str, overrides: dict[str, Any]) -> Service:
    service = core.registry.set_overrides(name, overrides)
    core.store.put_service(service.record)
    return service


def replace_all(
    core: Core, deployments: list[DeploymentRecord], services: list[ServiceRecord]
) -> None:
    """Make the registry exactly these records (another worker's registry, copied: see
    ``perdure.server.routing.registry_sync``)."""
    keep_deployments = {d.id for d in deployments}
    keep_services = {s.name for s in services}
    for d in core.store.list_deployments():
        if d.id not in keep_deployments:
            core.store.delete_deployment(d.id)
    for s in core.store.list_services():
        if s.name not in keep_services:
            core.store.delete_service(s.name)
    for d in deployments:
        core.store.put_deployment(d)
    for s in services:
        core.store.put_service(s)
    core.registry.load(deployments, services)
