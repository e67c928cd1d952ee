"""VisualSnoop's operations on top of the native collections service.

A VisualSnoop key pair belongs to one collection, and its URLs name none. The
collection a request works on is therefore:

* the one a key is bound to (``opensight keys create NAME --collection C``);
* for an unbound key, ``visualsnoop`` -- or the name in the endpoint when the client
  is pointed at ``/api/v1/collections/<name>`` (a bound key may only name its own);
* created in the key's tenant on first use, like a VisualSnoop collection that
  exists as soon as its keys do.

Matching is the native service's: only ``exact`` and ``near_duplicate`` results are
returned (VisualSnoop finds copies of an image; "similar" would make an absent
image look found), best first, at most 100.
"""

from __future__ import annotations

from typing import Any

from ...collections.matching import Match
from ...collections.service import CollectionService, SearchRequest, encode_cursor
from ...errors import Conflict, NotFound
from ...services.analysis import Source
from ...services.keys import Principal
from ...storage.tables import Collection
from . import views

DEFAULT_COLLECTION = "visualsnoop"
SEARCH = SearchRequest(limit=100, matches=frozenset({Match.EXACT, Match.NEAR_DUPLICATE}))


class VisualSnoopCollection:
    """One caller's collection, with VisualSnoop's verbs; replies are VisualSnoop dicts."""

    def __init__(
        self, service: CollectionService, principal: Principal, name: str | None = None
    ) -> None:
        self.service = service
        self.principal = principal
        self.name = name or principal.collection or DEFAULT_COLLECTION

    def ensure(self) -> Collection:
        """The collection, created in the caller's tenant if it does not exist yet."""
        try:
            return self.service.get(self.principal, self.name)
        except NotFound:
            try:
                return self.service.create(self.principal, self.name)
            except Conflict:  # created by a concurrent request
                return self.service.get(self.principal, self.name)

    def info(self) -> dict[str, Any]:
        self.ensure()
        return views.collection(self.name, self.principal.tenant_id)

    def add(self, data: bytes, image_id: str | None, replace: bool) -> tuple[dict[str, Any], int]:
        """POST (never overwrites: 409) or PUT (creates or replaces)."""
        self.ensure()
        try:
            row, created = self.service.add(
                self.principal, self.name, Source(data=data), image_id, None, replace
            )
        except Conflict:
            raise Conflict(
                f"image {image_id!r} already exists in collection {self.name!r}; "
                "update it with PUT (add_image(..., update_existing=True))"
            ) from None
        if created:
            return views.image(self.name, row, "Added", 201), 201
        return views.image(self.name, row, "Updated", 200), 200

    def get(self, image_id: str) -> dict[str, Any]:
        self.ensure()
        row = self.service.get_image(self.principal, self.name, image_id)
        return views.image(self.name, row, "OK", 200)

    def delete(self, image_id: str) -> dict[str, Any]:
        self.ensure()
        row = self.service.get_image(self.principal, self.name, image_id)
        self.service.delete_image(self.principal, self.name, image_id)
        return views.image(self.name, row, "Deleted", 200)

    def list(self, start: str | None, count: int) -> dict[str, Any]:
        """Newest first, from image ``start`` (included); ``next_image_id`` starts the next page."""
        self.ensure()
        cursor = None
        if start is not None:
            first = self.service.get_image(self.principal, self.name, start)
            cursor = encode_cursor(first.key + 1)  # keys below key + 1: ``start`` included
        rows, next_cursor = self.service.list_images(self.principal, self.name, cursor, count)
        next_id = None
        if next_cursor is not None:
            following, _ = self.service.list_images(self.principal, self.name, next_cursor, 1)
            next_id = following[0].id if following else None
        return views.images(self.name, rows, next_id)

    def search(self, data: bytes) -> dict[str, Any]:
        self.ensure()
        found = self.service.search(self.principal, self.name, SEARCH, source=Source(data=data))
        return views.search(self.name, found)

    def search_by_id(self, image_id: str) -> dict[str, Any]:
        self.ensure()
        query = self.service.get_image(self.principal, self.name, image_id)
        found = self.service.search(self.principal, self.name, SEARCH, by_id=image_id)
        return views.search(self.name, found, query)
