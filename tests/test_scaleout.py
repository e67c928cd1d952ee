"""Scale-out mode against the real services of this machine.

PostgreSQL, Redis (and RabbitMQ for one test), S3 through moto's server on
loopback; `opensight serve --no-workers` and `opensight worker` as real
processes. Without the services these tests skip, unless
OPENSIGHT_REQUIRE_SERVICES=1 (set by .ci/run), which turns the skip into a failure.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.cluster import (
    RABBIT_URL,
    Api,
    PgDatabase,
    RedisDb,
    S3Server,
    Worker,
    base_env,
    db_upgrade,
    missing_services,
    worker_finish_lines,
)
from tests.conftest import photo_bytes
from tests.server import cli, create_key, free_port


def require(rabbit: bool = False) -> None:
    missing = missing_services(rabbit=rabbit)
    if missing:
        message = "scale-out services missing: " + "; ".join(missing)
        if os.environ.get("OPENSIGHT_REQUIRE_SERVICES") == "1":
            pytest.fail(message + " (CI requires them: OPENSIGHT_REQUIRE_SERVICES=1)")
        pytest.skip(message)


@dataclass
class Services:
    pg: PgDatabase
    redis: RedisDb
    s3: S3Server


@pytest.fixture
def services() -> Iterator[Services]:
    require()
    pg = PgDatabase().create()
    redis = RedisDb()
    s3 = S3Server().start()
    try:
        yield Services(pg, redis, s3)
    finally:
        s3.stop()
        redis.release()
        pg.drop()


class WebhookReceiver:
    """Counts deliveries per job and checks each signature."""

    def __init__(self, secret: str) -> None:
        from opensight.jobs.webhooks import verify_signature

        received: Counter[str] = Counter()
        bad: list[str] = []
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                job_id = self.headers.get("X-OpenSight-Job", "")
                ok = verify_signature(
                    secret,
                    self.headers.get("X-OpenSight-Timestamp", ""),
                    body,
                    self.headers.get("X-OpenSight-Signature", ""),
                )
                with lock:
                    received[job_id] += 1
                    if not ok or json.loads(body).get("id") != job_id:
                        bad.append(job_id)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.received, self.bad, self.lock = received, bad, lock
        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def counts(self) -> Counter[str]:
        with self.lock:
            return Counter(self.received)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


_engines: dict[str, Any] = {}


def distinct_jpegs(count: int, size: tuple[int, int]) -> list[bytes]:
    """``count`` different small photos (one decode of the source photo, not ``count``)."""
    import io

    import numpy as np
    from PIL import Image

    base = np.asarray(Image.open(io.BytesIO(photo_bytes(size))).convert("RGB")).copy()
    out = []
    for index in range(count):
        pixels = base.copy()
        pixels[:8, :8] = (index * 37 % 256, index * 91 % 256, index % 256)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
        out.append(buffer.getvalue())
    assert len(set(out)) == count
    return out


def _query(url: str, sql: str, **params: Any) -> list[Any]:
    """One engine per database for the whole test (the polls are frequent)."""
    engine = _engines.get(url)
    if engine is None:
        engine = _engines[url] = create_engine(url, pool_size=2)
    with engine.connect() as conn:
        return list(conn.execute(text(sql), params))


def _dispose(url: str) -> None:
    engine = _engines.pop(url, None)
    if engine is not None:
        engine.dispose()


_started = time.monotonic()


def log_phase(what: str) -> None:
    """Shown with the output of a failed test: where the time went."""
    print(f"[{time.monotonic() - _started:6.1f}s] {what}", flush=True)


def _wait(predicate: Any, timeout: float, what: str, logs: Any = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}" + (f"\n{logs()}" if logs else ""))


@pytest.mark.scaleout
@pytest.mark.postgres
def test_two_apis_two_workers_one_killed_exactly_once(services: Services, tmp_path: Path) -> None:
    """200 async jobs over two API processes; one of two workers SIGKILLed mid-run and
    every task delivered a second time: all complete, each result written once, each
    webhook fired once."""
    total = 200
    data = tmp_path / "data"
    env = {
        **base_env(services.pg.url, services.redis.url, data),
        **services.s3.env(),
        "OPENSIGHT_JOB_LEASE_SECONDS": "3",
        "OPENSIGHT_SWEEP_SECONDS": "1",
        "OPENSIGHT_REDISPATCH_SECONDS": "4",
        "OPENSIGHT_WEBHOOK_BACKOFF_SECONDS": "1",
    }
    global _started
    _started = time.monotonic()
    assert db_upgrade(env, data).returncode == 0
    key = create_key(data, "scale", env=env)
    log_phase("schema and key")
    receiver = WebhookReceiver(key["secret"])
    apis = [Api(f"api{i}", tmp_path, env) for i in (1, 2)]
    # The worker to be killed does not deliver webhooks: a SIGKILL in the middle of an
    # HTTP POST could make the receiver see it twice (delivery is at least once).
    victim = Worker("worker1", tmp_path, env, "--no-webhooks", concurrency=2)
    metrics_port = free_port()
    survivor = Worker("worker2", tmp_path, env, "--metrics-port", str(metrics_port), concurrency=2)
    processes = [*apis, victim, survivor]

    def logs() -> str:
        return "\n".join(f"--- {p.name}\n{p.log()[-2500:]}" for p in processes)

    try:
        for process in processes:
            process.start()
        for api in apis:
            api.wait_ready()
        victim.wait_ready()
        survivor.wait_ready()
        log_phase("processes ready")

        headers = {"Authorization": f"Bearer {key['key']}"}
        images = distinct_jpegs(total, (240, 180))
        submitted: dict[int, str] = {}

        def submit(index: int) -> None:
            api = apis[index % 2]
            response = httpx.post(
                api.url + "/v1/analyze",
                headers=headers,
                files={"image": (f"{index}.jpg", images[index], "image/jpeg")},
                data={"async": "true", "features": "quality", "webhook_url": receiver.url},
                timeout=30,
            )
            assert response.status_code == 202, response.text
            submitted[index] = response.json()["id"]

        pool = ThreadPoolExecutor(8)
        futures = [pool.submit(submit, i) for i in range(total)]

        url = services.pg.url
        done_sql = "SELECT count(*) FROM jobs WHERE status = 'completed'"
        _wait(lambda: _query(url, done_sql)[0][0] >= 30, 90, "30 completed jobs", logs)
        log_phase("30 completed")
        held_sql = "SELECT id FROM jobs WHERE status = 'processing' AND lease_owner LIKE :owner"
        owner = f"%-{victim.pid}-%"
        # Freeze the victim (SIGSTOP), look at what it holds, and SIGKILL it while it holds
        # a job: the same as a SIGKILL at that instant, without the race.
        deadline = time.monotonic() + 30
        while True:
            victim.signal(signal.SIGSTOP)
            time.sleep(0.3)  # a COMMIT sent just before the stop still lands: let it
            if _query(url, held_sql, owner=owner) or time.monotonic() > deadline:
                victim.kill()
                break
            victim.signal(signal.SIGCONT)
            time.sleep(0.3)
        log_phase("killed the victim")
        held_at_kill = {row[0] for row in _query(url, held_sql, owner=owner)}
        for future in futures:
            future.result()
        pool.shutdown()
        log_phase("all submitted")
        assert len(submitted) == total
        job_ids = list(submitted.values())

        # Every task delivered again (what a broker redelivery or a sweeper does).
        from opensight.jobs.celery_app import make_celery, send_job

        celery = make_celery(services.redis.url)
        for job_id in job_ids:
            send_job(celery, job_id, "cpu")
        celery.close()
        log_phase("duplicates sent")

        final_sql = "SELECT count(*) FROM jobs WHERE status NOT IN ('pending', 'processing')"
        _wait(lambda: _query(url, final_sql)[0][0] >= total, 90, "all jobs final", logs)
        log_phase("all final")
        _wait(lambda: len(receiver.counts()) >= total, 30, "all webhooks", logs)
        log_phase("all webhooks")

        # The second deliveries queue behind the first ones: wait until the survivor has
        # taken them (each is a no-op), then leave room for a duplicate to show up.
        def noops() -> int:
            return survivor.log().count("not runnable")

        _wait(lambda: noops() >= total - 10, 60, "the duplicate deliveries", logs)
        time.sleep(2.5)

        rows = _query(
            url,
            "SELECT id, status, attempts, webhook_status, webhook_attempts FROM jobs",
        )
        assert len(rows) == total
        assert Counter(row.status for row in rows) == {"completed": total}, logs()
        assert all(row.attempts >= 1 for row in rows)

        # Results: the executor logs one line per outcome it wrote; none is written twice.
        written = Counter(worker_finish_lines(victim.log()) + worker_finish_lines(survivor.log()))
        assert max(written.values()) == 1, [k for k, n in written.items() if n > 1]
        # (a job the victim finished right before SIGKILL may have no line)
        assert len(written) >= total - 2

        # The jobs the killed worker held were delivered again and completed elsewhere.
        assert held_at_kill, "the victim held no job when it was killed"
        attempts = {row.id: row.attempts for row in rows}
        survivor_ids = set(worker_finish_lines(survivor.log()))
        for job_id in held_at_kill:
            assert attempts[job_id] >= 2
            assert job_id in survivor_ids

        # Webhooks: exactly one delivery per job, signed, recorded once on the row.
        counts = receiver.counts()
        assert set(counts) == set(job_ids)
        assert set(counts.values()) == {1}, [k for k, n in counts.items() if n > 1]
        assert not receiver.bad
        assert {row.webhook_status for row in rows} == {"delivered"}
        assert all(len(row.webhook_attempts) == 1 for row in rows)

        # Clients see one service: a job submitted through one API is read through the other.
        for index in (0, 1, 101):
            other = apis[(index + 1) % 2]
            body = httpx.get(f"{other.url}/v1/jobs/{submitted[index]}", headers=headers).json()
            assert body["status"] == "completed" and "quality" in body["result"]

        # The survivor's Prometheus endpoint counts the analyzer runs it did.
        metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
        runs = [
            float(line.split()[-1])
            for line in metrics.splitlines()
            if line.startswith('opensight_analyzer_seconds_count{analyzer="quality"}')
        ]
        assert runs and runs[0] >= len(survivor_ids)

        # The bytes live in the bucket, not on the API's disk.
        s3 = services.s3.client()
        objects = s3.list_objects_v2(Bucket=services.s3.bucket, Prefix="blobs/")
        assert objects["KeyCount"] == total
        assert not any((data / "blobs").rglob("*")) if (data / "blobs").exists() else True
    finally:
        for process in processes:
            process.stop()
        receiver.stop()
        _dispose(services.pg.url)


@pytest.mark.scaleout
@pytest.mark.postgres
def test_one_job_over_rabbitmq(tmp_path: Path) -> None:
    """The same code over RabbitMQ (AMQP) with file blobs; queues private to this test."""
    require(rabbit=True)
    pg = PgDatabase().create()
    tag = uuid.uuid4().hex[:8]
    queues = {"OPENSIGHT_CPU_QUEUE": f"cpu-{tag}", "OPENSIGHT_GPU_QUEUE": f"gpu-{tag}"}
    data = tmp_path / "data"
    env = {**base_env(pg.url, RABBIT_URL, data), **queues}
    api = Api("api", tmp_path, env)
    # This worker takes the cpu queue only: a job needing a model must wait for a gpu worker.
    worker = Worker("worker", tmp_path, env, "--queues", queues["OPENSIGHT_CPU_QUEUE"])
    try:
        assert db_upgrade(env, data).returncode == 0
        key = create_key(data, "rabbit", env=env)
        api.start()
        worker.start()
        api.wait_ready()
        worker.wait_ready()
        assert httpx.get(api.url + "/readyz").json()["checks"]["broker"] is True
        headers = {"Authorization": f"Bearer {key['key']}"}
        image = photo_bytes((200, 150))
        routed = None
        from opensight.analyzers import registry

        if "tags" in registry.all_analyzers():  # a model analyzer: routed to the gpu queue
            response = httpx.post(
                api.url + "/v1/analyze",
                headers=headers,
                files={"image": ("a.jpg", image, "image/jpeg")},
                data={"async": "true", "features": "tags"},
            )
            assert response.status_code == 202, response.text
            routed = response.json()["id"]
        response = httpx.post(
            api.url + "/v1/analyze",
            headers=headers,
            files={"image": ("a.jpg", image, "image/jpeg")},
            data={"async": "true", "features": "quality,metadata"},
        )
        assert response.status_code == 202, response.text
        job_id = response.json()["id"]
        body: dict[str, Any] = {}

        def finished() -> bool:
            body.update(httpx.get(f"{api.url}/v1/jobs/{job_id}", headers=headers).json())
            return body["status"] not in ("pending", "processing")

        _wait(finished, 60, "the job", lambda: worker.log()[-3000:])
        assert body["status"] == "completed" and body["attempts"] == 1
        assert body["result"]["metadata"]["width"] == 200
        assert worker_finish_lines(worker.log()) == [job_id]
        if routed is not None:  # still waiting in the gpu queue, untouched by the cpu worker
            job = httpx.get(f"{api.url}/v1/jobs/{routed}", headers=headers).json()
            assert job["status"] == "pending" and job["attempts"] == 0
            from opensight.jobs.celery_app import make_celery, queue_depth

            celery = make_celery(RABBIT_URL)
            assert queue_depth(celery, queues["OPENSIGHT_GPU_QUEUE"]) == 1
            assert queue_depth(celery, queues["OPENSIGHT_CPU_QUEUE"]) == 0
            celery.close()
    finally:
        api.stop()
        worker.stop()
        pg.drop()
        try:
            import kombu

            with kombu.Connection(RABBIT_URL) as connection:
                channel = connection.default_channel
                for name in queues.values():
                    channel.queue_delete(name)
        except Exception:
            pass


@pytest.mark.scaleout
@pytest.mark.postgres
def test_jobs_accepted_while_the_broker_is_down_run_later(
    services: Services, tmp_path: Path
) -> None:
    """An API whose broker is unreachable still accepts jobs (the row is the truth) and
    says so in /readyz; a worker's sweeper later sends them and they complete."""
    data = tmp_path / "data"
    env = {**base_env(services.pg.url, services.redis.url, data), **services.s3.env()}
    dead_broker = {"OPENSIGHT_BROKER_URL": f"redis://127.0.0.1:{free_port()}/0"}
    assert db_upgrade(env, data).returncode == 0
    key = create_key(data, "nobroker", env=env)
    api = Api("api", tmp_path, {**env, **dead_broker})
    fast_sweep = {"OPENSIGHT_SWEEP_SECONDS": "0.5", "OPENSIGHT_REDISPATCH_SECONDS": "1"}
    worker = Worker("worker", tmp_path, {**env, **fast_sweep}, concurrency=1)
    try:
        api.start()
        worker.start()  # on the working broker: only its sweeper can send these jobs
        api.wait_ready(path="/healthz")
        ready = httpx.get(api.url + "/readyz", timeout=30)
        assert ready.status_code == 503 and ready.json()["checks"]["broker"] is False
        headers = {"Authorization": f"Bearer {key['key']}"}
        ids = []
        for seed in (1, 2, 3):
            response = httpx.post(
                api.url + "/v1/analyze",
                headers=headers,
                files={"image": ("a.jpg", photo_bytes((160, 120), seed=seed), "image/jpeg")},
                data={"async": "true", "features": "quality"},
                timeout=60,
            )
            assert response.status_code == 202, response.text
            ids.append(response.json()["id"])
        assert "left to the sweeper" in api.log()
        worker.wait_ready()

        def all_done() -> bool:
            states = [
                httpx.get(f"{api.url}/v1/jobs/{job_id}", headers=headers).json()["status"]
                for job_id in ids
            ]
            return states == ["completed"] * 3

        _wait(all_done, 60, "the jobs sent by the sweeper", lambda: worker.log()[-3000:])
        assert sorted(worker_finish_lines(worker.log())) == sorted(ids)
        assert "whose message was lost" in worker.log()
    finally:
        api.stop()
        worker.stop()


@pytest.mark.scaleout
@pytest.mark.postgres
def test_duplicate_delivery_and_sweeper(services: Services, tmp_path: Path) -> None:
    """In-process against PostgreSQL and Redis: claim by id is exclusive and write-once;
    the sweeper requeues a dead worker's job and resends a job whose message was lost."""
    from opensight.config import Settings
    from opensight.jobs.dispatch import DispatchingJobStore, Sweeper
    from opensight.jobs.model import JobStatus
    from opensight.jobs.store import JobStore, NewJob
    from opensight.services.container import Container

    settings = Settings(
        data_dir=tmp_path, database_url=services.pg.url, broker_url=services.redis.url
    )
    container = Container(settings)
    try:
        store = container.jobs
        assert isinstance(store, DispatchingJobStore)
        assert container.queue_for(["quality"]) == "cpu"
        depth = store.dispatcher.queue_depth
        job, created = store.create(NewJob("t", ["quality"], {"image_id": "img_x"}))
        assert created and depth("cpu") == 1  # sent once, by id

        first = store.claim_id(job.id, "worker-a", 30)
        assert first is not None and first.attempts == 1
        assert store.claim_id(job.id, "worker-b", 30) is None  # held by a live lease
        assert store.finish(job.id, "worker-a", JobStatus.COMPLETED, result={"n": 1})
        assert store.claim_id(job.id, "worker-b", 30) is None  # finished
        assert not store.finish(job.id, "worker-b", JobStatus.COMPLETED, result={"n": 2})
        assert store.get(job.id).result == {"n": 1}

        # A worker that died: its lease expires, the sweeper puts the job back and resends it.
        dead, _ = store.create(NewJob("t", ["quality"], {"image_id": "img_y"}))
        assert store.claim_id(dead.id, "worker-dead", 0.2) is not None
        time.sleep(0.4)
        sweeper = Sweeper(store, interval=60, redispatch_after=3600)
        before = depth("cpu")
        assert sweeper.sweep() == {"requeued": 1, "resent": 1}
        assert depth("cpu") == before + 1
        assert store.get(dead.id).status == JobStatus.PENDING
        again = store.claim_id(dead.id, "worker-b", 30)
        assert again is not None and again.attempts == 2
        assert not store.finish(dead.id, "worker-dead", JobStatus.COMPLETED, result={})
        assert store.finish(dead.id, "worker-b", JobStatus.COMPLETED, result={})

        # A job whose message was lost (row written, nothing sent): resent once its
        # queue is empty and it is older than redispatch_after.
        lost, _ = JobStore(container.db).create(NewJob("t", ["quality"], {"image_id": "img_z"}))
        services.redis.client.delete("cpu")
        assert depth("cpu") == 0
        time.sleep(0.3)
        sweeper = Sweeper(store, interval=60, redispatch_after=0.2)
        assert sweeper.sweep()["resent"] == 1
        assert depth("cpu") == 1
        assert sweeper.sweep()["resent"] == 0  # not again within redispatch_after
        body = json.loads(services.redis.client.lindex("cpu", 0))
        assert json.loads(_b64(body["body"]))[0] == [lost.id]
    finally:
        container.close()


def _b64(value: str) -> str:
    import base64

    return base64.b64decode(value).decode()


def test_worker_without_broker_and_doctor_hides_secrets(tmp_path: Path) -> None:
    """No broker: a clear usage error. `doctor` never shows the S3 secret or broker password."""
    result = cli(tmp_path, "worker", env={"OPENSIGHT_BROKER_URL": ""}, check=False)
    assert result.returncode == 2 and "OPENSIGHT_BROKER_URL" in result.stderr
    env = {
        "OPENSIGHT_BROKER_URL": "redis://:brokerpass123@127.0.0.1:6379/9",
        "OPENSIGHT_BLOB_URL": "s3://bucket/prefix",
        "OPENSIGHT_S3_ACCESS_KEY_ID": "AKIAEXAMPLE",
        "OPENSIGHT_S3_SECRET_ACCESS_KEY": "s3-secret-value-xyz",
    }
    outputs = {}
    for args in (("doctor", "--json"), ("doctor",)):
        result = cli(tmp_path, *args, env=env, check=False)
        outputs[args] = result.stdout
        output = result.stdout + result.stderr
        assert "s3-secret-value-xyz" not in output and "brokerpass123" not in output
    report = json.loads(outputs[("doctor", "--json")])
    assert report["config"]["blob_url"] == "s3://bucket/prefix"
    assert report["config"]["broker_url"] == "redis://:***@127.0.0.1:6379/9"


def test_queue_routing_by_model(tmp_path: Path) -> None:
    """A job whose analyzers (or their requirements) need a model goes to the gpu queue."""
    from opensight.analyzers import registry
    from opensight.analyzers.base import Analyzer
    from opensight.config import Settings
    from opensight.services.container import Container

    class NeedsModel(Analyzer):
        name, version, model = "scaleout-test-model", "1", "some-model"

        def analyze(self, images: Any, context: Any) -> list[dict[str, Any]]:
            return [{} for _ in images]

    class ReadsIt(Analyzer):
        name, version, requires = "scaleout-test-reader", "1", ("scaleout-test-model",)

        def analyze(self, images: Any, context: Any) -> list[dict[str, Any]]:
            return [{} for _ in images]

    registry.register(NeedsModel())
    registry.register(ReadsIt())
    try:
        container = Container(Settings(data_dir=tmp_path, gpu_queue="big", cpu_queue="small"))
        assert container.queue_for(["quality", "metadata"]) == "small"
        assert container.queue_for(["quality", "scaleout-test-model"]) == "big"
        assert container.queue_for(["scaleout-test-reader"]) == "big"
        builtins = registry.all_analyzers()
        for name, analyzer in builtins.items():
            if analyzer.model is not None:
                assert container.queue_for([name]) == "big", name
        for name in ("quality", "metadata", "ocr", "colors"):
            assert container.queue_for([name]) == "small", name
        if "tags" in builtins:
            assert container.queue_for(["quality", "tags"]) == "big"
    finally:
        registry._REGISTRY.pop("scaleout-test-model", None)
        registry._REGISTRY.pop("scaleout-test-reader", None)


def test_db_upgrade_unreachable_database_is_a_clear_error(tmp_path: Path) -> None:
    env = {
        "OPENSIGHT_DATABASE_URL": f"postgresql://postgres:pw-hidden-42@127.0.0.1:{free_port()}/x"
    }
    result = cli(tmp_path, "db", "upgrade", env=env, check=False)
    assert result.returncode == 1
    assert "OperationalError" in result.stderr and "pw-hidden-42" not in result.stderr
    assert "postgres:***@127.0.0.1" in result.stderr


def test_db_upgrade_sqlite(tmp_path: Path) -> None:
    result = cli(tmp_path, "db", "upgrade")
    assert result.returncode == 0 and "newest schema" in result.stderr
    assert (tmp_path / "opensight.db").exists()


def test_worker_with_unreachable_database_exits_clearly(tmp_path: Path) -> None:
    env = {
        "OPENSIGHT_BROKER_URL": "redis://127.0.0.1:6379/15",
        "OPENSIGHT_DATABASE_URL": f"postgresql://postgres:pw-hidden-43@127.0.0.1:{free_port()}/x",
    }
    result = cli(tmp_path, "worker", env=env, check=False)
    assert result.returncode == 1, result.stderr[-2000:]
    assert "OperationalError" in result.stderr and "pw-hidden-43" not in result.stderr


def test_task_validates_its_argument_and_retries_infrastructure_errors() -> None:
    """In-process (Celery eager mode): a malformed id is refused without touching anything;
    an error escaping the executor (database down) is retried until it goes through."""
    from sqlalchemy.exc import OperationalError

    from opensight.jobs.celery_app import MAX_TASK_RETRIES, make_celery, register_run_task

    app = make_celery("memory://")
    app.conf.task_always_eager = True
    calls: list[str] = []

    def execute(job_id: str) -> str:
        calls.append(job_id)
        if len(calls) <= 2:
            raise OperationalError("SELECT 1", {}, Exception("connection refused"))
        return "completed"

    task = register_run_task(app, execute)
    for bad in (None, 42, "../etc", "job_" + "x" * 60, ["job_1"]):
        assert task.apply(args=[bad]).get() == "malformed"
    assert calls == []
    assert task.apply(args=["job_0123"]).get() == "completed"
    assert calls == ["job_0123"] * 3

    calls.clear()

    def always_down(job_id: str) -> str:
        calls.append(job_id)
        raise OperationalError("SELECT 1", {}, Exception("connection refused"))

    failing = register_run_task(make_celery("memory://"), always_down)
    failing.app.conf.task_always_eager = True
    result = failing.apply(args=["job_0456"])
    assert result.failed() and len(calls) == MAX_TASK_RETRIES + 1
