"""Listening on IPv4 and IPv6 regardless of the host's bindv6only setting."""

from __future__ import annotations

import socket

import pytest

from cityweave.net import bind_tcp, display_url, parse_hosts


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _can_connect(family: int, host: str, port: int) -> bool:
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(1)
        return s.connect_ex((host, port)) == 0


def _has_ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _has_ipv6(), reason="this machine has no IPv6 loopback")
@pytest.mark.parametrize("hosts", ["::", "127.0.0.1,::1"])
def test_both_families_accept_connections(hosts: str) -> None:
    port = _free_port()
    sockets = bind_tcp(hosts, port)
    try:
        assert _can_connect(socket.AF_INET, "127.0.0.1", port)
        assert _can_connect(socket.AF_INET6, "::1", port)
    finally:
        for s in sockets:
            s.close()


def test_missing_address_is_skipped_but_none_is_an_error() -> None:
    port = _free_port()
    sockets = bind_tcp("127.0.0.1,192.0.2.123", port)  # TEST-NET address: not on this machine
    try:
        assert len(sockets) == 1
    finally:
        sockets[0].close()
    with pytest.raises(OSError, match="cannot listen"):
        bind_tcp("192.0.2.123", port)


def test_host_parsing_and_urls() -> None:
    assert parse_hosts("127.0.0.1, [::1]") == ["127.0.0.1", "::1"]
    assert display_url("::", 8000) == "http://127.0.0.1:8000"
    assert display_url("::1", 8000) == "http://[::1]:8000"
