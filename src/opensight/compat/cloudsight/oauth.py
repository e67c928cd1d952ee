"""OAuth 1.0 HMAC-SHA1 (consumer key and secret, no token) as CloudSight's clients sign it.

Base string: ``METHOD&enc(URL without query)&enc(sorted enc(k)=enc(v) joined by &)``,
key ``enc(secret)&``, ``enc`` keeping only RFC 3986 unreserved characters.

Which parameters a client signs differs: the python client 0.9.2 signs only
the caller's params for a file upload (not the default locale it adds, never
the file), every form field for a URL request, and nothing for GET and
repost. The verifier therefore accepts a signature over any of: all non-file
form fields, those without ``image_request[locale]``, or none (each plus the
query string's parameters, per the OAuth spec) -- all of them are fields of
the request it received, so nothing unsigned can change what is analysed
except the locale the client itself defaulted.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote, unquote

from ...services.nonces import MAX_NONCE_LENGTH
from .errors import CloudSightError, unauthorized
from .request import LOCALE_FIELD

#: How far a request's oauth_timestamp may be from the server's clock.
TIMESTAMP_WINDOW_SECONDS = 300
_PARAM = re.compile(r'([A-Za-z0-9_]+)\s*=\s*"([^"]*)"')

Pairs = Sequence[tuple[str, str]]


def encode(value: str) -> str:
    return quote(value, safe="~")


@dataclass(frozen=True)
class OAuthHeader:
    params: dict[str, str]
    """Every ``oauth_*`` parameter of the header, decoded (the signature included)."""

    @property
    def consumer_key(self) -> str:
        return self.params["oauth_consumer_key"]

    @property
    def nonce(self) -> str:
        return self.params["oauth_nonce"]

    @property
    def timestamp(self) -> int:
        return int(self.params["oauth_timestamp"])

    @property
    def signature(self) -> str:
        return self.params["oauth_signature"]

    def signed_params(self) -> list[tuple[str, str]]:
        return [(k, v) for k, v in self.params.items() if k != "oauth_signature"]


def parse_header(value: str, now: float) -> OAuthHeader:
    """Parse ``OAuth k="v", ...`` and check what needs no secret (fields, method, clock)."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "oauth":
        raise unauthorized("not an OAuth authorization header")
    params: dict[str, str] = {}
    for key, raw in _PARAM.findall(rest):
        if key.startswith("oauth_"):
            if key in params:
                raise unauthorized(f"{key} is given more than once")
            params[key] = unquote(raw)
    missing = [
        name
        for name in (
            "oauth_consumer_key",
            "oauth_signature",
            "oauth_signature_method",
            "oauth_timestamp",
            "oauth_nonce",
        )
        if not params.get(name)
    ]
    if missing:
        raise unauthorized(f"the OAuth header lacks {', '.join(missing)}")
    if params["oauth_signature_method"].upper() != "HMAC-SHA1":
        raise unauthorized("oauth_signature_method must be HMAC-SHA1")
    if params.get("oauth_version", "1.0") != "1.0":
        raise unauthorized("oauth_version must be 1.0")
    if params.get("oauth_token"):
        raise unauthorized("OAuth tokens are not used: sign with the consumer key and secret")
    if len(params["oauth_nonce"]) > MAX_NONCE_LENGTH:
        raise unauthorized(f"oauth_nonce is longer than {MAX_NONCE_LENGTH} characters")
    stamp = params["oauth_timestamp"]
    if not stamp.isdigit() or len(stamp) > 12:
        raise unauthorized("oauth_timestamp is not a number of seconds")
    if abs(int(stamp) - now) > TIMESTAMP_WINDOW_SECONDS:
        raise unauthorized(
            f"oauth_timestamp is more than {TIMESTAMP_WINDOW_SECONDS} s from the server's "
            "clock; check the client's clock"
        )
    return OAuthHeader(params)


def base_string(method: str, url: str, params: Pairs) -> str:
    encoded = sorted((encode(k), encode(v)) for k, v in params)
    normalized = "&".join(f"{k}={v}" for k, v in encoded)
    return "&".join((method.upper(), encode(url), encode(normalized)))


def sign(secret: str, base: str) -> str:
    key = f"{encode(secret)}&".encode()
    return base64.b64encode(hmac.new(key, base.encode(), hashlib.sha1).digest()).decode()


def candidate_param_sets(form: Pairs, query: Pairs) -> list[list[tuple[str, str]]]:
    """The parameter sets CloudSight's clients sign (see the module docstring), deduplicated."""
    sets: list[list[tuple[str, str]]] = []
    for chosen in (
        list(form),
        [(k, v) for k, v in form if k != LOCALE_FIELD],
        [],
    ):
        params = [*chosen, *query]
        if params not in sets:
            sets.append(params)
    return sets


_DEFAULT_PORTS = {"http": "80", "https": "443"}


def url_variants(scheme: str, host: str, path: str) -> list[str]:
    """The URL as received, plus the spellings of its default port a client may have signed.

    The python client signs its configured URL verbatim, and ``http://h:80/x`` arrives
    with ``Host: h``; OAuth libraries that normalise drop the default port and lowercase.
    """
    scheme = scheme.lower()
    urls = [f"{scheme}://{host}{path}"]
    default = _DEFAULT_PORTS.get(scheme)
    lowered = host.lower()
    if default and lowered.endswith(f":{default}"):
        urls.append(f"{scheme}://{lowered[: -len(default) - 1]}{path}")
    elif default and not re.search(r":\d+$", lowered):
        urls.append(f"{scheme}://{host}:{default}{path}")
    if lowered != host:
        urls.append(f"{scheme}://{lowered}{path}")
    return urls


def verify(
    header: OAuthHeader,
    secret: str,
    method: str,
    urls: Sequence[str],
    form: Pairs,
    query: Pairs,
) -> None:
    """Raise a 401 unless the signature is ``secret``'s over one of the accepted URL
    spellings and parameter sets (every candidate is computed: no early exit)."""
    given = header.signature.encode()
    matched = False
    for url in urls:
        for params in candidate_param_sets(form, query):
            expected = sign(secret, base_string(method, url, [*header.signed_params(), *params]))
            matched |= hmac.compare_digest(expected.encode(), given)
    if not matched:
        raise unauthorized("the OAuth signature does not match (check the key, secret and URL)")


__all__ = ["CloudSightError", "OAuthHeader", "base_string", "parse_header", "sign", "verify"]
