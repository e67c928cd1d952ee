"""One Settings object for the whole process, read from ``OPENSIGHT_*`` variables."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import platformdirs
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("opensight", appauthor=False))


class Settings(BaseSettings):
    """Every knob of OpenSight; each has a default that works on a laptop."""

    model_config = SettingsConfigDict(env_prefix="OPENSIGHT_", extra="ignore")

    data_dir: Path = Field(default_factory=default_data_dir)
    database_url: str | None = None
    """SQLAlchemy URL; default is a SQLite file in the data dir."""
    index_url: str | None = None
    """Vector index for collections: ``qdrant://host:6333``; default usearch files in the data dir."""

    # ingest limits
    max_upload_bytes: int = 25 * 1024 * 1024
    max_pixels: int = 60_000_000
    allow_private_urls: bool = False
    url_connect_timeout: float = 5.0
    url_read_timeout: float = 15.0
    url_max_redirects: int = 5

    # jobs
    workers: int = 2
    job_lease_seconds: float = 60.0
    default_ttl_seconds: float | None = None
    sync_timeout_seconds: float = 60.0
    max_batch_sources: int = 1000

    # webhooks
    webhook_max_attempts: int = 6
    webhook_backoff_seconds: float = 20.0
    """First retry delay; doubles each try (20 s, 40 s, ... 5 tries span > 10 min)."""
    webhook_timeout_seconds: float = 10.0

    auth_cache_seconds: float = 1.0
    """How long a verified key is trusted without a database read (revocation delay)."""

    # rate limit per API key (token bucket); 0 disables
    rate_limit_per_second: float = 100.0
    rate_limit_burst: int = 200

    @cached_property
    def resolved_database_url(self) -> str:
        if self.database_url:
            url = self.database_url
            if url.startswith("postgresql://") or url.startswith("postgres://"):
                url = "postgresql+psycopg://" + url.split("://", 1)[1]
            return url
        return f"sqlite:///{self.data_dir / 'opensight.db'}"

    @property
    def is_embedded_database(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"
