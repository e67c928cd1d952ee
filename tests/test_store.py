"""The job store's contract, run against SQLite and PostgreSQL alike."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from opensight.errors import Conflict, NotFound
from opensight.jobs.model import JobStatus
from opensight.jobs.store import MAX_ATTEMPTS, JobStore, NewJob
from opensight.storage.db import Database


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[JobStore]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'jobs.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    db = Database(url)
    db.upgrade()
    yield JobStore(db)
    db.dispose()


def new_job(tenant: str = "t1", **kw: object) -> NewJob:
    return NewJob(tenant_id=tenant, features=["quality"], source={"image_id": "img_x"}, **kw)  # type: ignore[arg-type]


def test_create_claim_finish_writes_once(store: JobStore) -> None:
    job, created = store.create(new_job())
    assert created and job.status == JobStatus.PENDING
    claimed = store.claim("w1", 30)
    assert claimed is not None and claimed.id == job.id and claimed.attempts == 1
    assert store.claim("w2", 30) is None
    assert store.finish(job.id, "w1", JobStatus.COMPLETED, result={"a": 1})
    assert not store.finish(job.id, "w1", JobStatus.COMPLETED, result={"a": 2})
    final = store.get(job.id)
    assert final.status == JobStatus.COMPLETED and final.result == {"a": 1}
    assert final.finished_at is not None


def test_expired_lease_is_handed_out_again_and_old_holder_cannot_write(store: JobStore) -> None:
    job, _ = store.create(new_job())
    assert store.claim("dead-worker", -1) is not None  # lease already expired
    again = store.claim("w2", 30)
    assert again is not None and again.id == job.id and again.attempts == 2
    assert not store.finish(job.id, "dead-worker", JobStatus.COMPLETED, result={"x": 1})
    assert store.finish(job.id, "w2", JobStatus.COMPLETED, result={"x": 2})
    assert store.get(job.id).result == {"x": 2}


def test_job_that_kills_workers_is_failed_after_max_attempts(store: JobStore) -> None:
    job, _ = store.create(new_job())
    for n in range(MAX_ATTEMPTS):
        assert store.claim(f"w{n}", -1) is not None
    assert store.claim("last", 30) is None
    final = store.get(job.id)
    assert final.status == JobStatus.FAILED and final.error["slug"] == "worker_lost"


def test_ttl_passed_before_claim_is_timeout(store: JobStore) -> None:
    job, _ = store.create(new_job(ttl_seconds=0.001))
    import time

    time.sleep(0.01)
    assert store.claim("w1", 30) is None
    assert store.get(job.id).status == JobStatus.TIMEOUT
    retried = store.retry(job.id, "t1")
    assert retried.status == JobStatus.PENDING


def test_idempotency_key_returns_the_first_job(store: JobStore) -> None:
    first, created1 = store.create(new_job(idempotency_key="abc"))
    second, created2 = store.create(new_job(idempotency_key="abc"))
    other_tenant, created3 = store.create(new_job(tenant="t2", idempotency_key="abc"))
    assert created1 and not created2 and created3
    assert first.id == second.id != other_tenant.id


def test_cancel_only_pending_and_tenant_isolation(store: JobStore) -> None:
    job, _ = store.create(new_job())
    with pytest.raises(NotFound):
        store.cancel(job.id, "someone-else")
    with pytest.raises(NotFound):
        store.get(job.id, "someone-else")
    assert store.cancel(job.id, "t1").status == JobStatus.CANCELLED
    with pytest.raises(Conflict):
        store.cancel(job.id, "t1")
    with pytest.raises(Conflict):
        store.retry(job.id, "t1")


def test_list_pages_newest_first(store: JobStore) -> None:
    ids = [store.create(new_job())[0].id for _ in range(5)]
    store.create(new_job(tenant="t2"))
    page1, cursor = store.list("t1", limit=2)
    page2, cursor2 = store.list("t1", cursor=cursor, limit=2)
    page3, cursor3 = store.list("t1", cursor=cursor2, limit=2)
    got = [j.id for j in page1 + page2 + page3]
    assert got == list(reversed(ids)) and cursor3 is None


def test_concurrent_claims_never_share_a_job(store: JobStore) -> None:
    for _ in range(30):
        store.create(new_job())
    claimed: list[str] = []
    lock = threading.Lock()

    def worker(name: str) -> None:
        while (job := store.claim(name, 30)) is not None:
            assert store.finish(job.id, name, JobStatus.COMPLETED, result={})
            with lock:
                claimed.append(job.id)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(claimed) == 30 == len(set(claimed))
    assert store.counts("t1") == {"completed": 30}


def test_batch_is_atomic_and_ordered(store: JobStore) -> None:
    batch = store.create_batch("t1", ["quality"], [new_job() for _ in range(3)])
    jobs = list(store.iter_batch(batch.id, page=2))
    assert [j.batch_index for j in jobs] == [0, 1, 2]
    assert store.counts(batch_id=batch.id) == {"pending": 3}


def test_webhook_claim_and_backoff_records(store: JobStore) -> None:
    job, _ = store.create(new_job(webhook_url="http://127.0.0.1:1/hook"))
    claimed = store.claim("w", 30)
    assert claimed is not None
    store.finish(job.id, "w", JobStatus.COMPLETED, result={})
    due = store.claim_webhook(60)
    assert due is not None and due.id == job.id
    assert store.claim_webhook(60) is None  # in flight
    store.record_webhook(job.id, {"attempt": 1, "error": "refused"}, False, None)
    final = store.get(job.id)
    assert final.webhook_status == "failed" and len(final.webhook_attempts) == 1


def test_requeue_all_processing(store: JobStore) -> None:
    job, _ = store.create(new_job())
    store.claim("w", 300)
    assert store.requeue_all_processing() == 1
    assert store.get(job.id).status == JobStatus.PENDING
