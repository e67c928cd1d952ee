"""Operator commands of scale-out mode: `opensight db upgrade` and `opensight worker`."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Annotated

import typer

from .cli import DataDirOption, err, escape, fail, mask_url, settings_for
from .errors import OpenSightError

log = logging.getLogger("opensight")

db_app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade(data_dir: DataDirOption = None) -> None:
    """Migrate the database to the newest schema; run once before starting a new version."""
    from .storage.db import Database

    settings = settings_for(data_dir)
    url = settings.resolved_database_url
    if settings.is_embedded_database:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    database = Database(url)
    try:
        database.upgrade()
    except Exception as exc:
        detail = _describe(exc, url)
        err.print(f"[red]error[/red] (database {escape(mask_url(url))}): {escape(detail)}")
        raise typer.Exit(1) from None
    finally:
        database.dispose()
    err.print(f"database {escape(mask_url(url))} is at the newest schema")


def _describe(exc: Exception, url: str) -> str:
    """The first line of an error, with the database password (if any) masked."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    detail = f"{type(exc).__name__}: {first}"
    password = _password(url)
    return detail.replace(password, "***") if password else detail


def _password(url: str) -> str | None:
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).password
    except Exception:
        return None


def worker(
    queues: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated broker queues to take jobs from "
            "(default: both, OPENSIGHT_CPU_QUEUE and OPENSIGHT_GPU_QUEUE).",
        ),
    ] = None,
    concurrency: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Jobs run at once, as threads sharing one copy of each model "
            "(default: CPU count).",
        ),
    ] = None,
    webhooks: Annotated[
        bool,
        typer.Option(help="Also deliver due webhooks from this process (claimed per job)."),
    ] = True,
    metrics_port: Annotated[
        int | None,
        typer.Option(help="Serve Prometheus metrics of this worker on this port."),
    ] = None,
    log_level: Annotated[str, typer.Option(help="Log level.")] = "info",
    data_dir: DataDirOption = None,
) -> None:
    """Run jobs delivered by the broker (OPENSIGHT_BROKER_URL), as a Celery worker."""
    from .jobs.celery_app import register_run_task, worker_argv
    from .jobs.dispatch import DispatchingJobStore, Sweeper, TaskExecutor
    from .services.container import Container

    settings = settings_for(data_dir)
    if not settings.broker_url:
        err.print(
            "[red]error[/red]: `opensight worker` needs a broker: set OPENSIGHT_BROKER_URL "
            "(e.g. redis://127.0.0.1:6379/0); see docs/deploy.md"
        )
        raise typer.Exit(2)
    names = [q.strip() for q in (queues or "").split(",") if q.strip()] or [
        settings.cpu_queue,
        settings.gpu_queue,
    ]
    threads = concurrency or os.cpu_count() or 1
    on_timing = None
    if metrics_port is not None:
        on_timing = _serve_metrics(metrics_port)
    container = Container(settings, on_timing=on_timing)
    try:
        store = container.jobs  # connects (and migrates) the database
        assert isinstance(store, DispatchingJobStore)
        container.images  # noqa: B018 - open the blob store (an S3 client) before the first job
        container.pipeline  # noqa: B018 - a bad OPENSIGHT_ANALYZER_OPTIONS stops the start
    except OpenSightError as exc:
        fail(exc)
    except Exception as exc:  # database or blob store unreachable, bad URL
        url = settings.resolved_database_url
        err.print(f"[red]error[/red] (start-up): {escape(_describe(exc, url))}")
        raise typer.Exit(1) from None
    executor = TaskExecutor(
        store,
        container.analysis.run_job,
        lease_seconds=settings.job_lease_seconds,
        on_finished=container._job_finished,
    )
    sweeper = Sweeper(store, settings.sweep_seconds, settings.redispatch_seconds)
    register_run_task(container.dispatcher.app, executor.execute)
    container.warm_up()
    executor.start()
    sweeper.start()
    if webhooks:
        container.start_webhooks()
    err.print(
        f"OpenSight worker {executor.worker_id}: queues {','.join(names)}, {threads} thread(s), "
        f"broker {escape(mask_url(settings.broker_url))}"
    )
    try:
        container.dispatcher.app.worker_main(
            worker_argv(names, threads, log_level.upper(), f"opensight-{executor.worker_id}@%h")
        )
    finally:
        sweeper.stop()
        executor.stop()
        container.close()


def _serve_metrics(port: int) -> Callable[[str, float], None]:
    """Start a /metrics endpoint for this worker; returns the analyzer timing hook."""
    from prometheus_client import start_http_server

    from .api.metrics import Metrics

    metrics = Metrics()
    start_http_server(port, registry=metrics.registry)
    return metrics.observe_analyzer
