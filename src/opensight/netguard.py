"""Outbound HTTP that cannot be pointed at our own network (SSRF guard).

Every URL we fetch or call back (image URLs, webhooks) goes through here. The
host is resolved once, every address is checked, and the connection is made to
that checked address (Host header and TLS SNI keep the name), so a DNS answer
that changes between check and connect (rebinding) cannot slip through.
Redirects are followed by hand so that each hop is checked too.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

from .errors import ImageTooLarge, UrlFetchFailed, UrlNotAllowed

_METADATA_HOSTS = {"metadata.google.internal", "metadata", "instance-data"}


@dataclass(frozen=True)
class FetchPolicy:
    allow_private: bool = False
    connect_timeout: float = 5.0
    read_timeout: float = 15.0
    max_redirects: int = 5
    max_bytes: int = 25 * 1024 * 1024


def _address_allowed(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def resolve_checked(url: str, policy: FetchPolicy) -> tuple[httpx.URL, str]:
    """Validate ``url`` and return it rewritten to a checked IP, plus the original host."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise UrlNotAllowed(f"malformed URL: {exc}") from exc
    if parts.scheme not in ("http", "https"):
        raise UrlNotAllowed(f"only http and https URLs are allowed, not {parts.scheme or 'none'!r}")
    host = parts.hostname
    if not host:
        raise UrlNotAllowed("the URL has no host")
    if parts.username or parts.password:
        raise UrlNotAllowed("URLs with credentials are not allowed")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise UrlNotAllowed(f"bad port in URL: {exc}") from exc
    if host.lower().rstrip(".") in _METADATA_HOSTS and not policy.allow_private:
        raise UrlNotAllowed(f"host {host!r} is a cloud metadata endpoint")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UrlFetchFailed(f"cannot resolve host {host!r}: {exc}") from exc
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    if not addresses:
        raise UrlFetchFailed(f"host {host!r} has no address")
    if not policy.allow_private:
        for ip in addresses:
            if not _address_allowed(ip):
                raise UrlNotAllowed(
                    f"host {host!r} resolves to {ip}, a private, loopback, link-local or "
                    "reserved address (set OPENSIGHT_ALLOW_PRIVATE_URLS=true to allow)"
                )
    ip = addresses[0]
    ip_host = f"[{ip}]" if ip.version == 6 else str(ip)
    netloc = f"{ip_host}:{port}"
    pinned = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    return httpx.URL(pinned), host


@contextmanager
def guarded_request(
    method: str,
    url: str,
    policy: FetchPolicy,
    *,
    content: bytes | None = None,
    headers: dict[str, str] | None = None,
    follow_redirects: bool = True,
) -> Iterator[httpx.Response]:
    """Open a streamed response for ``url``, checking every hop against the guard."""
    timeout = httpx.Timeout(policy.read_timeout, connect=policy.connect_timeout)
    with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client:
        current = url
        for _hop in range(policy.max_redirects + 1):
            pinned, host = resolve_checked(current, policy)
            port = urlsplit(current).port
            host_header = host if port is None else f"{host}:{port}"
            req_headers = {"Host": host_header, "User-Agent": "OpenSight/0.1"}
            req_headers.update(headers or {})
            request = client.build_request(
                method,
                pinned,
                content=content,
                headers=req_headers,
                extensions={"sni_hostname": host},
            )
            try:
                response = client.send(request, stream=True)
            except httpx.TimeoutException as exc:
                raise UrlFetchFailed(f"timed out fetching {_redact(current)}") from exc
            except httpx.HTTPError as exc:
                raise UrlFetchFailed(f"cannot fetch {_redact(current)}: {exc}") from exc
            if follow_redirects and response.is_redirect:
                location = response.headers.get("location", "")
                response.close()
                current = urljoin(current, location)
                if method.upper() not in ("GET", "HEAD"):
                    method, content = "GET", None
                continue
            try:
                yield response
            finally:
                response.close()
            return
        raise UrlFetchFailed(f"more than {policy.max_redirects} redirects")


def fetch_bytes(url: str, policy: FetchPolicy) -> bytes:
    """GET ``url`` and return its body, refusing more than ``policy.max_bytes``."""
    with guarded_request("GET", url, policy) as response:
        if response.status_code >= 400:
            raise UrlFetchFailed(f"{_redact(url)} answered HTTP {response.status_code}")
        declared = response.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > policy.max_bytes:
            raise ImageTooLarge(f"the URL's body is {declared} bytes; limit {policy.max_bytes}")
        chunks: list[bytes] = []
        total = 0
        try:
            for chunk in response.iter_bytes():
                total += len(chunk)
                if total > policy.max_bytes:
                    raise ImageTooLarge(f"the URL's body exceeds {policy.max_bytes} bytes")
                chunks.append(chunk)
        except httpx.HTTPError as exc:
            raise UrlFetchFailed(f"error while reading {_redact(url)}: {exc}") from exc
        return b"".join(chunks)


def _redact(url: str) -> str:
    """Drop the query string: it often carries tokens that must not reach logs."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
