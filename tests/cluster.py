"""A scale-out cluster of real processes for tests and bench/scale.py.

PostgreSQL database, Redis db number (or a RabbitMQ vhost's private queues) and
an S3 bucket (moto's server on loopback) made for one run and removed after;
`opensight serve --no-workers` and `opensight worker` started as users run them.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Self

import httpx

from tests.server import cli, free_port

PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
RABBIT_URL = "amqp://guest:guest@127.0.0.1:5672//"
_CLAIM_KEY = "opensight:test-claim"


def missing_services(rabbit: bool = False) -> list[str]:
    """Which of the real services this machine lacks (empty: all there)."""
    missing = []
    try:
        from sqlalchemy import create_engine

        engine = create_engine(PG_ADMIN_URL)
        with engine.connect():
            pass
        engine.dispose()
    except Exception:
        missing.append("PostgreSQL at 127.0.0.1:5432 (user postgres)")
    try:
        import redis

        redis.Redis(REDIS_HOST, REDIS_PORT, socket_timeout=2).ping()
    except Exception:
        missing.append("Redis at 127.0.0.1:6379")
    if rabbit:
        try:
            import kombu

            with kombu.Connection(RABBIT_URL, connect_timeout=2) as connection:
                connection.ensure_connection(max_retries=1)
        except Exception:
            missing.append("RabbitMQ at 127.0.0.1:5672 (guest)")
    return missing


class PgDatabase:
    def __init__(self) -> None:
        from sqlalchemy import create_engine

        self.name = f"opensight_scale_{uuid.uuid4().hex[:12]}"
        self.admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{self.name}"

    def create(self) -> PgDatabase:
        from sqlalchemy import text

        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{self.name}"'))
        return self

    def drop(self) -> None:
        from sqlalchemy import text

        with self.admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        self.admin.dispose()


class RedisDb:
    """A Redis db number nobody else uses now: claimed with SET NX, flushed after."""

    def __init__(self) -> None:
        import redis

        numbers = list(range(1, 16))
        random.shuffle(numbers)
        token = uuid.uuid4().hex
        for number in numbers:
            client = redis.Redis(REDIS_HOST, REDIS_PORT, db=number)
            if client.dbsize() == 0 and client.set(_CLAIM_KEY, token, nx=True, ex=3600):
                self.number, self.client = number, client
                self.url = f"redis://{REDIS_HOST}:{REDIS_PORT}/{number}"
                return
        raise RuntimeError("no free Redis db number (1-15)")

    def release(self) -> None:
        self.client.flushdb()
        self.client.close()


class S3Server:
    """moto's S3 server on loopback with one bucket, in its own process (so serving the
    workers' GETs does not compete with the test for this process's GIL)."""

    def __init__(self, bucket: str = "opensight-test") -> None:
        self.port = free_port()
        self.bucket = bucket
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> S3Server:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                httpx.get(self.endpoint + "/moto-api/", timeout=1)
                break
            except httpx.HTTPError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("moto's S3 server did not start") from None
                time.sleep(0.1)
        self.client().create_bucket(Bucket=self.bucket)
        return self

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing-key",
            aws_secret_access_key="testing-secret",
        )

    def env(self, prefix: str = "blobs") -> dict[str, str]:
        return {
            "OPENSIGHT_BLOB_URL": f"s3://{self.bucket}/{prefix}",
            "OPENSIGHT_S3_ENDPOINT_URL": self.endpoint,
            "OPENSIGHT_S3_REGION": "us-east-1",
            "OPENSIGHT_S3_ACCESS_KEY_ID": "testing-key",
            "OPENSIGHT_S3_SECRET_ACCESS_KEY": "testing-secret",
        }

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class Process:
    """An `opensight` subprocess with its output in a log file."""

    def __init__(self, name: str, workdir: Path, args: list[str], env: dict[str, str]) -> None:
        self.name = name
        self.workdir = workdir
        self.args = args
        self.env = env
        self.log_path = workdir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Self:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "opensight", *self.args],
            env={**os.environ, **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, marker: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if marker in self.log():
                return
            if not self.alive():
                raise RuntimeError(f"{self.name} exited:\n{self.log()[-3000:]}")
            time.sleep(0.1)
        raise RuntimeError(f"{self.name}: no {marker!r} in {timeout}s:\n{self.log()[-3000:]}")

    def stop(self, timeout: float = 20.0) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def signal(self, signum: int) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signum)

    def kill(self) -> None:
        """SIGKILL: nothing of the process's shutdown code runs, as when a machine dies."""
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)


class Api(Process):
    def __init__(self, name: str, workdir: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        args = ["serve", "--no-workers", "--host", "127.0.0.1", "--port", str(self.port)]
        super().__init__(name, workdir, [*args, "--log-level", "warning"], env)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 60.0, path: str = "/readyz") -> Api:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited:\n{self.log()[-3000:]}")
            try:
                if httpx.get(self.url + path, timeout=5).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready in {timeout}s:\n{self.log()[-3000:]}")


class Worker(Process):
    def __init__(
        self, name: str, workdir: Path, env: dict[str, str], *extra: str, concurrency: int = 2
    ) -> None:
        args = ["worker", "--concurrency", str(concurrency), *extra]
        super().__init__(name, workdir, args, env)

    def wait_ready(self, timeout: float = 60.0) -> Worker:
        self.wait_for_log(" ready.", timeout)
        return self


def base_env(database_url: str, broker_url: str, data_dir: Path) -> dict[str, str]:
    """What every process of a test cluster shares (each still gets its own data dir)."""
    return {
        "OPENSIGHT_DATABASE_URL": database_url,
        "OPENSIGHT_BROKER_URL": broker_url,
        "OPENSIGHT_DATA_DIR": str(data_dir),
        "OPENSIGHT_ALLOW_PRIVATE_URLS": "true",
        "OPENSIGHT_RATE_LIMIT_PER_SECOND": "0",
    }


def db_upgrade(env: dict[str, str], data_dir: Path) -> subprocess.CompletedProcess[str]:
    return cli(data_dir, "db", "upgrade", env=env)


def worker_finish_lines(log: str) -> list[str]:
    """Job ids of the outcomes a worker wrote (the executor logs one line per write)."""
    ids = []
    for line in log.splitlines():
        if "finished job " in line:
            ids.append(line.split("finished job ", 1)[1].split()[0])
    return ids
