"""`facezoo serve`: converted models over HTTP, KServe v2 (Open Inference Protocol) and face endpoints.

    from facezoo.serving import ModelChoice, ServeConfig, open_model, create_app
    served = open_model(ModelChoice("arcface"), zoo, config.batching, threshold=None)
    app = create_app({served.name: served}, config)      # any ASGI server runs it

Concurrent requests are batched (facezoo.serving.batcher) onto OpenVINO's asynchronous
requests; see app.py for the endpoints and kserve.py for the wire format.
"""

from facezoo.serving.app import create_app
from facezoo.serving.config import ServeConfig
from facezoo.serving.batcher import BatchingOptions, DynamicBatcher
from facezoo.serving.errors import BadRequest, ModelNotServed, PayloadTooLarge, ServingError, Unavailable
from facezoo.serving.metrics import Metrics
from facezoo.serving.models import ModelChoice, ServedModel, open_model

__all__ = [
    "BadRequest",
    "BatchingOptions",
    "DynamicBatcher",
    "Metrics",
    "ModelChoice",
    "ModelNotServed",
    "PayloadTooLarge",
    "ServeConfig",
    "ServedModel",
    "ServingError",
    "Unavailable",
    "create_app",
    "open_model",
]
