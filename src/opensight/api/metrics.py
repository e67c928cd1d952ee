"""Prometheus metrics, one registry per app (several apps can live in one test process)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "opensight_http_requests_total",
            "HTTP requests",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "opensight_http_request_seconds",
            "HTTP request latency",
            ["method", "route"],
            registry=self.registry,
        )
        self.analyzer_seconds = Histogram(
            "opensight_analyzer_seconds",
            "Time spent in each analyzer per call",
            ["analyzer"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )

    def observe_analyzer(self, name: str, seconds: float) -> None:
        self.analyzer_seconds.labels(name).observe(seconds)

    def add_job_collector(self, counts: Callable[[], dict[str, int]]) -> None:
        self.registry.register(_JobCollector(counts))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _JobCollector(Collector):
    """Reads job counts from the database at scrape time (the row is the truth)."""

    def __init__(self, counts: Callable[[], dict[str, int]]) -> None:
        self.counts = counts

    def collect(self) -> Any:
        by_status = GaugeMetricFamily("opensight_jobs", "Jobs by status", labels=["status"])
        depth = GaugeMetricFamily("opensight_queue_depth", "Jobs waiting for a worker")
        try:
            counts = self.counts()
        except Exception:
            counts = {}
        for status in (
            "pending",
            "processing",
            "completed",
            "skipped",
            "failed",
            "timeout",
            "cancelled",
        ):
            by_status.add_metric([status], counts.get(status, 0))
        depth.add_metric([], counts.get("pending", 0))
        yield by_status
        yield depth


class MetricsMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware overhead); labels by route template, not raw path."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "GET")
            self.metrics.requests.labels(method, template, str(status[0])).inc()
            self.metrics.latency.labels(method, template).observe(time.perf_counter() - started)
