"""The SSRF guard: every address class refused, every redirect hop checked, sizes capped."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import pytest

from opensight import netguard
from opensight.errors import ImageTooLarge, UrlFetchFailed, UrlNotAllowed
from opensight.netguard import FetchPolicy, fetch_bytes, resolve_checked
from tests.httpstub import Stub

STRICT = FetchPolicy(allow_private=False)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/a.jpg",
        "http://localhost/a.jpg",
        "http://10.1.2.3/",
        "http://172.16.0.1/",
        "http://192.168.1.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://0.0.0.0/",
        "http://224.0.0.1/",
        "http://[fc00::1]/",
        "http://[fe80::1]/",
        "http://100.64.0.1/",
        "http://240.0.0.1/",
        "http://metadata.google.internal/",
        "http://2130706433/",
    ],
)
def test_private_and_special_addresses_refused(url: str) -> None:
    with pytest.raises(UrlNotAllowed):
        resolve_checked(url, STRICT)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/a",
        "file:///etc/passwd",
        "gopher://x/",
        "http://user:pw@example.com/",
        "http:///nohost",
        "nonsense",
    ],
)
def test_bad_schemes_and_shapes_refused(url: str) -> None:
    with pytest.raises(UrlNotAllowed):
        resolve_checked(url, STRICT)


def test_public_address_allowed_and_pinned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        lambda *a, **k: [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", 443))],
    )
    pinned, host = resolve_checked("https://images.example.com/a.jpg?sig=1", STRICT)
    assert host == "images.example.com"
    assert str(pinned) == "https://93.184.216.34/a.jpg?sig=1"


def _allow_only_loopback_v4(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let the guard treat 127.0.0.1 (our stub) as public; everything else keeps its rules."""
    real = netguard._address_allowed

    def allowed(ip: Any) -> bool:
        return ip == ipaddress.ip_address("127.0.0.1") or real(ip)

    monkeypatch.setattr(netguard, "_address_allowed", allowed)


def test_redirect_to_private_address_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    _allow_only_loopback_v4(monkeypatch)
    with Stub(
        routes={
            "/r": (302, {"Location": "http://169.254.169.254/latest/"}, b""),
            "/r2": (301, {"Location": "http://10.0.0.5/x.jpg"}, b""),
        }
    ) as stub:
        with pytest.raises(UrlNotAllowed):
            fetch_bytes(stub.url + "/r", STRICT)
        with pytest.raises(UrlNotAllowed):
            fetch_bytes(stub.url + "/r2", STRICT)


def test_connects_to_the_checked_address_with_original_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """DNS rebinding: the name is resolved once and that address is the one we connect to."""
    _allow_only_loopback_v4(monkeypatch)
    real_getaddrinfo = socket.getaddrinfo
    answers = iter(["127.0.0.1", "10.9.9.9", "10.9.9.9"])

    def rebinding(host: str, *args: Any, **kw: Any) -> Any:
        if host == "rebind.test":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), 80))]
        return real_getaddrinfo(host, *args, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    with Stub(routes={"/a": (200, {}, b"hello")}) as stub:
        port = stub.url.rsplit(":", 1)[1]
        body = fetch_bytes(f"http://rebind.test:{port}/a", STRICT)
    assert body == b"hello"


def test_redirects_limited_and_size_capped() -> None:
    lenient = FetchPolicy(allow_private=True, max_redirects=3, max_bytes=1000)
    with Stub() as stub:
        stub.routes.update(
            {
                "/loop": (302, {"Location": "/loop"}, b""),
                "/big": (200, {}, b"x" * 5000),
                "/ok": (302, {"Location": "/small"}, b""),
                "/small": (200, {}, b"tiny"),
            }
        )
        with pytest.raises(UrlFetchFailed):
            fetch_bytes(stub.url + "/loop", lenient)
        with pytest.raises(ImageTooLarge):
            fetch_bytes(stub.url + "/big", lenient)
        assert fetch_bytes(stub.url + "/ok", lenient) == b"tiny"
        with pytest.raises(UrlFetchFailed):
            fetch_bytes(stub.url + "/missing", lenient)


def test_unreachable_host_is_fetch_failed() -> None:
    from tests.server import free_port

    with pytest.raises(UrlFetchFailed):
        fetch_bytes(
            f"http://127.0.0.1:{free_port()}/x", FetchPolicy(allow_private=True, connect_timeout=1)
        )
