"""How `facezoo serve` batches, waits and limits: its options, shared by the app and its routes."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from facezoo.serving.batcher import BatchingOptions
from facezoo.serving.faces import DEFAULT_MAX_IMAGE_PIXELS


@dataclass
class ServeConfig:
    """How the server batches, waits and limits; `facezoo serve`'s options."""

    host: str = "127.0.0.1"
    port: int = 8000
    batching: BatchingOptions = field(default_factory=BatchingOptions)
    timeout_s: float = 30.0  # a request not answered by then gets 503
    max_body_bytes: int = 64 << 20
    read_timeout_s: float = 30.0  # the headers, and each piece of a body, must arrive within this (408)
    max_pending_bytes: int = 256 << 20  # bodies being read or parsed, over all connections (503 above)
    max_connections: int = 512  # open connections; a new one over it is answered 503 and closed
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS  # declared width × height of one image (413 above)
    # threads parsing bodies and decoding images at once (the model runs on its own lanes)
    worker_threads: int = field(default_factory=lambda: max(4, 2 * (os.cpu_count() or 1)))
