"""Wires the parts together from one Settings object (API server and CLI alike)."""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Callable, Sequence
from functools import cached_property
from typing import IO, TYPE_CHECKING, Any

from ..analyzers.pipeline import Pipeline, TimingHook
from ..config import Settings
from ..errors import OpenSightError
from ..images import ImageLimits
from ..jobs.store import JobStore
from ..jobs.webhooks import WebhookDispatcher
from ..jobs.worker import JobOutcome, WorkerPool
from ..netguard import FetchPolicy
from ..runtime.sessions import configure as configure_runtime
from ..storage.db import Database
from ..storage.s3 import open_blob_store
from ..storage.tables import Job
from .analysis import AnalysisService, job_view
from .images import ImageService
from .keys import KeyService
from .payloads import webhook_body

if TYPE_CHECKING:
    from ..collections.service import CollectionService
    from ..compat.imageintelligence.service import ImageIntelligenceService
    from ..jobs.dispatch import CeleryDispatcher
    from .reviews import ReviewService

log = logging.getLogger("opensight")


class DataDirLocked(OpenSightError):
    type, title, status = "data_dir_locked", "Another OpenSight server uses this data dir", 409


class Container:
    def __init__(self, settings: Settings, on_timing: TimingHook | None = None) -> None:
        self.settings = settings
        self.on_timing = on_timing
        self.on_job_finished: Callable[[Job, JobOutcome], None] | None = None
        self._lock_file: IO[str] | None = None
        self.workers: WorkerPool | None = None
        self.webhooks: WebhookDispatcher | None = None
        configure_runtime(settings)  # model dir, providers, batch limits follow these settings

    @cached_property
    def db(self) -> Database:
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        db = Database(self.settings.resolved_database_url)
        db.upgrade()
        return db

    @cached_property
    def keys(self) -> KeyService:
        return KeyService(self.db, cache_seconds=self.settings.auth_cache_seconds)

    @cached_property
    def jobs(self) -> JobStore:
        if self.settings.broker_url:  # scale-out: new jobs go to Celery by id
            from ..jobs.dispatch import DispatchingJobStore

            return DispatchingJobStore(self.db, self.dispatcher)
        return JobStore(self.db)

    @cached_property
    def dispatcher(self) -> CeleryDispatcher:
        from ..jobs.dispatch import CeleryDispatcher

        assert self.settings.broker_url, "no broker configured"
        return CeleryDispatcher(self.settings.broker_url, self.queue_for)

    def queue_for(self, features: Sequence[str]) -> str:
        """Broker queue of a job: ``gpu`` when any analyzer it runs needs a model."""
        from ..analyzers import registry

        try:
            names = registry.resolve_order(features)
            needs_model = any(registry.get(name).model is not None for name in names)
        except OpenSightError:  # unknown here (older worker): a worker fails it clearly
            needs_model = False
        return self.settings.gpu_queue if needs_model else self.settings.cpu_queue

    @cached_property
    def images(self) -> ImageService:
        limits = ImageLimits(self.settings.max_upload_bytes, self.settings.max_pixels)
        return ImageService(self.db, open_blob_store(self.settings), limits)

    @cached_property
    def pipeline(self) -> Pipeline:
        return Pipeline(on_timing=self.on_timing, defaults=self.settings.analyzer_options)

    @cached_property
    def analysis(self) -> AnalysisService:
        return AnalysisService(
            self.settings,
            self.images,
            self.jobs,
            self.pipeline,
            notify_workers=self.notify_workers,
            on_retried=self._job_retried,
        )

    @cached_property
    def reviews(self) -> ReviewService:
        from .reviews import ReviewService

        return ReviewService(self.db, on_decided=lambda r: self.imageintelligence.review_decided(r))

    @cached_property
    def imageintelligence(self) -> ImageIntelligenceService:
        from ..compat.imageintelligence.service import ImageIntelligenceService

        return ImageIntelligenceService(
            self.db,
            self.keys,
            self.analysis,
            self.jobs,
            self.reviews,
            notify_webhooks=lambda: self.webhooks.notify() if self.webhooks else None,
        )

    @cached_property
    def collections(self) -> CollectionService:
        from ..collections.index import open_backend
        from ..collections.service import CollectionService
        from ..netguard import fetch_bytes

        url = self.settings.index_url
        analysis = self.analysis
        return CollectionService(
            self.db,
            self.images,
            open_backend(url, self.settings.data_dir, self.settings.index_ivf_threshold),
            load=analysis.load,
            fetch_url=lambda u: fetch_bytes(u, analysis.fetch_policy),
        )

    def notify_workers(self, count: int) -> None:
        if self.workers is not None:
            self.workers.notify(count)

    def _job_finished(self, job: Job, outcome: JobOutcome) -> None:
        if job.webhook_url and self.webhooks is not None:
            self.webhooks.notify()
        if (job.options or {}).get("api") == "imageintelligence":  # settles its detect request
            self.imageintelligence.job_finished(job)
        if self.on_job_finished is not None:
            self.on_job_finished(job, outcome)

    def _job_retried(self, job: Job) -> None:
        if (job.options or {}).get("api") == "imageintelligence":  # its request is open again
            self.imageintelligence.job_retried(job)

    def _secret_for(self, job: Job) -> str | None:
        return self.keys.secret_of(job.key_id) if job.key_id else None

    def start_background(self, workers: int | None = None) -> None:
        """Start the worker pool and webhook delivery; resume unfinished jobs."""
        size = self.settings.workers if workers is None else workers
        if self.settings.is_embedded_database:
            self._lock_data_dir()
            resumed = self.jobs.requeue_all_processing()
            if resumed:
                log.info("resumed %d unfinished job(s)", resumed)
        self.workers = WorkerPool(
            self.jobs,
            self.analysis.run_job,
            workers=size,
            lease_seconds=self.settings.job_lease_seconds,
            on_finished=self._job_finished,
        )
        self.warm_up()
        self.workers.start()
        self.start_webhooks()

    def start_webhooks(self) -> None:
        """Deliver due webhooks from this process (claimed per job: once across processes)."""
        policy = FetchPolicy(
            allow_private=self.settings.allow_private_urls,
            connect_timeout=self.settings.url_connect_timeout,
            read_timeout=self.settings.webhook_timeout_seconds,
            max_redirects=0,
        )
        self.webhooks = WebhookDispatcher(
            self.jobs,
            lambda job: webhook_body(job, job_view),
            self._secret_for,
            policy,
            max_attempts=self.settings.webhook_max_attempts,
            backoff_seconds=self.settings.webhook_backoff_seconds,
        )
        self.webhooks.start()

    def warm_up(self) -> None:
        """Run the default analyzers once on a tiny image so the first real job is not slow
        (lazy imports, OpenCV's first-call set-up); failures here are only logged."""
        import numpy as np

        from ..analyzers import registry
        from ..images import DecodedImage

        rng = np.random.default_rng(0)
        image = DecodedImage.from_array(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
        try:
            self.pipeline.run_one(image, list(registry.DEFAULT_FEATURES))
        except Exception:
            log.exception("warm-up failed")

    def stop_background(self) -> None:
        if self.workers is not None:
            self.workers.stop()
        if self.webhooks is not None:
            self.webhooks.stop()
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def _lock_data_dir(self) -> None:
        """One server per embedded data dir: its start-up requeue assumes no other owner."""
        path = self.settings.data_dir / "server.lock"
        handle = open(path, "a+")  # noqa: SIM115 - held for the process lifetime
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            raise DataDirLocked(
                f"another OpenSight server is running on {self.settings.data_dir}"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._lock_file = handle

    def close(self) -> None:
        self.stop_background()
        if "collections" in self.__dict__:
            self.collections.close()
        if "dispatcher" in self.__dict__:
            self.dispatcher.close()
        if "db" in self.__dict__:
            self.db.dispose()

    def readiness(self) -> dict[str, Any]:
        db_ok = self.db.ping()
        workers_ok = self.workers.alive() if self.workers is not None else True
        checks = {"database": db_ok, "workers": workers_ok}
        if self.settings.broker_url:
            checks["broker"] = self.dispatcher.ping()
        ping_blobs = getattr(self.images.blobs, "ping", None)
        if ping_blobs is not None:  # object storage (S3): the bucket answers
            checks["blobs"] = bool(ping_blobs())
        return checks
