"""The embedded index's switch from HNSW to a faiss IVF (``index/ivf.py``): recall
against exact search, adds/removes/overwrites made while the IVF trains, files
across the switch, retraining, and the same result shape as the HNSW."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from opensight.collections.index import ivf, usearch_backend
from opensight.collections.index.ivf import IvfVectors
from opensight.collections.index.usearch_backend import UsearchBackend, UsearchCollectionIndex

DIM = 128


def embedding_like(rng: np.random.Generator, n: int, latent: np.ndarray) -> np.ndarray:
    """Unit vectors from a 16-d latent space plus noise, like bench/collections.py's."""
    out = rng.standard_normal((n, latent.shape[0])).astype(np.float32) @ latent
    out += rng.standard_normal((n, latent.shape[1])).astype(np.float32) * 0.25
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def hashes(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, 256, (n, 8), dtype=np.uint8)


@pytest.fixture
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(11)
    latent = rng.standard_normal((16, DIM)).astype(np.float32) / 4
    return embedding_like(rng, 6000, latent), embedding_like(rng, 100, latent)


@pytest.fixture
def small_threshold(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(usearch_backend, "IVF_THRESHOLD", 2000)
    yield


def recall_at_10(index: UsearchCollectionIndex, base: np.ndarray, queries: np.ndarray) -> float:
    hits = 0
    for query in queries:
        exact = set((np.argsort(-(base @ query))[:10]).tolist())
        hits += len(exact & set(index.search_vectors(query, 10).keys.tolist()))
    return hits / (10 * len(queries))


def test_switches_to_ivf_in_the_background_with_high_recall(
    data: tuple[np.ndarray, np.ndarray], small_threshold: None
) -> None:
    base, queries = data
    rng = np.random.default_rng(1)
    index = UsearchCollectionIndex(DIM)
    for start in range(0, len(base), 500):  # one batch at a time, as the service adds
        index.add(np.arange(start, start + 500), base[start : start + 500], hashes(rng, 500))
    index.wait_for_training()
    assert isinstance(index.vectors, IvfVectors) and index.kind.startswith("ivf")
    assert len(index) == len(base) and sorted(index.keys().tolist()) == list(range(len(base)))
    # k = 10 reads fewer lists than there are: the IVF path, not the exhaustive one
    assert len(base) > ivf.RERANK_FACTOR * 10 * 4 and index.vectors.nprobe < index.vectors.nlist
    assert recall_at_10(index, base, queries) >= 0.95


def test_bulk_load_trains_once_and_matches_hnsw_shape(
    data: tuple[np.ndarray, np.ndarray], small_threshold: None
) -> None:
    base, queries = data
    rng = np.random.default_rng(2)
    hs = hashes(rng, len(base))
    big, small = UsearchCollectionIndex(DIM), UsearchCollectionIndex(DIM)
    big.add(np.arange(len(base)), base, hs)  # one batch past the threshold: inline
    small.add(np.arange(1000), base[:1000], hs[:1000])
    assert big.kind.startswith("ivf") and small.kind == "hnsw"
    for index in (big, small):
        found = index.search_vectors(queries[0], 7)
        assert found.keys.dtype == np.int64 and found.scores.dtype == np.float32
        assert len(found) == 7 and list(found.scores) == sorted(found.scores, reverse=True)
        expected = base[found.keys] @ queries[0]  # scores are cosine similarities
        np.testing.assert_allclose(found.scores, expected, atol=2e-3)
        near = index.search_hashes(hs[5], 3)
        assert near.keys[0] == 5 and near.scores[0] == 0
    assert big.search_vectors(base[123], 1).keys[0] == 123
    assert big.search_vectors(base[123], 1).scores[0] == pytest.approx(1.0, abs=2e-3)
    assert len(big.search_vectors(queries[0], 10_000)) == len(base)  # k beyond the size
    assert recall_at_10(big, base, queries) >= 0.95


def test_changes_during_training_are_replayed(
    data: tuple[np.ndarray, np.ndarray], small_threshold: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, _ = data
    rng = np.random.default_rng(3)
    release = threading.Event()
    build = IvfVectors.build

    def held_build(dim: int, keys: np.ndarray, vectors: np.ndarray) -> IvfVectors:
        assert release.wait(60)
        return build(dim, keys, vectors)

    monkeypatch.setattr(IvfVectors, "build", staticmethod(held_build))
    index = UsearchCollectionIndex(DIM)
    index.add(np.arange(1500), base[:1500], hashes(rng, 1500))
    index.add(np.arange(1500, 2000), base[1500:2000], hashes(rng, 500))  # reaches 2000
    assert index._builder is not None and index.kind == "hnsw"  # training, held
    index.add(np.arange(2000, 2500), base[2000:2500], hashes(rng, 500))
    index.remove(np.array([3, 4, 2100, 99_999]))
    index.add(np.array([7]), base[5000:5001], hashes(rng, 1))  # overwrite an old key
    assert index.search_vectors(base[2200], 1).keys[0] == 2200  # searches go on meanwhile
    release.set()
    index.wait_for_training()
    assert index.kind.startswith("ivf")
    expected = set(range(2500)) - {3, 4, 2100}
    assert set(index.keys().tolist()) == expected and len(index) == len(expected)
    assert set(index.hashes.keys) == expected
    for gone in (3, 4, 2100):
        assert gone not in index.search_vectors(base[gone], 20).keys
    assert index.search_vectors(base[5000], 1).keys[0] == 7
    assert 7 not in index.search_vectors(base[7], 5).keys
    assert index.search_vectors(base[2300], 1).keys[0] == 2300


def test_files_across_the_switch(
    tmp_path: Path, data: tuple[np.ndarray, np.ndarray], small_threshold: None
) -> None:
    base, queries = data
    rng = np.random.default_rng(4)
    hs = hashes(rng, len(base))
    backend = UsearchBackend(tmp_path)
    index = backend.open("c", DIM)
    assert isinstance(index, UsearchCollectionIndex)
    index.add(np.arange(1000), base[:1000], hs[:1000])
    index.flush()
    assert (tmp_path / "c" / "vectors.usearch").exists()
    index.add(np.arange(1000, 4000), base[1000:4000], hs[1000:4000])
    index.wait_for_training()
    index.remove(np.arange(10, 20))
    index.add(np.array([30]), base[4500:4501], hs[4500:4501])
    backend.close()
    assert (tmp_path / "c" / "vectors.ivf").exists()
    assert not (tmp_path / "c" / "vectors.usearch").exists()  # superseded
    reopened = UsearchBackend(tmp_path).open("c", DIM)
    assert isinstance(reopened, UsearchCollectionIndex) and reopened.kind == index.kind
    assert set(reopened.keys().tolist()) == set(range(4000)) - set(range(10, 20))
    for query in queries[:20]:
        a, b = index.search_vectors(query, 10), reopened.search_vectors(query, 10)
        assert a.keys.tolist() == b.keys.tolist()
        np.testing.assert_allclose(a.scores, b.scores, rtol=1e-6)
    assert reopened.search_vectors(base[4500], 1).keys[0] == 30
    # adds after a reopen go on in the IVF, and are saved with it
    reopened.add(np.arange(4000, 4400), base[4000:4400], hs[4000:4400])
    reopened.flush()
    again = UsearchBackend(tmp_path).open("c", DIM)
    assert len(again) == 4390 and again.search_vectors(base[4321], 1).keys[0] == 4321
    # a torn IVF file: the index starts empty (the service replays the database)
    path = tmp_path / "c" / "vectors.ivf"
    path.write_bytes(path.read_bytes()[:5000])
    assert len(UsearchBackend(tmp_path).open("c", DIM)) == 0
    assert not path.exists()


def test_retrains_when_grown(
    data: tuple[np.ndarray, np.ndarray], small_threshold: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, queries = data
    monkeypatch.setattr(usearch_backend, "RETRAIN_GROWTH", 2.0)
    monkeypatch.setattr(usearch_backend, "BACKGROUND_BUILD", False)
    rng = np.random.default_rng(5)
    index = UsearchCollectionIndex(DIM)
    index.add(np.arange(2000), base[:2000], hashes(rng, 2000))
    assert isinstance(index.vectors, IvfVectors) and index.vectors.trained == 2000
    first = index.vectors.nlist
    for start in range(2000, 6000, 1000):
        index.add(np.arange(start, start + 1000), base[start : start + 1000], hashes(rng, 1000))
    assert isinstance(index.vectors, IvfVectors) and index.vectors.trained == 4000
    assert index.vectors.nlist > first and len(index) == 6000
    assert recall_at_10(index, base, queries) >= 0.95


def test_concurrent_searches_and_adds_while_training(
    data: tuple[np.ndarray, np.ndarray], small_threshold: None
) -> None:
    base, queries = data
    rng = np.random.default_rng(6)
    hs = hashes(rng, len(base))
    index = UsearchCollectionIndex(DIM)
    index.add(np.arange(1900), base[:1900], hs[:1900])
    errors: list[BaseException] = []
    stop = threading.Event()

    def searcher() -> None:
        try:
            while not stop.is_set():
                for query in queries[:10]:
                    assert len(index.search_vectors(query, 10)) == 10
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=searcher) for _ in range(2)]
    for thread in threads:
        thread.start()
    for start in range(1900, 6000, 100):
        index.add(np.arange(start, start + 100), base[start : start + 100], hs[start : start + 100])
        if start % 1000 == 0:
            index.remove(np.arange(start - 50, start - 40))
    index.wait_for_training()
    stop.set()
    for thread in threads:
        thread.join()
    assert not errors
    assert index.kind.startswith("ivf")
    expected = set(range(6000)) - {
        k for s in range(2000, 6000, 1000) for k in range(s - 50, s - 40)
    }
    assert set(index.keys().tolist()) == expected == set(index.hashes.keys)


def test_list_and_probe_counts() -> None:
    assert ivf.list_count(1_000_000) == 4096 and ivf.probe_count(4096) == 512
    assert ivf.list_count(100_000) == 1024 and ivf.probe_count(1024) == 256
    assert ivf.list_count(2000) == 50  # capped by the training points per list
    assert ivf.list_count(50) == 1


def test_the_switch_follows_the_configured_threshold(
    data: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    """``OPENSIGHT_INDEX_IVF_THRESHOLD`` reaches the backend: a small one switches a
    collection the default would keep on the HNSW; 0 never switches."""
    from opensight.collections.index import open_backend
    from opensight.config import Settings
    from opensight.services.container import Container

    base, _ = data
    rng = np.random.default_rng(3)
    hs = hashes(rng, len(base))
    assert len(base) < usearch_backend.IVF_THRESHOLD  # the default would not switch
    for threshold, kind in ((2000, "ivf"), (0, "hnsw")):
        backend = open_backend(None, tmp_path / f"t{threshold}", ivf_threshold=threshold)
        index = backend.open("c", DIM)
        index.add(np.arange(len(base)), base, hs)
        index.wait_for_training()  # type: ignore[attr-defined]
        assert index.kind.startswith(kind), (threshold, index.kind)  # type: ignore[attr-defined]
    settings = Settings(data_dir=tmp_path / "app", index_ivf_threshold=1234)
    made = Container(settings).collections.backend
    assert isinstance(made, UsearchBackend) and made.ivf_threshold == 1234


def test_a_lost_index_is_rebuilt_straight_into_the_ivf(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Index files lost: the service replays the database in one bulk add, so a collection
    past the switch point trains its IVF once on every vector, at once, instead of filling
    the HNSW to the threshold and training in the background."""
    import shutil

    from opensight.collections import service as service_module
    from opensight.config import Settings
    from opensight.services.analysis import Source
    from opensight.services.container import Container
    from opensight.services.keys import Principal
    from tests.conftest import photo_bytes

    monkeypatch.setattr(service_module, "_REPLAY_BATCH", 40)  # several read batches
    settings = Settings(data_dir=tmp_path, index_ivf_threshold=110)
    who = Principal(tenant_id="t", key_id="k", secret="")
    container = Container(settings)
    container.collections.create(who, "big", embedder="classical")
    for i in range(130):
        image = Source(data=photo_bytes(size=(160, 120), seed=i + 1))
        container.collections.add(who, "big", image, image_id=f"i{i}")
    container.close()
    shutil.rmtree(tmp_path / "index")
    container = Container(settings)
    collection = container.collections.get(who, "big")
    index = container.collections.index_for(collection)
    assert isinstance(index, UsearchCollectionIndex)
    assert isinstance(index.vectors, IvfVectors) and index.vectors.trained == 130
    assert len(index) == 130
    container.close()
