"""A graceful end of an HTTP/2 connection after a request count, for ``serve(max_requests=N)``.

hypercorn ends a connection after ``keep_alive_max_requests`` requests with a GOAWAY, but its h2
state machine is closed from then on, so the responses of the streams it had accepted are never
sent and those invocations hang on the server side. Here GOAWAY only drains: the accepted streams
(up to the GOAWAY's last stream id) finish normally, a stream the client opened after that is
refused (RST_STREAM REFUSED_STREAM: the client may safely send it again on a new connection).

The same protocol class also survives late request data: hypercorn forgets a stream once its
response has ended, and a DATA frame the server sent before seeing that end (legal: the stream is
only half-closed) raised KeyError and closed the whole connection with every invocation on it.
"""

from __future__ import annotations

from typing import Any

import h2.connection
import h2.errors
import h2.events
from hypercorn.protocol.events import Body
from hypercorn.protocol.h2 import H2Protocol


class DrainingH2Connection(h2.connection.H2Connection):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.goaway_last_stream: int | None = None

    def close_connection(
        self,
        error_code: h2.errors.ErrorCodes | int = 0,
        additional_data: bytes | None = None,
        last_stream_id: int | None = None,
    ) -> None:
        if error_code != 0:
            super().close_connection(error_code, additional_data, last_stream_id)
            return
        if self.goaway_last_stream is not None:
            return  # already draining
        state = self.state_machine.state
        super().close_connection(error_code, additional_data, last_stream_id)
        self.state_machine.state = state  # keep serving the streams already accepted
        self.goaway_last_stream = (
            last_stream_id if last_stream_id is not None else self.highest_inbound_stream_id
        )

    def receive_data(self, data: Any) -> list[h2.events.Event]:
        events = super().receive_data(data)
        last = self.goaway_last_stream
        if last is None:
            return events
        kept: list[h2.events.Event] = []
        for event in events:
            stream_id = getattr(event, "stream_id", None)
            if stream_id is not None and stream_id > last:
                if isinstance(event, h2.events.RequestReceived):
                    self.reset_stream(stream_id, h2.errors.ErrorCodes.REFUSED_STREAM)
                continue
            kept.append(event)
        return kept


class DrainingH2Protocol(H2Protocol):
    """hypercorn's HTTP/2 protocol on a ``DrainingH2Connection``, ignoring late request data."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        plain = self.connection
        self.connection = DrainingH2Connection(config=plain.config)
        self.connection.DEFAULT_MAX_INBOUND_FRAME_SIZE = plain.DEFAULT_MAX_INBOUND_FRAME_SIZE
        self.connection.local_settings = plain.local_settings

    async def _handle_events(self, events: list[h2.events.Event]) -> None:
        # Data is handled here, in order with the other events, so that a stream created or
        # ended by an earlier event of the same batch is seen as it is at that moment.
        others: list[h2.events.Event] = []
        for event in events:
            if not isinstance(event, h2.events.DataReceived):
                others.append(event)
                continue
            if others:
                await super()._handle_events(others)
                others = []
            stream = self.streams.get(event.stream_id)
            if stream is not None:  # else the response has ended and nobody reads this data
                await stream.handle(Body(stream_id=event.stream_id, data=event.data))
            # Give back the flow-control credit either way, or the window shrinks for good.
            self.connection.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        await super()._handle_events(others)
