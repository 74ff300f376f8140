"""A free loopback port for multi-process launches in tests (two runs at once must not collide)."""

import socket


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
