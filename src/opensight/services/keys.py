"""API keys and tenants: create, list, revoke, authenticate."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import select

from ..errors import Forbidden, NotFound, Unauthorized, ValidationFailed
from ..jobs.model import utcnow
from ..storage.db import Database
from ..storage.tables import ApiKey, Tenant

KEY_PREFIX = "osk_"
SECRET_PREFIX = "oss_"


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's tenant (isolation boundary) and its collection binding."""

    tenant_id: str
    key_id: str
    secret: str
    collection: str | None = None


@dataclass(frozen=True)
class CreatedKey:
    key: str
    secret: str
    record: ApiKey


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class KeyService:
    def __init__(self, db: Database, cache_seconds: float = 0.0) -> None:
        self.db = db
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[Principal, float]] = {}

    def create(
        self, name: str, tenant: str | None = None, collection: str | None = None
    ) -> CreatedKey:
        """A new key for ``tenant`` (default: a tenant named after the key, created if new)."""
        name = name.strip()
        if not name or len(name) > 200:
            raise ValidationFailed("a key name must have 1 to 200 characters")
        tenant_id = (tenant or name).strip()
        if not tenant_id or len(tenant_id) > 100:
            raise ValidationFailed("a tenant name must have 1 to 100 characters")
        key_id = secrets.token_hex(6)
        key = f"{KEY_PREFIX}{key_id}{secrets.token_urlsafe(24)}"
        secret = f"{SECRET_PREFIX}{secrets.token_urlsafe(32)}"
        now = utcnow()
        record = ApiKey(
            id=key_id,
            key_hash=_hash(key),
            secret=secret,
            tenant_id=tenant_id,
            name=name,
            collection=collection,
            created_at=now,
        )
        with self.db.session() as session:
            if session.get(Tenant, tenant_id) is None:
                session.add(Tenant(id=tenant_id, created_at=now))
                session.flush()
            session.add(record)
        return CreatedKey(key=key, secret=secret, record=record)

    def list(self) -> list[ApiKey]:
        with self.db.read() as session:
            return list(session.scalars(select(ApiKey).order_by(ApiKey.created_at)))

    def revoke(self, key_or_id: str) -> ApiKey:
        key_id = self._id_of(key_or_id)
        with self.db.session() as session:
            record = session.get(ApiKey, key_id)
            if record is None:
                raise NotFound(f"no key {key_id!r}")
            if record.revoked_at is None:
                record.revoked_at = utcnow()
            return record

    @staticmethod
    def _id_of(key_or_id: str) -> str:
        value = key_or_id.strip()
        if value.startswith(KEY_PREFIX):
            return value[len(KEY_PREFIX) : len(KEY_PREFIX) + 12]
        return value

    def lookup(self, key: str) -> ApiKey | None:
        """The record of a full key, revoked or not (hash lookup; no plaintext key is stored)."""
        with self.db.read() as session:
            record = session.scalar(select(ApiKey).where(ApiKey.key_hash == _hash(key)))
        if record is not None and not hmac.compare_digest(record.key_hash, _hash(key)):
            return None  # pragma: no cover - defensive
        return record

    def cached_principal(self, key: str) -> Principal | None:
        """A recent successful authentication of ``key``, without touching the database."""
        if self.cache_seconds <= 0:
            return None
        hit = self._cache.get(_hash(key))
        if hit is None or hit[1] < time.monotonic():
            return None
        return hit[0]

    def authenticate(self, key: str) -> Principal:
        """The caller behind ``key``; successes are cached ``cache_seconds`` (revocation
        takes effect within that time), failures never are."""
        cached = self.cached_principal(key)
        if cached is not None:
            return cached
        principal = self._authenticate(key)
        if self.cache_seconds > 0:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[_hash(key)] = (principal, time.monotonic() + self.cache_seconds)
        return principal

    def _authenticate(self, key: str) -> Principal:
        if not key:
            raise Unauthorized("missing API key")
        record = self.lookup(key)
        if record is None:
            raise Unauthorized("invalid API key")
        if record.revoked_at is not None:
            raise Forbidden("this API key has been revoked")
        return Principal(
            tenant_id=record.tenant_id,
            key_id=record.id,
            secret=record.secret,
            collection=record.collection,
        )

    def secret_of(self, key_id: str) -> str | None:
        with self.db.read() as session:
            record = session.get(ApiKey, key_id)
        return record.secret if record is not None else None
