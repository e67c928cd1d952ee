"""`opensight collections ...` (in-process on the data dir) and `opensight dedupe DIR`.

The collection commands open the data dir's database and index directly, as
``opensight keys`` does, so they need no running server; a server on the same
data dir notices their changes on its next request (the index resyncs from the
database). ``dedupe`` needs nothing at all: no server, no data dir.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from .errors import OpenSightError

if TYPE_CHECKING:
    from .collections.service import CollectionService
    from .services.keys import Principal

collections_app = typer.Typer(
    help="Visual-similarity collections on this data dir (no server needed).",
    no_args_is_help=True,
)

out = Console()
err = Console(stderr=True, soft_wrap=True)

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Data directory (default: OPENSIGHT_DATA_DIR or the platform's user data dir).",
        envvar=[],
    ),
]
Tenant = Annotated[
    str,
    typer.Option(
        "--tenant",
        envvar="OPENSIGHT_TENANT",
        help="Tenant that owns the collection (the tenant of your API key).",
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _fail(exc: OpenSightError, code: int = 1) -> typer.Exit:
    err.print(f"[red]error[/red] ({exc.type}): {escape(exc.detail)}")
    return typer.Exit(code)


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, default=str) + "\n")
    sys.stdout.flush()


@contextmanager
def _service(data_dir: Path | None, tenant: str) -> Iterator[tuple[CollectionService, Principal]]:
    from .cli import settings_for
    from .services.container import Container
    from .services.keys import Principal

    container = Container(settings_for(data_dir))
    try:
        service = container.collections
        try:
            yield service, Principal(tenant_id=tenant, key_id="cli", secret="")
        finally:
            service.close()
    except OpenSightError as exc:
        raise _fail(exc) from None
    finally:
        container.close()


class _Bar:
    """A Rich progress bar on stderr: ``advance()`` by one, ``next_phase()`` for a new task."""

    def __init__(self, progress: Any, label: str, total: int) -> None:
        self.progress = progress
        self.task = progress.add_task(label, total=total) if progress is not None else None

    def advance(self, *_: Any) -> None:
        if self.progress is not None:
            self.progress.advance(self.task)

    def next_phase(self, label: str, total: int) -> None:
        if self.progress is not None:
            self.progress.update(self.task, visible=False)
            self.task = self.progress.add_task(label, total=total)


@contextmanager
def _progress(label: str, total: int) -> Iterator[_Bar]:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    if total <= 1:
        yield _Bar(None, label, total)
        return
    progress = Progress(
        TextColumn("{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        redirect_stdout=False,
        redirect_stderr=False,
        transient=False,
    )
    with progress:
        yield _Bar(progress, label, total)


def _image_files(inputs: list[str]) -> list[str]:
    from .localrun import expand_sources, is_url

    return [p for p in expand_sources(inputs) if not is_url(p)]


# ---------------------------------------------------------------- collections
@collections_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Collection name (letters, digits, _ . -).")],
    schema: Annotated[
        str | None,
        typer.Option(
            help='Metadata schema as JSON, e.g. \'{"sku": "string", "price": "number"}\'.'
        ),
    ] = None,
    embedder: Annotated[
        str,
        typer.Option(
            help="What ranks *similar* results, fixed for the collection's life: auto (the "
            "embedding model when installed, else classical), classical, or a model id."
        ),
    ] = "auto",
    tenant: Tenant = "default",
    data_dir: DataDir = None,
    as_json: AsJson = False,
) -> None:
    """Create a collection."""
    try:
        parsed = json.loads(schema) if schema else None
    except json.JSONDecodeError as exc:
        err.print(f"[red]error[/red]: --schema is not JSON: {exc}")
        raise typer.Exit(2) from None
    with _service(data_dir, tenant) as (service, who):
        try:
            row = service.create(who, name, parsed, embedder)
        except OpenSightError as exc:
            raise _fail(exc) from None
        view = service.collection_view(row, 0)
    if as_json:
        _print_json(view)
    else:
        out.print(
            f"created collection [bold]{escape(name)}[/bold] (tenant {escape(tenant)}, "
            f"embedder {escape(view['embedder'])})"
        )


@collections_app.command("list")
def list_(tenant: Tenant = "default", data_dir: DataDir = None, as_json: AsJson = False) -> None:
    """List the tenant's collections."""
    with _service(data_dir, tenant) as (service, who):
        views = [service.collection_view(row, n) for row, n in service.list_collections(who)]
    if as_json:
        _print_json(views)
        return
    table = Table("name", "images", "embedder", "created")
    for view in views:
        table.add_row(view["name"], str(view["images"]), view["embedder"], view["created_at"][:19])
    out.print(table)


@collections_app.command("delete")
def delete(
    name: Annotated[str, typer.Argument(help="Collection name.")],
    tenant: Tenant = "default",
    data_dir: DataDir = None,
) -> None:
    """Delete a collection and every image in it."""
    with _service(data_dir, tenant) as (service, who):
        try:
            service.delete(who, name)
        except OpenSightError as exc:
            raise _fail(exc) from None
    out.print(f"deleted collection {escape(name)}")


@collections_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="Collection name.")],
    paths: Annotated[
        list[str],
        typer.Argument(metavar="PATH", help="Image files or folders (searched recursively)."),
    ],
    metadata: Annotated[
        str | None, typer.Option(help="JSON metadata given to every image added.")
    ] = None,
    tenant: Tenant = "default",
    data_dir: DataDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON line per image.")] = False,
) -> None:
    """Add images; each one's id is its path relative to the folder given (or its file
    name), and adding it again replaces it. Exit 1 if any image failed."""
    from .services.analysis import Source

    meta = json.loads(metadata) if metadata else None
    files = _ids_for(paths)
    if not files:
        err.print("[red]error[/red]: no image files found")
        raise typer.Exit(1)
    failed = 0
    with _service(data_dir, tenant) as (service, who):
        try:
            service.get(who, name)
        except OpenSightError as exc:
            raise _fail(exc) from None
        with _progress("adding", len(files)) as bar:
            for path, image_id in files:
                try:
                    data = Path(path).read_bytes()
                    row, created = service.add(
                        who, name, Source(data=data), image_id=image_id, metadata=meta, replace=True
                    )
                    if as_json:
                        _print_json({"file": path, "id": row.id, "created": created})
                except (OpenSightError, OSError) as exc:
                    failed += 1
                    detail = exc.detail if isinstance(exc, OpenSightError) else str(exc)
                    if as_json:
                        _print_json({"file": path, "error": detail})
                    else:
                        err.print(f"[red]failed[/red] {escape(path)}: {escape(detail)}")
                bar.advance()
    if not as_json:
        out.print(f"added {len(files) - failed} of {len(files)} image(s) to {escape(name)}")
    raise typer.Exit(1 if failed else 0)


def _ids_for(inputs: list[str]) -> list[tuple[str, str]]:
    """(path, id) per image file: relative path under a folder, else the file name."""
    out_: list[tuple[str, str]] = []
    for item in inputs:
        if os.path.isdir(item):
            for path in _image_files([item]):
                out_.append((path, os.path.relpath(path, item).replace(os.sep, "/")[-100:]))
        else:
            out_.append((item, os.path.basename(item)[-100:]))
    return out_


@collections_app.command("search")
def search(
    name: Annotated[str, typer.Argument(help="Collection name.")],
    image: Annotated[str, typer.Argument(metavar="IMAGE", help="An image file, or --by-id ID.")],
    by_id: Annotated[
        bool, typer.Option("--by-id", help="IMAGE is the id of an image in it.")
    ] = False,
    limit: Annotated[int, typer.Option(min=1, max=100)] = 10,
    match: Annotated[
        str | None, typer.Option(help="Only these matches: exact,near_duplicate,similar.")
    ] = None,
    min_score: Annotated[float, typer.Option(min=0.0, max=1.0)] = 0.5,
    tenant: Tenant = "default",
    data_dir: DataDir = None,
    as_json: AsJson = False,
) -> None:
    """Search a collection by image (or by id)."""
    from .collections.service import SearchRequest, parse_matches
    from .services.analysis import Source

    with _service(data_dir, tenant) as (service, who):
        try:
            request = SearchRequest(limit, min_score, parse_matches(match))
            if by_id:
                results = service.search(who, name, request, by_id=image)
            else:
                data = Path(image).read_bytes()
                results = service.search(who, name, request, source=Source(data=data))
        except OpenSightError as exc:
            raise _fail(exc) from None
        except OSError as exc:
            err.print(f"[red]error[/red]: cannot read {escape(image)}: {exc.strerror or exc}")
            raise typer.Exit(1) from None
    if as_json:
        _print_json({"results": results})
        return
    if not results:
        err.print("no matches")
        return
    table = Table("id", "score", "match", "metadata")
    for hit in results:
        table.add_row(
            Text(hit["id"]),
            f"{hit['score']:.4f}",
            hit["match"],
            Text(json.dumps(hit.get("metadata")) if hit.get("metadata") else ""),
        )
    out.print(table)


@collections_app.command("duplicates")
def duplicates(
    name: Annotated[str, typer.Argument(help="Collection name.")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON line per group.")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV: group, match, id.")] = False,
    tenant: Tenant = "default",
    data_dir: DataDir = None,
) -> None:
    """Every group of exact / near-duplicate images in a collection."""
    with _service(data_dir, tenant) as (service, who):
        try:
            groups = list(service.duplicates(who, name))
        except OpenSightError as exc:
            raise _fail(exc) from None
    if as_json:
        for group in groups:
            _print_json(group)
        return
    if as_csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(["group", "match", "id"])
        for number, group in enumerate(groups, 1):
            for member in group["images"]:
                writer.writerow([number, group["match"], member["id"]])
        return
    if not groups:
        err.print("no duplicates")
        return
    table = Table("group", "match", "images")
    for number, group in enumerate(groups, 1):
        table.add_row(
            str(number), group["match"], Text(", ".join(i["id"] for i in group["images"]))
        )
    out.print(table)


# ---------------------------------------------------------------------- dedupe
def dedupe(
    paths: Annotated[
        list[str], typer.Argument(metavar="PATH", help="Folders (searched recursively) or files.")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON line per group.")] = False,
    as_csv: Annotated[
        bool, typer.Option("--csv", help="CSV: group, match, keep (the best copy), file.")
    ] = False,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Images processed in parallel (default: up to 4).")
    ] = None,
) -> None:
    """Find exact and near-duplicate images in folders: no server, no data dir.

    Near-duplicates survive crops, small rotations, rescaling, recompression,
    brightness/contrast changes, grayscale and overlaid text or logos. In each
    group the copy with the most pixels comes first (``keep``). Exit status: 0
    when every file was read, 1 when any failed (the others are still grouped),
    2 for a usage error.
    """
    from .collections.dedupe import dedupe as run_dedupe
    from .localrun import LocalAnalyzer, default_workers

    if as_json and as_csv:
        err.print("[red]error[/red]: choose --json or --csv, not both")
        raise typer.Exit(2)
    files = _image_files(paths)
    if not files:
        err.print("[red]error[/red]: no image files found in " + ", ".join(map(escape, paths)))
        raise typer.Exit(1)
    loader = LocalAnalyzer(features="metadata")
    size = min(workers or default_workers(), len(files))
    with _progress("reading", len(files)) as bar:
        result = run_dedupe(
            files,
            loader.load,
            size,
            on_signals=bar.advance,
            on_read=lambda n: bar.next_phase("comparing", n),
            on_compared=bar.advance,
        )
    for path, error in result.failed:
        err.print(
            f"[red]failed[/red] {escape(path)}: ({error.get('type')}) {escape(str(error.get('detail')))}"
        )
    if as_json:
        for group in result.groups:
            _print_json(group.to_json())
    elif as_csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(["group", "match", "keep", "file", "width", "height", "bytes"])
        for number, group in enumerate(result.groups, 1):
            for index, info in enumerate(group.files):
                writer.writerow([number, str(group.match), "yes" if index == 0 else "no",
                                 info.path, info.width, info.height, info.bytes])  # fmt: skip
    else:
        if result.groups:
            table = Table("group", "match", "keep", "duplicates")
            for number, group in enumerate(result.groups, 1):
                table.add_row(
                    str(number),
                    str(group.match),
                    Text(group.files[0].path),
                    Text("\n".join(f.path for f in group.files[1:])),
                )
            out.print(table)
        dupes = sum(len(g.files) - 1 for g in result.groups)
        err.print(
            f"{len(files)} file(s): {len(result.groups)} group(s), {dupes} duplicate(s)"
            + (f", {len(result.failed)} failed" if result.failed else "")
        )
    raise typer.Exit(1 if result.failed else 0)
