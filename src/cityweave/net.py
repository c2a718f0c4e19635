"""Listening sockets for IPv4 and IPv6.

Whether ``::`` also accepts IPv4 depends on the host's ``net.ipv6.bindv6only`` setting, so we set
``IPV6_V6ONLY`` ourselves: ``::`` is explicitly dual-stack, any other IPv6 address is IPv6 only.
A host list like ``127.0.0.1,::1`` binds one socket per address.
"""

from __future__ import annotations

import logging
import socket

log = logging.getLogger(__name__)

DUAL_STACK = {"::", "[::]"}


def parse_hosts(hosts: str) -> list[str]:
    return [h.strip().strip("[]") for h in hosts.split(",") if h.strip()]


def bind_tcp(hosts: str, port: int, *, backlog: int = 2048) -> list[socket.socket]:
    """Bind and listen on every address; an address the machine lacks (no IPv6) is skipped
    with a warning as long as at least one address is bound."""
    sockets: list[socket.socket] = []
    errors: list[str] = []
    for host in parse_hosts(hosts):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if host == "::" else 1)
            sock.bind((host, port))
            sock.listen(backlog)
            sock.set_inheritable(True)
            sockets.append(sock)
        except OSError as exc:
            sock.close()
            errors.append(f"{host}: {exc.strerror or exc}")
    if not sockets:
        raise OSError(f"cannot listen on port {port}: " + "; ".join(errors))
    for error in errors:
        log.warning("not listening on %s", error)
    return sockets


def display_url(hosts: str, port: int) -> str:
    first = parse_hosts(hosts)[0]
    shown = "127.0.0.1" if first in ("0.0.0.0", "::") else first
    return f"http://[{shown}]:{port}" if ":" in shown else f"http://{shown}:{port}"
