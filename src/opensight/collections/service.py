"""Collections: a tenant's named sets of images, searched by image or by id.

The database row is the truth about every image (its signals included); the
vector index is a copy that can always be rebuilt from it:

* adding writes the row (and the image's duplicate pairs) in one transaction,
  then adds the vectors to the index -- an acknowledged image is in the
  database, whatever happens to the process after;
* when this process opens a collection's index, and whenever another process
  changed the collection (its ``version`` moved), the index is reconciled with
  the database: missing keys are replayed, stale keys removed. A missing or
  unreadable index file is simply an empty index, rebuilt the same way;
* keys are never reused (a replaced image gets a new key), so a stale vector can
  never be mistaken for a newer image.

Duplicate pairs (exact and near-duplicate) are found when an image is added --
its own search -- and stored, so ``duplicates()`` is a grouping of stored pairs
and can stream a large collection.

A key bound to a collection (``Principal.collection``) may only touch that one.
"""

from __future__ import annotations

import atexit
import base64
import binascii
import json
import logging
import math
import re
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..errors import Conflict, Forbidden, NotFound, ValidationFailed
from ..images import DecodedImage
from ..jobs.model import utcnow
from ..services.analysis import Source
from ..services.images import ImageService
from ..services.keys import Principal
from ..signals import QUERY_FEATURES, STORED_FEATURES, Signals, compute_signals
from ..signals.descriptors import DESCRIPTOR_DIM, ClassicalEmbedder
from ..signals.hashes import ImageHashes, from_hex, to_bytes, to_hex
from ..signals.local import LocalFeatures
from ..storage.db import Database
from ..storage.tables import Collection, CollectionDuplicate, CollectionImage
from . import embedders
from .embedders import CollectionEmbedder
from .engine import Edge, Hit, SimilarSpace, duplicates_of, find, group_edges, rank_similar
from .index.base import CollectionIndex, IndexBackend
from .matching import MATCH_ORDER, SIMILAR_SCORE, Match, decide

log = logging.getLogger("opensight.collections")

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")
MAX_ID_LENGTH = 100
MAX_METADATA_BYTES = 16 * 1024
MAX_LIMIT = 100
SCHEMA_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "number": (int, float),
    "integer": (int,),
    "boolean": (bool,),
}
FLUSH_SECONDS = 60.0
_SIGNAL_CACHE = 2048
_REPLAY_BATCH = 1000

MAX_TEXT_LENGTH = 1000


class _Gathered:
    """Rows of a bulk rebuild in arrays sized once (no second copy when they are joined)."""

    def __init__(self, capacity: int, dim: int) -> None:
        self.keys = np.empty(capacity, np.int64)
        self.vectors = np.empty((capacity, dim), np.float32)
        self.hashes = np.empty((capacity, 8), np.uint8)
        self.size = 0

    def append(self, keys: np.ndarray, vectors: np.ndarray, hashes: np.ndarray) -> None:
        end = self.size + len(keys)
        self.keys[self.size : end] = keys
        self.vectors[self.size : end] = vectors
        self.hashes[self.size : end] = hashes
        self.size = end

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = self.size
        return self.keys[:n], self.vectors[:n], self.hashes[:n]


#: Exact and near-duplicate signals are classical in every collection (see embedders).
_CLASSICAL = ClassicalEmbedder()


def neural_index_name(collection_id: str) -> str:
    """The second index of a neural collection: its embedder's vectors."""
    return f"{collection_id}_emb"


def embedder_of(collection: Collection) -> CollectionEmbedder:
    return embedders.of_collection(collection.embedder, collection.dim)


@dataclass(frozen=True)
class SearchRequest:
    limit: int = 10
    min_score: float = SIMILAR_SCORE
    matches: frozenset[Match] = frozenset(Match)
    metadata: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_LIMIT:
            raise ValidationFailed(f"limit must be 1 to {MAX_LIMIT}")
        if not (0.0 <= self.min_score <= 1.0) or math.isnan(self.min_score):
            raise ValidationFailed("min_score must be between 0 and 1")
        if not self.matches:
            raise ValidationFailed("match must name at least one of exact, near_duplicate, similar")


def parse_matches(value: str | Sequence[str] | None) -> frozenset[Match]:
    if value is None:
        return frozenset(Match)
    items = value.split(",") if isinstance(value, str) else list(value)
    out = set()
    for item in items:
        item = str(item).strip()
        if not item:
            continue
        try:
            out.add(Match(item))
        except ValueError:
            raise ValidationFailed(
                f"unknown match {item!r}; one of exact, near_duplicate, similar"
            ) from None
    return frozenset(out)


class CollectionService:
    def __init__(
        self,
        db: Database,
        images: ImageService,
        backend: IndexBackend,
        load: Callable[[str, Source], DecodedImage],
        fetch_url: Callable[[str], bytes],
        flush_seconds: float = FLUSH_SECONDS,
    ) -> None:
        self.db = db
        self.images = images
        self.backend = backend
        self.load = load
        self.fetch_url = fetch_url
        self.flush_seconds = flush_seconds
        self._locks: dict[str, threading.RLock] = {}
        self._locks_guard = threading.Lock()
        self._synced: dict[str, int] = {}
        self._cache: OrderedDict[int, Signals] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._last_flush = time.monotonic()
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None

    # ================================================================ collections
    def _scope(self, principal: Principal, name: str) -> None:
        if principal.collection is not None and principal.collection != name:
            raise Forbidden(
                f"this key is bound to collection {principal.collection!r} and cannot use {name!r}"
            )

    def create(
        self,
        principal: Principal,
        name: str,
        metadata_schema: Mapping[str, Any] | None = None,
        embedder: str | None = None,
    ) -> Collection:
        """``embedder``: ``auto`` (None), ``classical`` or a model id; fixed for life."""
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise ValidationFailed(
                "a collection name has 1 to 100 characters: letters, digits, '_', '.', '-' "
                "(starting with a letter or digit)"
            )
        self._scope(principal, name)
        schema = check_schema(metadata_schema)
        chosen = embedders.choose(embedder)
        row = Collection(
            id=f"col_{uuid.uuid4().hex[:24]}",
            tenant_id=principal.tenant_id,
            name=name,
            metadata_schema=schema,
            embedder=chosen.name,
            dim=chosen.dim,
            version=0,
            created_at=utcnow(),
        )
        try:
            with self.db.session() as session:
                if self._find(session, principal.tenant_id, name) is not None:
                    raise Conflict(f"collection {name!r} exists")
                session.add(row)
        except IntegrityError:
            raise Conflict(f"collection {name!r} exists") from None
        return row

    @staticmethod
    def _find(session: Session, tenant_id: str, name: str) -> Collection | None:
        return session.scalar(
            select(Collection).where(Collection.tenant_id == tenant_id, Collection.name == name)
        )

    def get(self, principal: Principal, name: str) -> Collection:
        self._scope(principal, name)
        with self.db.read() as session:
            row = self._find(session, principal.tenant_id, name)
        if row is None:
            raise NotFound(f"no collection {name!r}")
        return row

    def count(self, collection: Collection) -> int:
        with self.db.read() as session:
            return int(
                session.scalar(
                    select(func.count())
                    .select_from(CollectionImage)
                    .where(CollectionImage.collection_id == collection.id)
                )
                or 0
            )

    def list_collections(self, principal: Principal) -> list[tuple[Collection, int]]:
        with self.db.read() as session:
            query = select(Collection).where(Collection.tenant_id == principal.tenant_id)
            if principal.collection is not None:
                query = query.where(Collection.name == principal.collection)
            rows = list(session.scalars(query.order_by(Collection.name)))
            counts = dict(
                session.execute(
                    select(CollectionImage.collection_id, func.count())
                    .where(CollectionImage.collection_id.in_([r.id for r in rows]))
                    .group_by(CollectionImage.collection_id)
                ).all()
            )
        return [(row, int(counts.get(row.id, 0))) for row in rows]

    def delete(self, principal: Principal, name: str) -> None:
        collection = self.get(principal, name)
        with self._lock(collection.id):
            with self.db.session() as session:
                session.execute(
                    delete(CollectionDuplicate).where(
                        CollectionDuplicate.collection_id == collection.id
                    )
                )
                session.execute(
                    delete(CollectionImage).where(CollectionImage.collection_id == collection.id)
                )
                session.execute(delete(Collection).where(Collection.id == collection.id))
            self.backend.drop(collection.id)
            if embedder_of(collection).neural:
                self.backend.drop(neural_index_name(collection.id))
            self._synced.pop(collection.id, None)

    def collection_view(self, collection: Collection, count: int | None = None) -> dict[str, Any]:
        return {
            "name": collection.name,
            "metadata_schema": collection.metadata_schema,
            "embedder": collection.embedder,
            "dim": collection.dim,
            "images": self.count(collection) if count is None else count,
            "created_at": collection.created_at.isoformat(),
        }

    # ===================================================================== index
    def _lock(self, collection_id: str) -> threading.RLock:
        with self._locks_guard:
            lock = self._locks.get(collection_id)
            if lock is None:
                lock = self._locks[collection_id] = threading.RLock()
            return lock

    def _version(self, collection_id: str) -> int | None:
        with self.db.read() as session:
            return session.scalar(select(Collection.version).where(Collection.id == collection_id))

    def index_for(self, collection: Collection) -> CollectionIndex:
        """The collection's descriptor index, reconciled with the database when it may be behind."""
        return self._indexes(collection)[0]

    def _indexes(self, collection: Collection) -> tuple[CollectionIndex, CollectionIndex | None]:
        """(descriptor + hash index, neural index or None), both reconciled when behind."""
        index = self.backend.open(collection.id, DESCRIPTOR_DIM)
        neural = None
        if embedder_of(collection).neural:
            neural = self.backend.open(neural_index_name(collection.id), collection.dim)
        synced = self._synced.get(collection.id)
        if synced is not None and self.backend.shared:
            return index, neural
        version = self._version(collection.id)
        if version is None:
            raise NotFound(f"no collection {collection.name!r}")
        if synced != version:
            with self._lock(collection.id):
                version = self._version(collection.id)
                if version is not None and self._synced.get(collection.id) != version:
                    self._reconcile(collection, index, CollectionImage.descriptor)
                    if neural is not None:
                        self._reconcile(collection, neural, CollectionImage.embedding)
                    self._synced[collection.id] = version
        self._start_flusher()
        return index, neural

    def _reconcile(self, collection: Collection, index: CollectionIndex, column: Any) -> None:
        """Make the index hold exactly the database's keys (replay / remove), with the
        vectors of ``column`` (the descriptor, or a neural collection's embedding)."""
        with self.db.read() as session:
            db_keys = np.array(
                list(
                    session.scalars(
                        select(CollectionImage.key).where(
                            CollectionImage.collection_id == collection.id
                        )
                    )
                ),
                dtype=np.int64,
            )
        have = index.keys()
        stale = np.setdiff1d(have, db_keys)
        missing = np.setdiff1d(db_keys, have)
        if stale.size:
            index.remove(stale)
        # An empty index (files lost, a new node) is rebuilt with one add: a large
        # collection then goes straight to the trained IVF instead of filling the
        # HNSW to the switch point first. Rows are read in batches either way.
        bulk = len(index) == 0 and missing.size > _REPLAY_BATCH
        gathered: _Gathered | None = None
        for start in range(0, missing.size, _REPLAY_BATCH):
            part = [int(k) for k in missing[start : start + _REPLAY_BATCH]]
            with self.db.read() as session:
                rows = [
                    r
                    for r in session.execute(
                        select(CollectionImage.key, column, CollectionImage.phash).where(
                            CollectionImage.key.in_(part)
                        )
                    ).all()
                    if r[1] is not None
                ]
            if rows:
                batch = (
                    np.array([r[0] for r in rows], np.int64),
                    np.stack([_vector(r[1]) for r in rows]),
                    np.stack([to_bytes(from_hex(r[2])) for r in rows]),
                )
                if bulk:
                    gathered = gathered or _Gathered(missing.size, batch[1].shape[1])
                    gathered.append(*batch)
                else:
                    index.add(*batch)
        if gathered is not None and gathered.size:
            index.add(*gathered.arrays())
        if stale.size or missing.size:
            log.info(
                "collection %s: index resynced from the database (%d replayed, %d removed)",
                collection.id,
                missing.size,
                stale.size,
            )
            index.flush()

    def _start_flusher(self) -> None:
        if self._flusher is not None or self.backend.shared:
            return
        with self._locks_guard:
            if self._flusher is None:
                self._flusher = threading.Thread(
                    target=self._flush_loop, name="opensight-index-flush", daemon=True
                )
                self._flusher.start()
                atexit.register(self.flush)

    def _flush_loop(self) -> None:
        while not self._stop.wait(self.flush_seconds):
            self.flush()

    def flush(self) -> None:
        flush = getattr(self.backend, "flush", None)
        if callable(flush):
            try:
                flush()
            except Exception:
                log.exception("saving the vector indexes failed")

    def close(self) -> None:
        self._stop.set()
        if self._flusher is not None:
            self._flusher.join(timeout=5)
        self.flush()
        self.backend.close()

    # ==================================================================== signals
    def _signals_of(self, keys: Sequence[int]) -> dict[int, Signals]:
        out: dict[int, Signals] = {}
        todo = []
        with self._cache_lock:
            for key in keys:
                cached = self._cache.get(key)
                if cached is None:
                    todo.append(key)
                else:
                    self._cache.move_to_end(key)
                    out[key] = cached
        if todo:
            with self.db.read() as session:
                rows = list(
                    session.scalars(select(CollectionImage).where(CollectionImage.key.in_(todo)))
                )
            with self._cache_lock:
                for row in rows:
                    signals = row_signals(row)
                    out[row.key] = signals
                    self._cache[row.key] = signals
                while len(self._cache) > _SIGNAL_CACHE:
                    self._cache.popitem(last=False)
        return out

    def _exact_keys(self, collection_id: str, hashes: ImageHashes) -> list[int]:
        with self.db.read() as session:
            return list(
                session.scalars(
                    select(CollectionImage.key).where(
                        CollectionImage.collection_id == collection_id,
                        or_(
                            CollectionImage.sha256 == hashes.sha256,
                            CollectionImage.pixel_sha256 == hashes.pixel_sha256,
                        ),
                    )
                )
            )

    def _resolve(
        self, principal: Principal, source: Source, keep_bytes: bool
    ) -> tuple[DecodedImage, str | None]:
        """Decode the source; with ``keep_bytes`` also store it as a tenant image."""
        tenant = principal.tenant_id
        if source.image_id is not None:
            return self.images.load(tenant, source.image_id), source.image_id
        data = source.data if source.data is not None else self.fetch_url(source.url or "")
        image = self.load(tenant, Source(data=data))
        if not keep_bytes:
            return image, None
        row, _ = self.images.store(tenant, data, full_check=False)
        return image, row.id

    # ===================================================================== images
    def add(
        self,
        principal: Principal,
        name: str,
        source: Source,
        image_id: str | None = None,
        metadata: Any = None,
        replace: bool = False,
    ) -> tuple[CollectionImage, bool]:
        """Add an image; ``replace``: create or replace ``image_id`` (PUT). Returns (row, created)."""
        collection = self.get(principal, name)
        embedder = embedder_of(collection)
        embedder.require()  # before the bytes are stored: a 503 leaves nothing behind
        if image_id is None:
            if replace:
                raise ValidationFailed("an id is required to create or replace an image")
            image_id = uuid.uuid4().hex
        check_id(image_id)
        meta = check_metadata(metadata, collection.metadata_schema)
        if not replace:
            self._must_be_new(collection, image_id)
        image, stored_image_id = self._resolve(principal, source, keep_bytes=True)
        assert stored_image_id is not None
        signals = compute_signals(image, _CLASSICAL, STORED_FEATURES)
        vector = embedder.embed(image.rgb) if embedder.neural else None
        index, neural = self._indexes(collection)
        with self.db.read() as session:
            high_water = session.scalar(
                select(func.max(CollectionImage.key)).where(
                    CollectionImage.collection_id == collection.id
                )
            )
        hits = duplicates_of(
            -1, signals, index, self._signals_of, self._exact_keys(collection.id, signals.hashes)
        )
        row = CollectionImage(
            collection_id=collection.id,
            id=image_id,
            image_id=stored_image_id,
            sha256=signals.hashes.sha256,
            pixel_sha256=signals.hashes.pixel_sha256,
            phash=to_hex(signals.hashes.phash),
            dhash=to_hex(signals.hashes.dhash),
            colorhash=signals.hashes.colorhash,
            descriptor=signals.descriptor.astype(np.float16).tobytes(),
            embedding=None if vector is None else vector.astype(np.float16).tobytes(),
            local_features=signals.local.to_bytes(),
            width=image.width,
            height=image.height,
            meta=meta,
            created_at=utcnow(),
        )
        created = True
        with self._lock(collection.id):
            try:
                with self.db.session() as session:
                    old = session.scalar(
                        select(CollectionImage).where(
                            CollectionImage.collection_id == collection.id,
                            CollectionImage.id == image_id,
                        )
                    )
                    if old is not None:
                        if not replace:
                            raise Conflict(f"image {image_id!r} exists in collection {name!r}")
                        created = False
                        old_key = old.key
                        session.execute(
                            delete(CollectionDuplicate).where(
                                or_(
                                    CollectionDuplicate.key_a == old_key,
                                    CollectionDuplicate.key_b == old_key,
                                )
                            )
                        )
                        session.delete(old)
                        session.flush()
                        hits = [h for h in hits if h.key != old_key]
                    session.add(row)
                    session.flush()
                    self._add_pairs(session, collection.id, row.key, hits)
                    if not self._bump(session, collection.id):
                        raise NotFound(f"no collection {name!r}")
                    version = self._version_in(session, collection.id)
            except IntegrityError:
                if self._version(collection.id) is None:  # deleted meanwhile
                    raise NotFound(f"no collection {name!r}") from None
                raise Conflict(f"image {image_id!r} exists in collection {name!r}") from None
            # -- committed: the image is acknowledged from here on
            phash = to_bytes(signals.hashes.phash)[None, :]
            if not created:
                index.remove(np.array([old_key]))
                if neural is not None:
                    neural.remove(np.array([old_key]))
            index.add(np.array([row.key]), signals.descriptor[None, :], phash)
            if neural is not None and vector is not None:
                neural.add(np.array([row.key]), vector[None, :], phash)
            self._advance(collection.id, version)
        self._pairs_with_concurrent(collection, row, signals, high_water)
        return row, created

    def _must_be_new(self, collection: Collection, image_id: str) -> None:
        with self.db.read() as session:
            exists = session.scalar(
                select(CollectionImage.key).where(
                    CollectionImage.collection_id == collection.id,
                    CollectionImage.id == image_id,
                )
            )
        if exists is not None:
            raise Conflict(f"image {image_id!r} exists in collection {collection.name!r}")

    @staticmethod
    def _add_pairs(session: Session, collection_id: str, key: int, hits: Iterable[Hit]) -> None:
        for hit in hits:
            if hit.match in (Match.EXACT, Match.NEAR_DUPLICATE) and hit.key != key:
                session.merge(
                    CollectionDuplicate(
                        key_a=min(hit.key, key),
                        key_b=max(hit.key, key),
                        collection_id=collection_id,
                        score=hit.score,
                        match=str(hit.match),
                    )
                )

    def _pairs_with_concurrent(
        self, collection: Collection, row: CollectionImage, signals: Signals, high_water: int | None
    ) -> None:
        """Images added by other requests while this one was searched missed each other:
        compare with them now, so no duplicate pair is lost to the race."""
        with self.db.read() as session:
            others = list(
                session.scalars(
                    select(CollectionImage.key).where(
                        CollectionImage.collection_id == collection.id,
                        CollectionImage.key > (high_water or 0),
                        CollectionImage.key < row.key,
                    )
                )
            )
        if not others:
            return
        hits = []
        for key, other in self._signals_of(others).items():
            decision = decide(signals, other)
            if decision.match in (Match.EXACT, Match.NEAR_DUPLICATE):
                hits.append(Hit(key, decision.score, decision.match))
        if hits:
            try:
                with self.db.session() as session:
                    self._add_pairs(session, collection.id, row.key, hits)
            except IntegrityError:  # one of the two was deleted meanwhile
                pass

    @staticmethod
    def _bump(session: Session, collection_id: str) -> bool:
        result = session.execute(
            update(Collection)
            .where(Collection.id == collection_id)
            .values(version=Collection.version + 1)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    @staticmethod
    def _version_in(session: Session, collection_id: str) -> int:
        return int(
            session.scalar(select(Collection.version).where(Collection.id == collection_id)) or 0
        )

    def _advance(self, collection_id: str, version: int) -> None:
        """Our own change took the collection to ``version``: we are in sync only if we
        were at ``version - 1`` (otherwise another process changed it too)."""
        if self._synced.get(collection_id) == version - 1:
            self._synced[collection_id] = version

    def get_image(self, principal: Principal, name: str, image_id: str) -> CollectionImage:
        collection = self.get(principal, name)
        with self.db.read() as session:
            row = session.scalar(
                select(CollectionImage).where(
                    CollectionImage.collection_id == collection.id, CollectionImage.id == image_id
                )
            )
        if row is None:
            raise NotFound(f"no image {image_id!r} in collection {name!r}")
        return row

    def list_images(
        self, principal: Principal, name: str, cursor: str | None = None, limit: int = 50
    ) -> tuple[list[CollectionImage], str | None]:
        """Newest first (a replaced image counts as new); ``cursor`` from the previous page."""
        collection = self.get(principal, name)
        if not 1 <= limit <= 1000:
            raise ValidationFailed("limit must be 1 to 1000")
        query = select(CollectionImage).where(CollectionImage.collection_id == collection.id)
        if cursor:
            query = query.where(CollectionImage.key < decode_cursor(cursor))
        with self.db.read() as session:
            rows = list(
                session.scalars(query.order_by(CollectionImage.key.desc()).limit(limit + 1))
            )
        next_cursor = encode_cursor(rows[limit - 1].key) if len(rows) > limit else None
        return rows[:limit], next_cursor

    def delete_image(self, principal: Principal, name: str, image_id: str) -> None:
        collection = self.get(principal, name)
        index, neural = self._indexes(collection)
        with self._lock(collection.id):
            with self.db.session() as session:
                row = session.scalar(
                    select(CollectionImage).where(
                        CollectionImage.collection_id == collection.id,
                        CollectionImage.id == image_id,
                    )
                )
                if row is None:
                    raise NotFound(f"no image {image_id!r} in collection {name!r}")
                key = row.key
                session.execute(
                    delete(CollectionDuplicate).where(
                        or_(CollectionDuplicate.key_a == key, CollectionDuplicate.key_b == key)
                    )
                )
                session.delete(row)
                self._bump(session, collection.id)
                version = self._version_in(session, collection.id)
            index.remove(np.array([key]))
            if neural is not None:
                neural.remove(np.array([key]))
            self._advance(collection.id, version)

    def image_view(self, row: CollectionImage) -> dict[str, Any]:
        return {
            "id": row.id,
            "image_id": row.image_id,
            "sha256": row.sha256,
            "width": row.width,
            "height": row.height,
            "metadata": row.meta,
            "hashes": {"phash": row.phash, "dhash": row.dhash, "colorhash": row.colorhash},
            "created_at": row.created_at.isoformat(),
        }

    # ===================================================================== search
    def search(
        self,
        principal: Principal,
        name: str,
        request: SearchRequest,
        source: Source | None = None,
        by_id: str | None = None,
        text: str | None = None,
    ) -> list[dict[str, Any]]:
        """Search by an image (``source``), an image of the collection (``by_id``) or, in
        a neural collection, a ``text`` (its results are all *similar*)."""
        if sum(x is not None for x in (source, by_id, text)) != 1:
            raise ValidationFailed("search by an image, by an id or by a text: exactly one of them")
        collection = self.get(principal, name)
        embedder = embedder_of(collection)
        if text is not None:
            return self._search_text(collection, embedder, request, text)
        want_similar = Match.SIMILAR in request.matches
        exclude: list[int] = []
        vector: np.ndarray | None = None
        if by_id is not None:
            row = self.get_image(principal, name, by_id)
            query = row_signals(row)
            exclude = [row.key]
            if embedder.neural and row.embedding is not None:
                vector = _vector(row.embedding)  # stored: same space, no model needed
        else:
            assert source is not None
            if embedder.neural and want_similar:
                embedder.require()
            image, _ = self._resolve(principal, source, keep_bytes=False)
            query = compute_signals(image, _CLASSICAL, QUERY_FEATURES)
            if embedder.neural and want_similar:
                vector = embedder.embed(image.rgb)
        index, neural = self._indexes(collection)
        space = None
        if neural is not None and vector is not None:
            calibration = embedder.calibration
            space = SimilarSpace(neural, vector, calibration.threshold, calibration.full)
        filtering = bool(request.metadata)
        similar_k = 0
        if want_similar and (space is not None or not embedder.neural):
            similar_k = min(1000, request.limit * (10 if filtering else 2))
        hits = find(
            query,
            index,
            self._signals_of,
            exact_keys=self._exact_keys(collection.id, query.hashes),
            exclude=exclude,
            similar_k=similar_k,
            similar=space,
        )
        return self._results(hits, request)

    def _search_text(
        self,
        collection: Collection,
        embedder: CollectionEmbedder,
        request: SearchRequest,
        text: str,
    ) -> list[dict[str, Any]]:
        if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT_LENGTH:
            raise ValidationFailed(f"text must be 1 to {MAX_TEXT_LENGTH} characters")
        if not embedder.neural:
            embedder.embed_text(text)  # raises the 422 that explains why
        embedder.require()
        if Match.SIMILAR not in request.matches:
            return []
        vector = embedder.embed_text(text)
        _, neural = self._indexes(collection)
        assert neural is not None
        calibration = embedder.text_calibration
        space = SimilarSpace(neural, vector, calibration.threshold, calibration.full)
        k = min(1000, request.limit * (10 if request.metadata else 1))
        return self._results(rank_similar(space, k), request)

    def _results(self, hits: list[Hit], request: SearchRequest) -> list[dict[str, Any]]:
        hits = [h for h in hits if h.match in request.matches and h.score >= request.min_score]
        rows = self._rows(h.key for h in hits)
        results = []
        for hit in hits:
            found = rows.get(hit.key)
            if found is None:
                continue
            if request.metadata and not _meta_matches(found.meta, request.metadata):
                continue
            item: dict[str, Any] = {"id": found.id, "score": hit.score, "match": str(hit.match)}
            if found.meta is not None:
                item["metadata"] = found.meta
            results.append(item)
            if len(results) >= request.limit:
                break
        return results

    def _rows(self, keys: Iterable[int]) -> dict[int, CollectionImage]:
        wanted = list(keys)
        if not wanted:
            return {}
        with self.db.read() as session:
            rows = session.scalars(select(CollectionImage).where(CollectionImage.key.in_(wanted)))
            return {row.key: row for row in rows}

    # ================================================================= duplicates
    def duplicates(self, principal: Principal, name: str) -> Iterator[dict[str, Any]]:
        """Every group of exact / near-duplicate images (oldest member first, groups in the
        order of their oldest member). The stored pairs are grouped with only keys in
        memory; each group's ids and metadata are looked up as it is yielded."""
        collection = self.get(principal, name)
        edges: list[Edge] = []
        with self.db.read() as session:
            result = session.execute(
                select(
                    CollectionDuplicate.key_a,
                    CollectionDuplicate.key_b,
                    CollectionDuplicate.score,
                    CollectionDuplicate.match,
                )
                .where(CollectionDuplicate.collection_id == collection.id)
                .execution_options(yield_per=5000)
            )
            for a, b, score, match in result:
                edges.append(Edge(int(a), int(b), float(score), Match(match)))
        groups = group_edges(edges)
        return self._group_views(groups)

    def _group_views(self, groups: list[tuple[list[int], list[Edge]]]) -> Iterator[dict[str, Any]]:
        for members, pairs in groups:
            rows = self._rows(members)
            if len(rows) < 2:
                continue
            ids = {k: rows[k].id for k in members if k in rows}
            kind = (
                Match.EXACT if all(p.match is Match.EXACT for p in pairs) else Match.NEAR_DUPLICATE
            )
            yield {
                "match": str(kind),
                "images": [
                    {"id": rows[k].id, **({"metadata": rows[k].meta} if rows[k].meta else {})}
                    for k in members
                    if k in rows
                ],
                "pairs": [
                    {"a": ids[p.a], "b": ids[p.b], "score": p.score, "match": str(p.match)}
                    for p in sorted(pairs, key=lambda p: (MATCH_ORDER[p.match], -p.score))
                    if p.a in ids and p.b in ids
                ],
            }


# ========================================================================= helpers
def row_signals(row: CollectionImage) -> Signals:
    return Signals(
        hashes=ImageHashes(
            sha256=row.sha256,
            pixel_sha256=row.pixel_sha256,
            phash=from_hex(row.phash),
            dhash=from_hex(row.dhash),
            colorhash=row.colorhash,
        ),
        descriptor=_vector(row.descriptor),
        local=LocalFeatures.from_bytes(row.local_features),
        width=row.width,
        height=row.height,
    )


def _vector(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype=np.float16).astype(np.float32)


def check_id(image_id: Any) -> str:
    if not isinstance(image_id, str) or not 1 <= len(image_id) <= MAX_ID_LENGTH:
        raise ValidationFailed(f"an image id is a string of 1 to {MAX_ID_LENGTH} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in image_id):
        raise ValidationFailed("an image id may not contain control characters")
    return image_id


def check_schema(schema: Any) -> dict[str, str] | None:
    """A metadata schema is ``{field: "string" | "number" | "integer" | "boolean"}``."""
    if schema is None:
        return None
    if not isinstance(schema, Mapping) or not schema:
        raise ValidationFailed(
            'metadata_schema must be an object like {"field": "string"} '
            f"(types: {', '.join(SCHEMA_TYPES)})"
        )
    if len(schema) > 100:
        raise ValidationFailed("metadata_schema declares at most 100 fields")
    out: dict[str, str] = {}
    for field, kind in schema.items():
        if not isinstance(field, str) or not 1 <= len(field) <= 100:
            raise ValidationFailed("metadata field names have 1 to 100 characters")
        if kind not in SCHEMA_TYPES:
            raise ValidationFailed(
                f"metadata_schema.{field}: unknown type {kind!r}; one of {', '.join(SCHEMA_TYPES)}"
            )
        out[field] = str(kind)
    return out


def check_metadata(metadata: Any, schema: Mapping[str, str] | None) -> dict[str, Any] | None:
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise ValidationFailed("metadata must be a JSON object")
    try:
        size = len(json.dumps(metadata, separators=(",", ":"), allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ValidationFailed(f"metadata is not valid JSON: {exc}") from None
    if size > MAX_METADATA_BYTES:
        raise ValidationFailed(
            f"metadata is {size} bytes as JSON; the limit is {MAX_METADATA_BYTES}"
        )
    if schema:
        for field, value in metadata.items():
            if field not in schema:
                raise ValidationFailed(
                    f"metadata.{field} is not in the collection's metadata_schema"
                )
            kind = schema[field]
            ok = value is None or (
                isinstance(value, SCHEMA_TYPES[kind])
                and not (kind != "boolean" and isinstance(value, bool))
            )
            if not ok:
                raise ValidationFailed(f"metadata.{field} must be {kind}")
    return metadata


def _meta_matches(meta: Mapping[str, Any] | None, wanted: Mapping[str, Any]) -> bool:
    if not meta:
        return False
    return all(field in meta and meta[field] == value for field, value in wanted.items())


def encode_cursor(key: int) -> str:
    return base64.urlsafe_b64encode(f"k{key}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not raw.startswith("k"):
            raise ValueError
        return int(raw[1:])
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ValidationFailed(
            "cursor is not valid; use next_cursor from the previous page"
        ) from None
