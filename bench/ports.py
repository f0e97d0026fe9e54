"""A free TCP port on 127.0.0.1 for the benchmarks' servers (the one copy in bench/)."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A port nothing listens on now (the OS picks it; a race with another process that
    binds it first is possible, as with any such probe)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
