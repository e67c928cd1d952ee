"""One Settings object for the whole process, read from ``OPENSIGHT_*`` variables."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Annotated, Any

import platformdirs
from pydantic import Field, SecretStr
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
    index_ivf_threshold: Annotated[int, Field(ge=0)] = 100_000
    """Embedded index: a collection's vectors move from the HNSW to a trained IVF at this
    many (0: never). Lower trades a training pass for faster search sooner."""

    # scale-out (docs/deploy.md); each unset means the embedded default
    broker_url: str | None = None
    """Celery broker (``redis://host:6379/0`` or ``amqp://...``); default the in-process pool."""
    blob_url: str | None = None
    """Image bytes: ``s3://bucket/prefix``; default files under ``<data_dir>/blobs``."""
    s3_endpoint_url: str | None = None
    """S3-compatible endpoint (MinIO, Ceph, R2...); default AWS."""
    s3_region: str | None = None
    s3_access_key_id: str | None = None
    s3_secret_access_key: SecretStr | None = None
    """Default: boto3's own chain (AWS_* variables, instance role). Never logged or shown."""
    gpu_queue: str = "gpu"
    """Broker queue of jobs needing a model analyzer."""
    cpu_queue: str = "cpu"
    """Broker queue of jobs of classical analyzers only."""
    sweep_seconds: float = 15.0
    """How often a worker re-dispatches jobs whose lease expired or whose message was lost."""
    redispatch_seconds: float = 60.0
    """A pending job this old is sent again when its broker queue is empty."""

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
    sync_concurrency: int = 0
    """Sync analyses run at once per API process (0: the CPU count). More threads than cores
    only add switching and cache misses; callers beyond it wait their turn."""
    switch_interval_ms: Annotated[float, Field(ge=0.0, le=100.0)] = 1.0
    """Python's GIL switch interval in an API process (0: Python's default, 5 ms). When an
    analysis finishes, the event loop needs the GIL to hand the next queued call to the
    freed thread; while the other analysis thread runs Python code that can take the
    whole interval, with a core idle meanwhile."""
    max_batch_sources: int = 1000
    hitl_auto_threshold: Annotated[float, Field(ge=0.0, le=1.0)] = 0.5
    """Image Intelligence ``hitl: AUTO`` sends objects below this confidence to review
    (OWLv2 scores run low: calibrate to your detector and data)."""

    # webhooks
    webhook_max_attempts: int = 6
    webhook_backoff_seconds: float = 20.0
    """First retry delay; doubles each try (20 s, 40 s, ... 5 tries span > 10 min)."""
    webhook_timeout_seconds: float = 10.0

    auth_cache_seconds: float = 1.0
    """How long a verified key is trusted without a database read (revocation delay)."""
    url_signing_key: str | None = None
    """HMAC key of signed, expiring image URLs; default a random one kept in the database."""

    # rate limit per API key (token bucket); 0 disables
    rate_limit_per_second: float = 100.0
    rate_limit_burst: int = 200

    # models (runtime): where weights live, how sessions run and batch
    model_dir: Path | None = None
    """Installed models; default ``<data_dir>/models`` (env OPENSIGHT_MODEL_DIR)."""
    model_catalog: Path | None = None
    """JSON file of extra model specs (private mirrors, own fine-tunes), catalog fields."""
    providers: str | None = None
    """ONNX Runtime execution providers, comma-separated in order (``cuda,cpu`` or full names);
    default: TensorRT/CUDA when usable, else CPU."""
    model_threads: int | None = None
    """Intra-op threads per ONNX session; default: the CPUs this process may use (max 8)."""
    model_idle_seconds: float = 600.0
    """Unload a model unused this long (0 disables idle unload)."""
    max_loaded_models: int = 8
    """At most this many loaded model objects; the least recently used goes first."""
    batch_max_size: int = 16
    batch_max_wait_ms: float = 5.0
    batch_max_queue: int = 256
    """Items waiting per model batcher before callers get 503 ``overloaded``."""
    analyzer_options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Operator defaults under every request's analyzer options, as JSON, e.g.
    ``{"moderation": {"offensive": "suggestive"}}``; a request's own value wins. This is how
    compat APIs whose requests carry no options (CloudSight's ``offensive`` gate) are tuned."""

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
