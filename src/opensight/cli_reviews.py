"""`opensight reviews list|confirm|reject`: the operators' side of the review queue.

Runs in-process on the data dir's database (no server needed), across tenants like
``opensight jobs``. A decision made here finishes a waiting Image Intelligence request
and arms its webhook; the server's dispatcher delivers it.
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

from .errors import OpenSightError

reviews_app = typer.Typer(
    help="The human-in-the-loop review queue (every tenant; no server needed).",
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
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]
Note = Annotated[str | None, typer.Option("--note", help="A note kept with the decision.")]
Reviewer = Annotated[
    str | None,
    typer.Option("--reviewer", envvar="USER", help="Who decided (default: $USER)."),
]


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, default=str) + "\n")
    sys.stdout.flush()


def _view(row: Any) -> dict[str, Any]:
    from .services.reviews import review_view

    return {**review_view(row), "tenant": row.tenant_id}


@reviews_app.command("list")
def reviews_list(
    status: Annotated[str, typer.Option(help="pending, confirmed, rejected or all.")] = "pending",
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's reviews.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="At most this many.")] = 100,
    as_json: AsJson = False,
    data_dir: DataDir = None,
) -> None:
    """List reviews, oldest first (the order to work the queue in)."""
    from .cli import _opened

    with _opened(data_dir) as container:
        try:
            rows, _ = container.reviews.list(
                tenant, None if status == "all" else status, limit=limit
            )
        except OpenSightError as exc:
            err.print(f"[red]error[/red] ({exc.type}): {escape(exc.detail)}")
            raise typer.Exit(2) from None
    views = [_view(row) for row in rows]
    if as_json:
        _print_json(views)
        return
    if not views:
        err.print("no reviews" + ("" if status == "all" else f" with status {status}"))
        return
    table = Table("id", "tenant", "status", "label", "confidence", "box", "job", "created")
    for view in views:
        box = view["box"]
        table.add_row(
            view["id"],
            Text(view["tenant"]),
            view["status"],
            Text(view["label"]),
            f"{view['confidence']:.3f}",
            ",".join(str(round(v)) for v in box) if box else "",
            view["job_id"],
            view["created_at"][:19],
        )
    out.print(table)


def _decide(
    review_id: str,
    decision: str,
    note: str | None,
    reviewer: str | None,
    as_json: bool,
    data_dir: Path | None,
) -> None:
    from .cli import _opened

    with _opened(data_dir) as container:
        try:
            row = container.reviews.decide(
                review_id, None, decision, note, f"cli:{reviewer}" if reviewer else "cli"
            )
        except OpenSightError as exc:
            err.print(f"[red]error[/red] ({exc.type}): {escape(exc.detail)}")
            raise typer.Exit(1) from None
    if as_json:
        _print_json(_view(row))
        return
    out.print(f"{row.status} {row.id} ({escape(row.label)}, {row.confidence:.3f})")


@reviews_app.command("confirm")
def reviews_confirm(
    review_id: Annotated[str, typer.Argument(metavar="ID", help="The review id.")],
    note: Note = None,
    reviewer: Reviewer = None,
    as_json: AsJson = False,
    data_dir: DataDir = None,
) -> None:
    """Confirm an object: the model was right."""
    _decide(review_id, "confirm", note, reviewer, as_json, data_dir)


@reviews_app.command("reject")
def reviews_reject(
    review_id: Annotated[str, typer.Argument(metavar="ID", help="The review id.")],
    note: Note = None,
    reviewer: Reviewer = None,
    as_json: AsJson = False,
    data_dir: DataDir = None,
) -> None:
    """Reject an object: it is not what the model said."""
    _decide(review_id, "reject", note, reviewer, as_json, data_dir)
