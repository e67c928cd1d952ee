"""Scale-out benchmark: worker processes, API processes, and latency under load.

Real processes against the real services of the machine (PostgreSQL 127.0.0.1:5432,
Redis 127.0.0.1:6379), as tests/test_scaleout.py starts them::

    python bench/scale.py            # ~5 minutes on a quiet 2-core machine
    python bench/scale.py --quick    # smaller counts

Three tables:

1. Worker scaling: ``quality,ocr`` jobs per second with 1, 2 and 4 ``opensight worker``
   processes (``--concurrency`` threads each, default 1), from the jobs' own
   ``started_at``/``finished_at`` (submission is not timed). The ratio is against 1 worker.
2. Submission: async jobs accepted per second through 1 versus 2 ``opensight serve
   --no-workers`` processes (JSON ``{"image_id", "async": true}``, 16 client threads,
   no worker running), each accepted job is a PostgreSQL row plus a Redis message.
3. Latency: jobs submitted at a steady rate of half the capacity measured with 2
   workers; p50/p99 of ``finished_at - created_at``.

All processes share the machine with this client: on few cores the numbers say
where the box saturates, not what a cluster does (see docs/deploy.md, "Sizing").
"""

# ruff: noqa: E402 - sys.path is fixed before the imports below
from __future__ import annotations

import os
import sys

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if sys.path and os.path.abspath(sys.path[0] or ".") == os.path.join(_ROOT, "bench"):
    # `python bench/scale.py`: sibling files (bench/collections.py) must not shadow the
    # standard library, and `tests.*` imports from the root. Before any other import.
    sys.path[0] = _ROOT
elif _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import argparse
import io
import platform
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table
from tests.cluster import (
    Api,
    PgDatabase,
    RedisDb,
    Worker,
    base_env,
    db_upgrade,
    missing_services,
)
from tests.server import create_key

FEATURES = "quality,ocr"
console = Console(width=None if sys.stdout.isatty() else 140)


def text_photos(count: int, size: tuple[int, int] = (480, 320)) -> list[bytes]:
    """Photos with a few lines of printed text, so OCR has real work; all different."""
    from PIL import Image, ImageDraw, ImageFont
    from skimage import data

    base = Image.fromarray(data.astronaut()).resize(size)
    try:
        font: Any = ImageFont.load_default(size=26)
    except TypeError:  # Pillow < 10.1
        font = ImageFont.load_default()
    out = []
    for index in range(count):
        image = base.copy()
        draw = ImageDraw.Draw(image)
        draw.rectangle((10, 10, size[0] - 10, 130), fill=(255, 255, 255))
        draw.text((20, 20), f"Invoice {1000 + index}", fill=(0, 0, 0), font=font)
        draw.text((20, 60), f"Total due: {index * 7 % 997}.00 EUR", fill=(0, 0, 0), font=font)
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=90)
        out.append(buffer.getvalue())
    return out


class Cluster:
    """One database, one Redis db, one shared data dir (file blobs) for every process."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.pg = PgDatabase().create()
        self.redis = RedisDb()
        self.data = workdir / "data"
        self.env = {
            **base_env(self.pg.url, self.redis.url, self.data),
            "OPENSIGHT_SWEEP_SECONDS": "5",
            "OPENSIGHT_REDISPATCH_SECONDS": "600",
        }
        assert db_upgrade(self.env, self.data).returncode == 0
        self.key = create_key(self.data, "bench", env=self.env)
        self.headers = {"Authorization": f"Bearer {self.key['key']}"}
        self._n = 0
        self.started: list[Api | Worker] = []
        """Every process started, so close() stops them even after an interrupt."""

    def name(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}{self._n}"

    def apis(self, count: int, queue: str = "cpu") -> list[Api]:
        """API processes sending ``quality,ocr`` jobs to broker queue ``queue``."""
        env = {**self.env, "OPENSIGHT_CPU_QUEUE": queue}
        apis = [Api(self.name("api"), self.workdir, env) for _ in range(count)]
        for api in apis:
            self.started.append(api.start())
        return [api.wait_ready(120) for api in apis]

    def workers(self, queue_sets: list[list[str]], concurrency: int) -> list[Worker]:
        """One worker process per entry, taking jobs from those queues."""
        workers = [
            Worker(
                self.name("worker"),
                self.workdir,
                self.env,
                "--queues",
                ",".join(queues),
                concurrency=concurrency,
            )
            for queues in queue_sets
        ]
        for worker in workers:
            self.started.append(worker.start())
        return [worker.wait_ready(180) for worker in workers]

    def query(self, sql: str, **params: Any) -> list[Any]:
        from sqlalchemy import create_engine, text

        engine = create_engine(self.pg.url)
        try:
            with engine.connect() as conn:
                return list(conn.execute(text(sql), params))
        finally:
            engine.dispose()

    def reset_jobs(self) -> None:
        """Forget queued jobs (rows and messages) between phases."""
        from sqlalchemy import create_engine, text

        engine = create_engine(self.pg.url)
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM jobs"))
        engine.dispose()
        for queue in self.redis.client.keys("scale-*"):
            self.redis.client.delete(queue)

    def close(self) -> None:
        for process in self.started:
            process.stop()
        self.redis.release()
        self.pg.drop()


def upload(api: Api, headers: dict[str, str], images: list[bytes]) -> list[str]:
    ids = []
    with httpx.Client(timeout=60) as client:
        for index, data in enumerate(images):
            response = client.post(
                api.url + "/v1/images",
                headers=headers,
                files={"image": (f"{index}.jpg", data, "image/jpeg")},
            )
            response.raise_for_status()
            ids.append(response.json()["id"])
    return ids


def submit(url: str, headers: dict[str, str], image_id: str, client: httpx.Client) -> str:
    response = client.post(
        url + "/v1/analyze",
        headers=headers,
        json={"image_id": image_id, "async": True, "features": FEATURES.split(",")},
    )
    if response.status_code != 202:
        raise RuntimeError(f"{response.status_code}: {response.text[:300]}")
    return str(response.json()["id"])


def wait_final(cluster: Cluster, job_ids: list[str], timeout: float) -> list[Any]:
    deadline = time.monotonic() + timeout
    while True:
        rows = cluster.query(
            "SELECT id, status, created_at, started_at, finished_at FROM jobs WHERE id = ANY(:ids)",
            ids=job_ids,
        )
        done = [r for r in rows if r.status not in ("pending", "processing")]
        if len(done) == len(job_ids):
            return rows
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(done)}/{len(job_ids)} jobs final after {timeout}s")
        time.sleep(0.5)


# ---------------------------------------------------------------------- phases
def queue_of(count: int) -> str:
    return f"scale-n{count}"


_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of these processes (all their threads) from Linux /proc."""
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / _TICKS
        except (OSError, IndexError, ValueError):
            pass
    return total


def run_batch(cluster: Cluster, api: Api, image_ids: list[str], jobs: int) -> tuple[float, float]:
    """Submit ``jobs`` jobs and wait for them: jobs/s from their own start and end times,
    and the seconds that span."""
    with httpx.Client(timeout=60) as client:
        ids = [
            submit(api.url, cluster.headers, image_ids[i % len(image_ids)], client)
            for i in range(jobs)
        ]
    final = wait_final(cluster, ids, timeout=60 + jobs * 5)
    failed = [r for r in final if r.status != "completed"]
    if failed:
        raise RuntimeError(f"{len(failed)} job(s) did not complete: {failed[:3]}")
    span = (max(r.finished_at for r in final) - min(r.started_at for r in final)).total_seconds()
    return jobs / span, span


def worker_scaling(
    cluster: Cluster,
    apis: dict[int, Api],
    workers: list[Worker],
    image_ids: list[str],
    jobs: int,
    rounds: int,
) -> list[dict[str, Any]]:
    """All worker processes run throughout; configuration N sends its jobs to a queue that
    exactly N of them take, so the configurations alternate in rounds (order flipped each
    round) without restarts, and drift of a shared machine hits all of them."""
    counts = sorted(apis)
    pids = [worker.pid for worker in workers]
    rates: dict[int, list[float]] = {n: [] for n in counts}
    cpu_per_job: dict[int, list[float]] = {n: [] for n in counts}
    cores: dict[int, list[float]] = {n: [] for n in counts}
    for index in range(rounds):
        for count in counts if index % 2 == 0 else counts[::-1]:
            before = cpu_seconds(pids)
            rate, span = run_batch(cluster, apis[count], image_ids, jobs)
            used = cpu_seconds(pids) - before
            rates[count].append(rate)
            cpu_per_job[count].append(used / jobs)
            cores[count].append(used / span)
            console.print(
                f"  {count} worker(s): {rate:.2f} jobs/s, {used / jobs:.2f} CPU s/job, "
                f"{used / span:.2f} cores busy"
            )
            cluster.reset_jobs()
    return [
        {
            "workers": n,
            "jobs": jobs,
            "rounds": rounds,
            "rate": statistics.median(rates[n]),
            "cpu_per_job": statistics.median(cpu_per_job[n]),
            "cores": statistics.median(cores[n]),
        }
        for n in counts
    ]


def hammer(apis: list[Api], headers: dict[str, str], image_ids: list[str], seconds: float) -> int:
    """16 client threads submitting as fast as the APIs accept, spread over ``apis``."""
    stop_at = time.monotonic() + seconds

    def client_loop(index: int) -> int:
        api = apis[index % len(apis)]
        n = 0
        with httpx.Client(timeout=60) as client:
            while time.monotonic() < stop_at:
                submit(api.url, headers, image_ids[n % len(image_ids)], client)
                n += 1
        return n

    with ThreadPoolExecutor(16) as pool:
        return sum(pool.map(client_loop, range(16)))


def submission(
    cluster: Cluster, image_ids: list[str], seconds: float, rounds: int
) -> list[dict[str, Any]]:
    """1 vs 2 API processes, both started once and kept; alternated in rounds (the order
    flips each round) so drift of a shared machine hits both; medians reported."""
    apis = cluster.apis(2, queue="scale-nobody")  # no worker takes these: pure submission
    rates: dict[int, list[float]] = {1: [], 2: []}
    api_ms: dict[int, list[float]] = {1: [], 2: []}
    try:
        for index in range(rounds):
            for count in (1, 2) if index % 2 == 0 else (2, 1):
                pids = [api.pid for api in apis[:count]]
                before, started = cpu_seconds(pids), time.monotonic()
                accepted = hammer(apis[:count], cluster.headers, image_ids, seconds)
                rates[count].append(accepted / (time.monotonic() - started))
                api_ms[count].append((cpu_seconds(pids) - before) * 1000 / max(1, accepted))
                console.print(
                    f"  {count} API process(es): {rates[count][-1]:.0f} jobs/s, "
                    f"{api_ms[count][-1]:.2f} API CPU ms/job"
                )
                cluster.reset_jobs()
    finally:
        for api in apis:
            api.stop()
    return [
        {
            "apis": count,
            "rounds": len(values),
            "rate": statistics.median(values),
            "api_ms": statistics.median(api_ms[count]),
        }
        for count, values in rates.items()
    ]


def latency(
    cluster: Cluster, api: Api, image_ids: list[str], rate: float, seconds: float
) -> dict[str, Any]:
    """Open loop: one submission every 1/rate seconds, whatever the workers do."""
    ids: list[str] = []
    with httpx.Client(timeout=60) as client:
        interval = 1.0 / rate
        next_at = time.monotonic()
        end = next_at + seconds
        while next_at < end:
            pause = next_at - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            ids.append(submit(api.url, cluster.headers, image_ids[len(ids) % 16], client))
            next_at += interval
    final = wait_final(cluster, ids, timeout=120 + len(ids) * 5)
    waits = sorted((r.finished_at - r.created_at).total_seconds() for r in final)
    p99_index = min(len(waits) - 1, round(0.99 * (len(waits) - 1)))
    cluster.reset_jobs()
    return {
        "rate": rate,
        "jobs": len(ids),
        "p50": statistics.median(waits),
        "p99": waits[p99_index],
        "max": waits[-1],
    }


# ---------------------------------------------------------------------- output
def print_tables(
    scaling: list[dict[str, Any]], subs: list[dict[str, Any]], lat: dict[str, Any]
) -> None:
    table = Table(title=f"worker processes ({FEATURES} jobs)")
    columns = ("worker processes", "jobs x rounds", "median jobs/s", "vs 1 worker")
    for column in (*columns, "worker CPU s/job", "cores busy"):
        table.add_column(column, justify="right")
    base = scaling[0]["rate"]
    for row in scaling:
        table.add_row(
            str(row["workers"]),
            f"{row['jobs']} x {row['rounds']}",
            f"{row['rate']:.2f}",
            f"{row['rate'] / base:.2f}x",
            f"{row['cpu_per_job']:.2f}",
            f"{row['cores']:.2f}",
        )
    console.print(table)
    table = Table(title="async submission (no worker takes these jobs)")
    for column in ("API processes", "rounds", "median jobs/s", "vs 1 API", "API CPU ms/job"):
        table.add_column(column, justify="right")
    base = subs[0]["rate"]
    for row in subs:
        table.add_row(
            str(row["apis"]),
            str(row["rounds"]),
            f"{row['rate']:.0f}",
            f"{row['rate'] / base:.2f}x",
            f"{row['api_ms']:.2f}",
        )
    console.print(table)
    table = Table(title="job latency at half the 2-worker capacity")
    for column in ("submitted/s", "jobs", "p50 s", "p99 s", "max s"):
        table.add_column(column, justify="right")
    table.add_row(
        f"{lat['rate']:.2f}",
        str(lat["jobs"]),
        f"{lat['p50']:.2f}",
        f"{lat['p99']:.2f}",
        f"{lat['max']:.2f}",
    )
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts (smoke run)")
    parser.add_argument("--workers", default="1,2,4", help="worker process counts")
    parser.add_argument("--concurrency", type=int, default=1, help="threads per worker")
    parser.add_argument("--jobs", type=int, help="jobs per measurement (default 40; quick 16)")
    parser.add_argument("--rounds", type=int, help="alternated rounds (default 3; quick 2)")
    args = parser.parse_args()
    missing = missing_services()
    if missing:
        sys.exit("bench/scale.py needs: " + "; ".join(missing))
    jobs = args.jobs or (16 if args.quick else 40)
    counts = [int(n) for n in args.workers.split(",")]
    console.print(
        f"[bold]scale-out bench[/bold]  {platform.platform()}  cpus={os.cpu_count()}  "
        f"load={os.getloadavg()[0]:.1f}  jobs={jobs}  concurrency/worker={args.concurrency}"
    )
    rounds = args.rounds or (2 if args.quick else 3)
    with tempfile.TemporaryDirectory(prefix="opensight-scale-") as tmp:
        cluster = Cluster(Path(tmp))
        processes: list[Any] = []
        try:
            api = cluster.apis(1)[0]
            image_ids = upload(api, cluster.headers, text_photos(16))
            api.stop()
            console.print("submission ...")
            subs = submission(cluster, image_ids, 5 if args.quick else 10, rounds + 1)
            console.print("starting workers ...")
            apis = {n: cluster.apis(1, queue=queue_of(n))[0] for n in counts}
            processes += apis.values()
            queue_sets = [[queue_of(n) for n in counts if k < n] for k in range(max(counts))]
            workers = cluster.workers(queue_sets, args.concurrency)
            processes += workers
            console.print("worker scaling ...")
            scaling = worker_scaling(cluster, apis, workers, image_ids, jobs, rounds)
            two = next((r["rate"] for r in scaling if r["workers"] == 2), scaling[-1]["rate"])
            console.print(f"latency at {two / 2:.2f} jobs/s ...")
            lat = latency(
                cluster,
                apis[2 if 2 in apis else counts[-1]],
                image_ids,
                two / 2,
                15 if args.quick else 60,
            )
        finally:
            for process in processes:
                process.stop()
            cluster.close()
    print_tables(scaling, subs, lat)


if __name__ == "__main__":
    main()
