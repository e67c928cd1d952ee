"""The `opensight` command: analyze locally, serve the API, manage keys and jobs."""

from __future__ import annotations

import json
import os
import platform
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from . import __version__
from .config import Settings
from .errors import OpenSightError

if TYPE_CHECKING:
    from .localrun import LocalResult
    from .services.container import Container

app = typer.Typer(
    help="OpenSight: self-hosted image recognition.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
keys_app = typer.Typer(help="Manage API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
jobs_app = typer.Typer(help="Inspect jobs of every tenant (operator view).", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")

out = Console()
err = Console(stderr=True, soft_wrap=True)  # one line per message, greppable in logs

DataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Data directory (default: OPENSIGHT_DATA_DIR or the platform's user data dir).",
        envvar=[],
    ),
]


def settings_for(data_dir: Path | None) -> Settings:
    settings = Settings()
    if data_dir is not None:
        settings = settings.model_copy(update={"data_dir": data_dir.expanduser().resolve()})
    return settings


def fail(exc: OpenSightError, code: int = 1) -> NoReturn:
    err.print(f"[red]error[/red] ({exc.type}): {escape(exc.detail)}")
    raise typer.Exit(code)


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, default=str) + "\n")
    sys.stdout.flush()


def _show_version(value: bool) -> None:
    if value:
        sys.stdout.write(f"opensight {__version__}\n")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    pass


# -------------------------------------------------------------------- analyze
@app.command()
def analyze(
    sources: Annotated[
        list[str],
        typer.Argument(
            metavar="PATH_OR_URL",
            help="Image files, folders (searched recursively for images) or http(s) URLs.",
        ),
    ],
    features: Annotated[
        str | None,
        typer.Option(help="Comma-separated analyzers to run (default: quality,metadata)."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per image on stdout, in input order.")
    ] = False,
    workers: Annotated[
        int | None,
        typer.Option(min=1, help="Images analyzed in parallel (default: min(4, CPU count))."),
    ] = None,
) -> None:
    """Analyze images in this process: no server, no database.

    Exit status: 0 when every image was analyzed, 1 when any failed (the others
    are still reported), 2 for a usage error such as an unknown feature.
    """
    from .localrun import LocalAnalyzer, default_workers, expand_sources

    try:
        runner = LocalAnalyzer(features)
    except OpenSightError as exc:
        fail(exc, code=2)
    paths = expand_sources(sources)
    if not paths:
        err.print(
            "[red]error[/red]: no image files found in "
            + ", ".join(escape(source) for source in sources)
        )
        raise typer.Exit(1)
    size = min(workers or default_workers(), len(paths))

    failed = 0
    rows: list[LocalResult] = []
    with _progress(len(paths)) as advance:
        for result in runner.run(paths, workers=size, on_done=advance):
            if as_json:
                print_json(result.to_json())
            elif result.ok:
                rows.append(result)
            if not result.ok:
                failed += 1
                if not as_json:
                    error = result.error or {}
                    err.print(
                        f"[red]failed[/red] {escape(result.source)}: "
                        f"({error.get('type')}) {escape(str(error.get('detail')))}"
                    )
    if not as_json:
        if rows:
            out.print(_results_table(rows, runner.features))
        if failed:
            err.print(f"{failed} of {len(paths)} image(s) failed")
    raise typer.Exit(1 if failed else 0)


@contextmanager
def _progress(total: int) -> Iterator[Any]:
    """A progress bar on stderr for more than one image; yields the per-image callback."""
    if total <= 1:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(
        TextColumn("analyzing"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        redirect_stdout=False,
        redirect_stderr=False,
    )
    task = progress.add_task("analyzing", total=total)
    with progress:
        yield lambda _result: progress.advance(task)


def _results_table(results: list[LocalResult], features: list[str]) -> Table:
    table = Table("file", *features)
    for result in results:
        values = result.results or {}
        table.add_row(
            Text(result.source), *(summarize(name, values.get(name)) for name in features)
        )
    return table


def summarize(feature: str, value: Any) -> Text:
    """A one-cell summary of one feature's result for the table view."""
    if not isinstance(value, dict):
        return Text("" if value is None else _short(value))
    if feature == "quality":
        label = str(value.get("label", "?"))
        colour = {"high": "green", "medium": "yellow", "low": "red"}.get(label, "")
        text = Text(label, style=colour)
        if isinstance(value.get("score"), (int, float)):
            text.append(f" {value['score']:.2f}")
        issues = value.get("issues") or []
        if issues:
            text.append(" " + ", ".join(map(str, issues)), style="red")
        return text
    if feature == "metadata":
        parts = [f"{value.get('format', '?')} {value.get('width', '?')}x{value.get('height', '?')}"]
        if value.get("animated"):
            parts.append(f"{value.get('frames')} frames")
        camera = value.get("camera") or {}
        make_model = " ".join(str(v) for v in (camera.get("make"), camera.get("model")) if v)
        if make_model:
            parts.append(make_model)
        if value.get("taken_at"):
            parts.append(str(value["taken_at"])[:10])
        if value.get("has_gps"):
            parts.append("GPS")
        return Text(", ".join(parts))
    items = []
    for key, item in value.items():
        if isinstance(item, (str, int, float, bool)) or item is None:
            items.append(f"{key}={_short(item)}")
        elif isinstance(item, (list, tuple)):
            items.append(f"{key}=[{len(item)}]")
        if len(items) == 4:
            break
    return Text(_short(" ".join(items), 60))


def _short(value: Any, width: int = 40) -> str:
    text = f"{value:.3g}" if isinstance(value, float) else str(value)
    return text if len(text) <= width else text[: width - 1] + "\u2026"


# ---------------------------------------------------------------------- serve
@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    data_dir: DataDirOption = None,
    workers: Annotated[
        int | None, typer.Option(help="In-process worker threads (default OPENSIGHT_WORKERS or 2).")
    ] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    no_workers: Annotated[
        bool,
        typer.Option(
            "--no-workers",
            help="Serve the API only; `opensight worker` processes run the jobs (scale-out).",
        ),
    ] = False,
) -> None:
    """Run the API server with an in-process worker pool (or none: --no-workers)."""
    import uvicorn

    from .api import create_app

    settings = settings_for(data_dir)
    try:
        application = create_app(settings, workers=0 if no_workers else workers)
    except OpenSightError as exc:
        fail(exc)
    err.print(f"OpenSight on http://{host}:{port}  (data: {settings.data_dir}, docs: /docs)")
    uvicorn.run(application, host=host, port=port, log_level=log_level, access_log=False)


# ----------------------------------------------------------------------- keys
def _container(data_dir: Path | None) -> Any:
    from .services.container import Container

    return Container(settings_for(data_dir))


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Argument(help="A name for the key.")],
    tenant: Annotated[
        str | None,
        typer.Option(help="Tenant the key belongs to (default: a tenant named after the key)."),
    ] = None,
    collection: Annotated[
        str | None, typer.Option(help="Bind the key to one collection (VisualSnoop API).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON line.")] = False,
    data_dir: DataDirOption = None,
) -> None:
    """Create an API key and its secret (the secret is shown once)."""
    try:
        created = _container(data_dir).keys.create(name, tenant=tenant, collection=collection)
    except OpenSightError as exc:
        fail(exc)
    record = created.record
    info = {
        "key": created.key,
        "secret": created.secret,
        "id": record.id,
        "name": record.name,
        "tenant": record.tenant_id,
        "collection": record.collection,
        "created_at": record.created_at.isoformat(),
    }
    if as_json:
        print_json(info)
        return
    out.print(f"key:    [bold]{created.key}[/bold]\nsecret: [bold]{created.secret}[/bold]")
    out.print(f"tenant: {record.tenant_id}   id: {record.id}")
    out.print("[yellow]Store the secret now: it is used to sign webhooks and HMAC requests.[/]")


@keys_app.command("list")
def keys_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    data_dir: DataDirOption = None,
) -> None:
    """List keys (never their secrets)."""
    records = _container(data_dir).keys.list()
    rows = [
        {
            "id": r.id,
            "name": r.name,
            "tenant": r.tenant_id,
            "collection": r.collection,
            "created_at": r.created_at.isoformat(),
            "revoked_at": r.revoked_at.isoformat() if r.revoked_at else None,
        }
        for r in records
    ]
    if as_json:
        print_json(rows)
        return
    table = Table("id", "name", "tenant", "collection", "created", "revoked")
    for row in rows:
        table.add_row(
            row["id"],
            row["name"],
            row["tenant"],
            row["collection"] or "",
            row["created_at"][:19],
            (row["revoked_at"] or "")[:19],
        )
    out.print(table)


@keys_app.command("revoke")
def keys_revoke(
    key: Annotated[str, typer.Argument(help="The key, or its id from `keys list`.")],
    data_dir: DataDirOption = None,
) -> None:
    """Revoke a key: it answers 403 from now on."""
    try:
        record = _container(data_dir).keys.revoke(key)
    except OpenSightError as exc:
        fail(exc)
    out.print(f"revoked {record.id} ({record.name})")


# ----------------------------------------------------------------------- jobs
@contextmanager
def _opened(data_dir: Path | None) -> Iterator[Container]:
    """A container on the data dir's database, closed after; database errors exit 1."""
    from sqlalchemy.exc import SQLAlchemyError

    container = _container(data_dir)
    try:
        yield container
    except SQLAlchemyError as exc:
        err.print(f"[red]error[/red] (database): {escape(_mask_secrets(str(exc), container))}")
        raise typer.Exit(1) from None
    finally:
        container.close()


def _job_json(job: Any) -> dict[str, Any]:
    from .services.analysis import job_view

    return {**job_view(job), "tenant": job.tenant_id}


@jobs_app.command("list")
def jobs_list(
    status: Annotated[
        str | None,
        typer.Option(
            help="Only jobs in this status (pending, processing, completed, skipped, failed, "
            "timeout, cancelled)."
        ),
    ] = None,
    limit: Annotated[
        int, typer.Option(min=1, max=10_000, help="At most this many, newest first.")
    ] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
    data_dir: DataDirOption = None,
) -> None:
    """List jobs of every tenant, newest first."""
    from .jobs.model import JobStatus

    if status is not None and status not in {s.value for s in JobStatus}:
        err.print(
            f"[red]error[/red]: unknown status {escape(status)!r}; one of: "
            + ", ".join(s.value for s in JobStatus)
        )
        raise typer.Exit(2)
    with _opened(data_dir) as container:
        jobs, _ = container.jobs.list(None, status=status, limit=limit)
    views = [_job_json(job) for job in jobs]
    if as_json:
        print_json(views)
        return
    if not views:
        err.print("no jobs" + (f" with status {status}" if status else ""))
        return
    table = Table("id", "tenant", "status", "features", "source", "created", "finished", "detail")
    for view in views:
        source = view["source"].get("url") or view["source"].get("image_id") or ""
        detail = view.get("reason") or (view.get("error") or {}).get("type") or ""
        table.add_row(
            view["id"],
            view["tenant"],
            view["status"],
            ",".join(view["features"]),
            Text(_short(source, 50)),
            view["created_at"][:19],
            (view["finished_at"] or "")[:19],
            detail,
        )
    out.print(table)


@jobs_app.command("show")
def jobs_show(
    job_id: Annotated[str, typer.Argument(metavar="ID", help="The job id.")],
    data_dir: DataDirOption = None,
) -> None:
    """Print one job as JSON (any tenant)."""
    with _opened(data_dir) as container:
        try:
            job = container.jobs.get(job_id)
        except OpenSightError as exc:
            fail(exc)
    sys.stdout.write(json.dumps(_job_json(job), indent=2, default=str) + "\n")


# --------------------------------------------------------------------- doctor
def mask_url(url: str) -> str:
    """The database URL with any password (user:password@ or password=...) replaced."""
    try:
        from sqlalchemy.engine import make_url

        masked = make_url(url).render_as_string(hide_password=True)
    except Exception:
        masked = re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)
    return re.sub(r"(?i)(password=)[^&;\s]*", r"\1***", masked)


def _mask_secrets(text: str, container: Any) -> str:
    try:
        from sqlalchemy.engine import make_url

        password = make_url(container.settings.resolved_database_url).password
    except Exception:
        password = None
    return text.replace(str(password), "***") if password else text


def _check_data_dir(path: Path) -> dict[str, Any]:
    report: dict[str, Any] = {
        "path": str(path),
        "existed": path.is_dir(),
        "writable": False,
        "error": None,
    }
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".doctor-", delete=True) as handle:
            handle.write(b"ok")
            handle.flush()
        report["writable"] = True
    except OSError as exc:
        report["error"] = f"{type(exc).__name__}: {exc.strerror or exc}"
    return report


def _check_database(settings: Settings) -> dict[str, Any]:
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from .services.container import Container
    from .storage.db import MIGRATIONS_DIR

    url = settings.resolved_database_url
    report: dict[str, Any] = {
        "url": mask_url(url),
        "backend": url.split(":", 1)[0].split("+")[0],
        "reachable": False,
        "revision": None,
        "head": None,
        "at_head": False,
        "error": None,
    }
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    report["head"] = ScriptDirectory.from_config(config).get_current_head()
    container = Container(settings)
    try:
        db = container.db  # connects and migrates to head
        with db.engine.connect() as connection:
            report["revision"] = MigrationContext.configure(connection).get_current_revision()
        report["reachable"] = True
        report["at_head"] = report["revision"] == report["head"]
    except Exception as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        report["error"] = _mask_secrets(f"{type(exc).__name__}: {first_line}", container)
    finally:
        container.close()
    return report


def _check_analyzers() -> list[dict[str, Any]]:
    from .analyzers import registry

    described = []
    for name, analyzer in registry.all_analyzers().items():
        try:
            described.append(analyzer.describe())
        except Exception as exc:
            described.append(
                {
                    "name": name,
                    "version": getattr(analyzer, "version", None),
                    "license": getattr(analyzer, "license", None),
                    "ready": False,
                    "missing": [f"readiness check failed: {type(exc).__name__}: {exc}"],
                }
            )
    return described


def _check_models(settings: Settings) -> list[dict[str, Any]]:
    """Every known model and whether it is installed (missing models are not a failure)."""
    from .runtime.inventory import describe_models

    try:
        return describe_models(settings)
    except Exception as exc:
        return [{"id": None, "installed": False, "error": f"{type(exc).__name__}: {exc}"}]


@app.command()
def doctor(
    data_dir: DataDirOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Check the installation: config, data dir, database, HEIF, analyzers.

    Exit status 0 when the data dir is writable and the database is reachable
    with its schema at the newest revision; 1 otherwise.
    """
    from .images import HEIF_AVAILABLE

    settings = settings_for(data_dir)
    data = _check_data_dir(settings.data_dir)
    database = _check_database(settings)
    ok = bool(data["writable"] and database["reachable"] and database["at_head"])
    report: dict[str, Any] = {
        "ok": ok,
        "version": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "config": {
            "data_dir": str(settings.data_dir),
            "database_url": mask_url(settings.resolved_database_url),
            "broker_url": mask_url(settings.broker_url) if settings.broker_url else None,
            "blob_url": settings.blob_url,
            "max_upload_bytes": settings.max_upload_bytes,
            "max_pixels": settings.max_pixels,
            "allow_private_urls": settings.allow_private_urls,
            "workers": settings.workers,
            "cpu_count": os.cpu_count(),
            "max_batch_sources": settings.max_batch_sources,
            "rate_limit_per_second": settings.rate_limit_per_second,
            "rate_limit_burst": settings.rate_limit_burst,
        },
        "data_dir": data,
        "database": database,
        "heif": HEIF_AVAILABLE,
        "analyzers": _check_analyzers(),
        "models": _check_models(settings),
    }
    if as_json:
        print_json(report)
    else:
        _print_doctor(report)
    raise typer.Exit(0 if ok else 1)


def _mark(good: bool) -> str:
    return "[green]ok[/green]" if good else "[red]FAIL[/red]"


def _print_doctor(report: dict[str, Any]) -> None:
    config, data, database = report["config"], report["data_dir"], report["database"]
    out.print(
        f"[bold]OpenSight {report['version']}[/bold]  Python {report['python']}  "
        f"({escape(report['platform'])})"
    )
    settings = Table("setting", "value", show_header=False, box=None, padding=(0, 2))
    for key, value in config.items():
        settings.add_row(key, Text(str(value)))
    out.print(settings)
    out.print(
        f"{_mark(data['writable'])}  data dir {escape(data['path'])} "
        + ("writable" if data["writable"] else f"not writable: {escape(str(data['error']))}")
    )
    if database["reachable"]:
        state = (
            f"schema at head ({database['revision']})"
            if database["at_head"]
            else f"schema at {database['revision']}, head is {database['head']}"
        )
        out.print(f"{_mark(database['at_head'])}  database {escape(database['url'])}: {state}")
    else:
        out.print(
            f"{_mark(False)}  database {escape(database['url'])} unreachable: "
            f"{escape(str(database['error']))}"
        )
    heif = "available" if report["heif"] else "missing (install pillow-heif for HEIC photos)"
    out.print(
        f"{'[green]ok[/green]' if report['heif'] else '[yellow]warn[/yellow]'}  HEIC/HEIF {heif}"
    )
    table = Table("analyzer", "version", "licence", "ready", "missing", title="analyzers")
    for item in report["analyzers"]:
        table.add_row(
            item["name"],
            str(item.get("version")),
            str(item.get("license")),
            _mark(bool(item.get("ready"))),
            Text("; ".join(item.get("missing") or [])),
        )
    out.print(table)
    if report.get("models"):
        models = Table("model", "tasks", "licence", "installed", title="models")
        for item in report["models"]:
            models.add_row(
                str(item.get("id")),
                ", ".join(item.get("tasks") or []),
                str(item.get("license")),
                "[green]yes[/green]"
                if item.get("installed")
                else Text(str(item.get("pull", "no"))),
            )
        out.print(models)
    out.print(
        "[green]all good[/green]"
        if report["ok"]
        else "[red]problems found[/red] (data dir or database)"
    )


from .cli_collections import collections_app, dedupe  # noqa: E402

app.add_typer(collections_app, name="collections")
app.command("dedupe")(dedupe)

from .cli_models import models_app  # noqa: E402

app.add_typer(models_app, name="models")

from .cli_ops import db_app, worker  # noqa: E402

app.add_typer(db_app, name="db")
app.command("worker")(worker)

from .cli_reviews import reviews_app  # noqa: E402

app.add_typer(reviews_app, name="reviews")


def main() -> None:
    from ._malloc import tune

    tune()
    app()
