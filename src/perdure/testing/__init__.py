"""perdure.testing: run your services on an in-process perdure server inside your tests.

    async with perdure.testing.Harness([greeter, counter]) as h:
        assert await h.client.service(greet).request("Ann") == "Hello Ann"
        h.clock.advance(timedelta(days=5))
        await h.settle()
        assert h.state("Counter", "ann") == {"total": 5}

The harness runs the real engine on a temporary SQLite store and serves the services as the
in-process deployment ``local://harness``; ``h.client`` is a ``perdure.client.AsyncClient``
over an in-process transport. No sockets are opened.

The virtual clock (``virtual_clock=True``, the default)
---------------------------------------------------------
The engine, the invoker and the SDK read ``h.clock``; it stands still until moved.

* **Auto-advance.** Whenever the harness is *quiet*, the clock jumps to the earliest timer an
  invocation waits for: a sleep, a delayed send's start, a retry's backoff. Quiet means, for
  several event-loop rounds in a row: nothing uncommitted in the engine; no request through
  ``h.client``/``h.admin`` being processed (a request that only waits for an invocation's
  result does not count); every live attempt awaiting only the server (no ``ctx.run`` step
  executing, no handler code running); and no timer due. Retention timers (idempotency,
  workflow, journal retention) are never jumped to; they fire only when time passes them.
* **Timeouts race with your test.** A handler awaiting an awakeable or a promise with a timeout
  (``perdure.first_completed(awakeable, ctx.sleep(...))``) is waiting for a timer, so as soon as
  the harness is quiet the timeout fires, even if your test was about to resolve the awakeable:
  your own awaits (reading state, sending the resolution) leave the harness quiet. To resolve
  first, hold the clock: ``with h.clock.hold(): ...`` (or ``h.clock.auto_advance = False``).
  While held the clock moves only by ``h.clock.advance(timedelta)``. Hold it likewise to observe
  an intermediate state, e.g. a delayed send that has not run yet.
* ``h.clock.advance(delta)`` moves the clock by hand and fires what becomes due; ``await
  h.settle()`` then waits for the effects. ``h.clock.now()`` reads it.

``always_replay=True``
----------------------
The server's inactivity timeout is 0: each await suspends the handler, and the next attempt
replays the journal. Code that does not take the same steps on replay (branching on
``random``, wall-clock time or module state instead of ``ctx``) fails with a journal mismatch,
visible in ``h.invocation(id).last_failure`` and, when retries run out, as the call's error.

Assertions
----------
``h.state(service, key)`` (JSON-decoded; ``h.state_raw`` for bytes), ``h.journal(id)``
(``JournalEntry`` records), ``h.invocation(id)`` (``InvocationInfo``: status, value,
failure), ``h.invocations()``, and ``await h.settle()``.

The pytest fixture ``perdure_harness`` (installed with perdure) is a factory:
``async with perdure_harness([greeter]) as h: ...``; see docs/testing.md.
"""

from perdure.testing.clock import VirtualClock, WallClock
from perdure.testing.harness import Harness, HarnessError
from perdure.testing.views import InvocationInfo, JournalEntry

__all__ = [
    "Harness",
    "HarnessError",
    "InvocationInfo",
    "JournalEntry",
    "VirtualClock",
    "WallClock",
]
