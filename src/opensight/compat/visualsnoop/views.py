"""Native collection rows and search results in VisualSnoop's reply shapes.

Every reply carries ``message`` and ``status`` (the HTTP status again), as the client
reads them. ``collection_id`` is the native collection's name, which is how ``/v1``
addresses the same collection. ``image_time`` is when the image was stored (added or
last replaced), ISO 8601 in UTC: the 0.2 client passes it through without parsing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from ...storage.tables import CollectionImage


def image_time(when: datetime) -> str:
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def collection(name: str, user: str) -> dict[str, Any]:
    return {
        "collection_id": name,
        "collection_name": name,
        "user": user,
        "message": "OK",
        "status": 200,
    }


def image(name: str, row: CollectionImage, message: str, status: int) -> dict[str, Any]:
    return {
        "image_time": image_time(row.created_at),
        "collection_id": name,
        "image_id": row.id,
        "message": message,
        "status": status,
    }


def images(name: str, rows: Sequence[CollectionImage], next_image_id: str | None) -> dict[str, Any]:
    return {
        "collection_id": name,
        "images": [{"id": row.id, "image_time": image_time(row.created_at)} for row in rows],
        "next_image_id": next_image_id,
        "message": "OK",
        "status": 200,
    }


def results(native: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Native results (best first) as VisualSnoop's ``{"id", "rank"}``: ``rank`` is the
    position, 1 for the best; the native ``score`` and ``match`` ride along."""
    return [
        {"id": hit["id"], "rank": rank, "score": hit["score"], "match": hit["match"]}
        for rank, hit in enumerate(native, start=1)
    ]


def search(
    name: str, native: Sequence[dict[str, Any]], query: CollectionImage | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"collection_id": name, "results": results(native)}
    if query is not None:
        body["image_id"] = query.id
        body["image_time"] = image_time(query.created_at)
    body.update(message="OK", status=200)
    return body
