"""Admin state edits (``POST /services/{s}/state``): replace all of one object key's state.

An edit is an engine transition. When no invocation holds the key's exclusive lock it applies at
once; otherwise it waits in the key's inbox (entry ``edit:<seq>``) and applies when the lock is
released, before the next queued invocation starts -- so a running handler never sees its state
change under it (the official server queues edits the same way).

``version`` is the optimistic check of Restate's CLI: a hash of the state the editor saw. A
mismatch found at once is reported (``version_mismatch``); one found when a queued edit applies
drops the edit (it is logged), as the official server does.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

from perdure.protocol.state_version import state_version

if TYPE_CHECKING:
    from perdure.server.engine.core import Core
    from perdure.server.storage import Storage

log = logging.getLogger("perdure.server.engine")
_PREFIX = "edit:"


def _replace(store: Storage, service: str, key: str, new_state: Mapping[bytes, bytes]) -> None:
    store.clear_all_state(service, key)
    for state_key, value in new_state.items():
        store.set_state(service, key, state_key, value)


def edit_state(
    core: Core,
    service: str,
    key: str,
    new_state: Mapping[bytes, bytes],
    version: str | None,
    *,
    locking: bool,
) -> str:
    """'applied', 'queued' (behind the key's lock) or 'version_mismatch'."""
    store = core.store
    if locking and store.lock_holder(service, key) is not None:
        encoded = {base64.b64encode(k).decode(): base64.b64encode(v).decode()
                   for k, v in new_state.items()}  # fmt: skip
        store.queue_state_edit(service, key, json.dumps(encoded), version, _PREFIX)
        return "queued"
    if version is not None and version != state_version(store.get_state(service, key)):
        return "version_mismatch"
    _replace(store, service, key, new_state)
    return "applied"


def is_queued_edit(entry: str) -> bool:
    return entry.startswith(_PREFIX)


def apply_queued(store: Storage, key: str, entry: str) -> None:
    found = store.take_state_edit(key, int(entry.removeprefix(_PREFIX)))
    if found is None:
        return
    service, key, encoded, version = found
    if version is not None and version != state_version(store.get_state(service, key)):
        log.warning("state edit of %s/%s dropped: the state changed since version %s",
                    service, key, version)  # fmt: skip
        return
    new_state = {base64.b64decode(k): base64.b64decode(v) for k, v in json.loads(encoded).items()}
    _replace(store, service, key, new_state)
