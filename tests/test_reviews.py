"""The review queue: the service on a real database, /v1/reviews on a real server with two
tenants, and the operators' CLI."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from opensight.config import Settings
from opensight.errors import Conflict, NotFound, ValidationFailed
from opensight.services.container import Container
from opensight.services.reviews import ReviewItem, ReviewService
from opensight.storage.tables import Review
from tests.server import ServerProcess, cli, create_key


def _items(n: int, start: int = 0) -> list[ReviewItem]:
    return [
        ReviewItem(
            object_index=start + i, label="person", confidence=0.5 + i / 100, box=[1, 2, 30, 40]
        )
        for i in range(n)
    ]


@pytest.fixture
def container(tmp_path: Path) -> Any:
    c = Container(Settings(data_dir=tmp_path / "data"))
    yield c
    c.close()


# ------------------------------------------------------------------ service
def test_enqueue_is_idempotent_per_object(container: Container) -> None:
    reviews = container.reviews
    first = reviews.enqueue("t1", "job_a", _items(3), ref="x:1")
    again = reviews.enqueue("t1", "job_a", _items(4), ref="x:1")  # one new object
    assert len(first) == 3 and [r.object_index for r in again] == [3]
    rows, cursor = reviews.list("t1")
    assert [r.object_index for r in rows] == [0, 1, 2, 3] and cursor is None
    assert reviews.pending_count("x:1") == 4
    assert set(reviews.for_jobs(["job_a"])) == {("job_a", i) for i in range(4)}


def test_decide_confirm_reject_conflict_and_listener(tmp_path: Path) -> None:
    seen: list[Review] = []
    container = Container(Settings(data_dir=tmp_path / "d"))
    try:
        reviews = ReviewService(container.db, on_decided=seen.append)
        a, b = reviews.enqueue("t1", "job_a", _items(2), ref="x:1")
        confirmed = reviews.decide(a.id, "t1", "confirm", note="ok", reviewer="me")
        assert confirmed.status == "confirmed" and confirmed.note == "ok"
        assert confirmed.decided_at is not None and confirmed.reviewer == "me"
        # the same decision again is a no-op and does not notify twice
        assert reviews.decide(a.id, "t1", "confirm").status == "confirmed"
        with pytest.raises(Conflict):
            reviews.decide(a.id, "t1", "reject")
        assert reviews.decide(b.id, None, "reject").status == "rejected"
        assert [r.id for r in seen] == [a.id, b.id]
        assert reviews.pending_count("x:1") == 0
        with pytest.raises(ValidationFailed):
            reviews.decide(b.id, "t1", "maybe")
        with pytest.raises(ValidationFailed):
            reviews.list("t1", status="weird")
    finally:
        container.close()


def test_tenant_isolation_in_the_service(container: Container) -> None:
    reviews = container.reviews
    (mine,) = reviews.enqueue("t1", "job_a", _items(1))
    reviews.enqueue("t2", "job_b", _items(2))
    with pytest.raises(NotFound):
        reviews.get(mine.id, "t2")
    with pytest.raises(NotFound):
        reviews.decide(mine.id, "t2", "confirm")
    assert reviews.get(mine.id, "t1").status == "pending"
    assert [r.job_id for r in reviews.list("t2")[0]] == ["job_b", "job_b"]
    assert len(reviews.list(None)[0]) == 3  # operators see every tenant


def test_racing_decisions_have_one_winner(container: Container) -> None:
    (row,) = container.reviews.enqueue("t1", "job_a", _items(1))
    outcomes: list[str] = []

    def decide(decision: str) -> None:
        try:
            outcomes.append(container.reviews.decide(row.id, "t1", decision).status)
        except Conflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=decide, args=(d,)) for d in ("confirm", "reject") * 3]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    final = container.reviews.get(row.id).status
    assert final in ("confirmed", "rejected")
    # every caller either saw the winning status or a conflict, never the losing one
    assert set(outcomes) <= {final, "conflict"} and outcomes.count(final) >= 1


def test_pagination(container: Container) -> None:
    container.reviews.enqueue("t1", "job_a", _items(5))
    page1, cursor = container.reviews.list("t1", limit=2)
    page2, cursor2 = container.reviews.list("t1", limit=2, cursor=cursor)
    page3, cursor3 = container.reviews.list("t1", limit=2, cursor=cursor2)
    ids = [r.object_index for r in page1 + page2 + page3]
    assert ids == [0, 1, 2, 3, 4] and cursor3 is None


# ----------------------------------------------------------- HTTP and CLI
@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    srv = ServerProcess(tmp_path_factory.mktemp("reviews-server"), workers=1).start()
    yield srv
    srv.stop()


def _queue(data_dir: Path, tenant: str, job_id: str, n: int) -> list[str]:
    """Queue reviews the way a front end does: through the service, on the server's data."""
    container = Container(Settings(data_dir=data_dir))
    try:
        return [r.id for r in container.reviews.enqueue(tenant, job_id, _items(n))]
    finally:
        container.close()


def test_http_two_tenants(server: ServerProcess) -> None:
    alice = create_key(server.data_dir, "alice", tenant="alice-co")
    bob = create_key(server.data_dir, "bob", tenant="bob-co")
    a_ids = _queue(server.data_dir, "alice-co", "job_alice", 2)
    b_ids = _queue(server.data_dir, "bob-co", "job_bob", 1)
    ha = {"Authorization": f"Bearer {alice['key']}"}
    hb = {"Authorization": f"Bearer {bob['key']}"}
    with httpx.Client(base_url=server.url, timeout=10) as client:
        listed = client.get("/v1/reviews", headers=ha).json()
        assert [r["id"] for r in listed["reviews"]] == a_ids
        assert listed["reviews"][0]["box"] == [1, 2, 30, 40]
        assert [r["id"] for r in client.get("/v1/reviews", headers=hb).json()["reviews"]] == b_ids
        # bob can neither read nor decide alice's review
        assert client.get(f"/v1/reviews/{a_ids[0]}", headers=hb).status_code == 404
        denied = client.post(f"/v1/reviews/{a_ids[0]}", headers=hb, json={"decision": "confirm"})
        assert denied.status_code == 404
        assert denied.headers["content-type"].startswith("application/problem+json")
        ok = client.post(
            f"/v1/reviews/{a_ids[0]}", headers=ha, json={"decision": "confirm", "note": "yes"}
        )
        assert ok.status_code == 200, ok.text
        assert ok.json()["status"] == "confirmed" and ok.json()["note"] == "yes"
        assert ok.json()["reviewer"] == f"key:{alice['id']}"
        again = client.post(f"/v1/reviews/{a_ids[0]}", headers=ha, json={"decision": "confirm"})
        assert again.status_code == 200
        flip = client.post(f"/v1/reviews/{a_ids[0]}", headers=ha, json={"decision": "reject"})
        assert flip.status_code == 409 and flip.json()["slug"] == "conflict"
        pending = client.get("/v1/reviews", headers=ha).json()["reviews"]
        assert [r["id"] for r in pending] == a_ids[1:]
        done = client.get("/v1/reviews", headers=ha, params={"status": "confirmed"}).json()
        assert [r["id"] for r in done["reviews"]] == a_ids[:1]
        assert (
            len(client.get("/v1/reviews", headers=ha, params={"status": "all"}).json()["reviews"])
            == 2
        )
        # bad input: each a problem+json 4xx, never a 500
        for body, status in (
            ({"decision": "maybe"}, 422),
            ({}, 422),
            ({"decision": "confirm", "extra": 1}, 422),
            ({"decision": "confirm", "note": "x" * 3000}, 422),
            ({"decision": 3}, 422),
        ):
            bad = client.post(f"/v1/reviews/{a_ids[1]}", headers=ha, json=body)
            assert bad.status_code == status, (body, bad.text)
            assert bad.json()["slug"] == "validation_error"
        assert client.post(f"/v1/reviews/{a_ids[1]}", headers=ha, content=b"{no").status_code == 422
        assert client.get("/v1/reviews", headers=ha, params={"status": "nope"}).status_code == 422
        assert client.get("/v1/reviews/rev_missing", headers=ha).status_code == 404
        assert client.get("/v1/reviews").status_code == 401
        assert client.get("/v1/reviews/x", headers=ha).json()["slug"] == "not_found"
        assert client.get(f"/v1/reviews/{a_ids[1]}", headers=ha).json()["status"] == "pending"


def test_cli_list_confirm_reject(server: ServerProcess) -> None:
    ids = _queue(server.data_dir, "carol-co", "job_carol", 3)
    listed = json.loads(
        cli(server.data_dir, "reviews", "list", "--tenant", "carol-co", "--json").stdout
    )
    assert [r["id"] for r in listed] == ids and {r["tenant"] for r in listed} == {"carol-co"}
    table = cli(
        server.data_dir, "reviews", "list", "--tenant", "carol-co", env={"COLUMNS": "250"}
    ).stdout
    assert all(i in table for i in ids) and "person" in table and "carol-co" in table
    confirmed = json.loads(
        cli(
            server.data_dir,
            "reviews",
            "confirm",
            ids[0],
            "--note",
            "fine",
            "--reviewer",
            "op",
            "--json",
        ).stdout
    )
    assert confirmed["status"] == "confirmed" and confirmed["reviewer"] == "cli:op"
    rejected = cli(server.data_dir, "reviews", "reject", ids[1])
    assert rejected.returncode == 0 and "rejected" in rejected.stdout
    conflict = cli(server.data_dir, "reviews", "reject", ids[0], check=False)
    assert conflict.returncode == 1 and "conflict" in conflict.stderr
    missing = cli(server.data_dir, "reviews", "confirm", "rev_nope", check=False)
    assert missing.returncode == 1 and "not_found" in missing.stderr
    bad = cli(server.data_dir, "reviews", "list", "--status", "weird", check=False)
    assert bad.returncode == 2
    pending = json.loads(
        cli(server.data_dir, "reviews", "list", "--tenant", "carol-co", "--json").stdout
    )
    assert [r["id"] for r in pending] == ids[2:]
