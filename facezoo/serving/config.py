"""How `facezoo serve` batches, waits and limits: its options, shared by the app and its routes."""

from __future__ import annotations

from dataclasses import dataclass, field

from facezoo.serving.batcher import BatchingOptions


@dataclass
class ServeConfig:
    """How the server batches, waits and limits; `facezoo serve`'s options."""

    host: str = "127.0.0.1"
    port: int = 8000
    batching: BatchingOptions = field(default_factory=BatchingOptions)
    timeout_s: float = 30.0  # a request not answered by then gets 503
    max_body_bytes: int = 64 << 20
