from tests.support.no_sockets import no_sockets

__all__ = ["no_sockets"]
