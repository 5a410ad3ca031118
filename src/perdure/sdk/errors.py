"""The errors a handler author meets, in one tree.

TerminalError(Exception)          ends the invocation with a status code; never retried
SdkControlFlow(BaseException)     the SDK's own control flow, which user code must not catch
├── Suspended                     the attempt suspended: the handler resumes in a later attempt
└── AttemptEnded                  the attempt ended early (retryable error written, VM closed)
VMError(Exception)                a protocol violation or journal mismatch (the attempt fails
                                  with its code: 570 mismatch, 571 protocol violation, ...)

Every other exception raised by a handler is retried by the server. ``Suspended`` derives from
BaseException so that ``except Exception`` in user code cannot swallow it.
"""

from __future__ import annotations

from collections.abc import Mapping

JOURNAL_MISMATCH = 570
PROTOCOL_VIOLATION = 571
UNSUPPORTED_FEATURE = 573
INTERNAL = 500
CANCELLED = 409


class TerminalError(Exception):
    """Fails the invocation for good with ``status_code``; the server does not retry it."""

    def __init__(
        self,
        message: str,
        status_code: int = 500,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.metadata: dict[str, str] = dict(metadata or {})

    def __repr__(self) -> str:
        return f"TerminalError({self.message!r}, status_code={self.status_code})"


class SdkControlFlow(BaseException):
    """Unwinds a handler when the attempt stops; never an error of the user's code."""


class Suspended(SdkControlFlow):
    """The handler awaits something the server has not delivered; it resumes later."""


class AttemptEnded(SdkControlFlow):
    """The attempt is over (an error message was written); the handler must stop now."""


class VMError(Exception):
    """The invocation stream broke the protocol or the journal does not match the code."""

    def __init__(
        self,
        code: int,
        message: str,
        *,
        command_index: int | None = None,
        command_type: int | None = None,
        command_name: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.command_index = command_index
        self.command_type = command_type
        self.command_name = command_name
