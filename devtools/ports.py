"""Free loopback ports for servers that cannot bind port 0 themselves (redis-server, Triton)."""

import socket


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
