"""Prometheus metrics of one server: requests, latency, batch sizes, queue depth."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    """A registry of its own per server, so that two apps in one process never share counters."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter("facezoo_requests", "HTTP requests answered, by route and status code.",
                                ["route", "code"], registry=self.registry)
        self.latency = Histogram("facezoo_request_duration_seconds", "Time from request to response, by route.",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.batch_size = Histogram("facezoo_batch_size", "Images per inference after dynamic batching.",
                                    ["model"], buckets=BATCH_BUCKETS, registry=self.registry)
        self.inference = Histogram("facezoo_inference_duration_seconds", "Time of one batched inference.",
                                   ["model"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.images = Counter("facezoo_images", "Images inferred.", ["model"], registry=self.registry)
        self.queued = Gauge("facezoo_admitted_images", "Images queued or running.", ["model"], registry=self.registry)

    def observe_request(self, route: str, code: int, seconds: float) -> None:
        self.requests.labels(route, str(code)).inc()
        self.latency.labels(route).observe(seconds)

    def observe_batch(self, model: str, size: int, seconds: float) -> None:
        self.batch_size.labels(model).observe(size)
        self.inference.labels(model).observe(seconds)
        self.images.labels(model).inc(size)

    def track_queue(self, model: str, read) -> None:
        self.queued.labels(model).set_function(read)

    def render(self) -> bytes:
        return generate_latest(self.registry)
