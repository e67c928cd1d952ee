"""`opensight models ...`: list, pull, remove and locate neural model weights.

Works on the model dir alone (``OPENSIGHT_MODEL_DIR`` or ``<data dir>/models``):
no server and no database needed, so weights can be pulled before first start
or on another machine and copied over for offline hosts.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from .config import Settings
from .errors import NotFound, OpenSightError, ValidationFailed

models_app = typer.Typer(
    help="Neural models: list, pull (download + verify), remove.", no_args_is_help=True
)

out = Console()
err = Console(stderr=True, soft_wrap=True)

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Data directory; models live in <data dir>/models unless OPENSIGHT_MODEL_DIR is set.",
        envvar=[],
    ),
]


def _settings(data_dir: Path | None) -> Settings:
    settings = Settings()
    if data_dir is not None:
        settings = settings.model_copy(update={"data_dir": data_dir.expanduser().resolve()})
    return settings


def _fail(exc: OpenSightError) -> typer.Exit:
    err.print(f"[red]error[/red] ({exc.type}): {escape(exc.detail)}")
    return typer.Exit(2 if isinstance(exc, (NotFound, ValidationFailed)) else 1)


@models_app.command("list")
def models_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
    data_dir: DataDir = None,
) -> None:
    """Every known model with its tasks, licence, size and whether it is installed."""
    from .runtime.inventory import describe_models

    rows = describe_models(_settings(data_dir))
    if as_json:
        sys.stdout.write(json.dumps(rows) + "\n")
        return
    if not rows:
        err.print("no models are registered")
        return
    table = Table("id", "tasks", "licence", "size", "installed", "backend", "source")
    for row in rows:
        size = f"{row['size_mb']:.0f} MB" if row.get("size_mb") else "?"
        installed = "[green]yes[/green]" if row["installed"] else "no"
        if row["installed"] and not row.get("installed_verified"):
            installed += " [yellow](sha256 unpinned)[/yellow]"
        table.add_row(
            row["id"],
            ", ".join(row["tasks"]),
            str(row.get("license") or "?"),
            size,
            installed,
            str(row.get("backend") or ""),
            Text(f"{row.get('repo') or ''}@{row.get('revision') or ''}"),
        )
    out.print(table)
    out.print(f"model dir: {escape(str(_model_dir(data_dir)))}")


@models_app.command("pull")
def models_pull(
    model_id: Annotated[str, typer.Argument(metavar="ID", help="Model id from `models list`.")],
    force: Annotated[
        bool, typer.Option("--force", help="Download again even when installed.")
    ] = False,
    data_dir: DataDir = None,
) -> None:
    """Download a model from the Hugging Face Hub, verify its sha256, install it.

    Resumable: run it again after an interruption and it continues where it
    stopped. Honours HF_ENDPOINT, HF_TOKEN and HF_HUB_OFFLINE.
    """
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    from .runtime.pull import pull

    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    )
    tasks: dict[str, Any] = {}

    def on_progress(name: str, done: int, total: int | None) -> None:
        if name not in tasks:
            tasks[name] = progress.add_task(escape(name), total=total, completed=done)
        progress.update(tasks[name], completed=done, total=total)

    try:
        with progress:
            result = pull(
                model_id, force=force, settings=_settings(data_dir), on_progress=on_progress
            )
    except OpenSightError as exc:
        raise _fail(exc) from None
    if result.already_installed:
        err.print(f"{model_id} is already installed at {escape(str(result.path))} (use --force)")
        return
    for item in result.files:
        if item.verified:
            note = "[green]sha256 verified[/green]"
        elif item.checked_against == "hub-lfs-etag":
            note = "[yellow]unverified[/yellow]: no pinned sha256; matches the Hub's LFS hash"
        else:
            note = "[yellow]unverified[/yellow]: no pinned sha256 to compare"
        resumed = f", resumed at {item.resumed_from} B" if item.resumed_from else ""
        err.print(f"  {escape(item.name)}  {item.size_bytes} B  {note}{resumed}")
        if not item.verified:
            err.print(f"    computed sha256 {item.sha256} (recorded in the manifest)")
    err.print(f"[green]installed[/green] {model_id} at {escape(str(result.path))}")


@models_app.command("rm")
def models_rm(
    model_id: Annotated[str, typer.Argument(metavar="ID", help="Installed model id.")],
    data_dir: DataDir = None,
) -> None:
    """Remove an installed model's files (a loaded server keeps its copy until restart/unload)."""
    from .runtime import store

    settings = _settings(data_dir)
    try:
        removed = store.remove(model_id, settings)
    except OpenSightError as exc:
        raise _fail(exc) from None
    if not removed:
        raise _fail(NotFound(f"model {model_id!r} is not installed in {store.model_dir(settings)}"))
    err.print(f"removed {model_id}")


@models_app.command("dir")
def models_dir(data_dir: DataDir = None) -> None:
    """Print the model directory (OPENSIGHT_MODEL_DIR or <data dir>/models)."""
    sys.stdout.write(f"{_model_dir(data_dir)}\n")


def _model_dir(data_dir: Path | None) -> Path:
    from .runtime import store

    return store.model_dir(_settings(data_dir))
