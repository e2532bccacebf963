"""The FastAPI application: KServe v2 endpoints, the face endpoints, health and /metrics.

Every refusal is `{"error": "..."}` with a 4xx/5xx status and the field at fault; nothing a
client sends can stop the server or make it unready.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from functools import partial

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response

import facezoo
from facezoo.errors import FacezooError
from facezoo.numerics import l2_normalize
from facezoo.serving.batcher import BatchingOptions
from facezoo.serving.errors import BadRequest, ModelNotServed, ServingError
from facezoo.serving.faces import MAX_FILES, form_files, prepare_faces, read_blobs, read_landmarks, read_threshold
from facezoo.serving.kserve import HEADER_LENGTH, decompress, encode_infer_response, parse_infer_request
from facezoo.serving.metrics import Metrics
from facezoo.serving.middleware import BodyLimit, RequestMetrics
from facezoo.serving.models import ServedModel

INLINE_JSON_BYTES = 64 << 10  # larger JSON bodies are parsed off the event loop


@dataclass
class ServeConfig:
    """How the server batches, waits and limits; `facezoo serve`'s options."""

    host: str = "127.0.0.1"
    port: int = 8000
    batching: BatchingOptions = field(default_factory=BatchingOptions)
    timeout_s: float = 30.0  # a request not answered by then gets 503
    max_body_bytes: int = 64 << 20


def create_app(models: dict[str, ServedModel], config: ServeConfig, metrics: Metrics | None = None) -> FastAPI:
    metrics = metrics or Metrics()
    for name, served in models.items():
        metrics.track_queue(name, lambda served=served: served.batcher.admitted_images)
    state = {"ready": True}

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        yield
        state["ready"] = False  # uvicorn has drained the requests in flight by now
        for served in models.values():
            served.close()

    app = FastAPI(title="facezoo", version=facezoo.__version__, lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(BodyLimit, limit=config.max_body_bytes)
    app.add_middleware(RequestMetrics, metrics=metrics)  # outermost: also counts 413s
    _add_error_handlers(app)

    def lookup(name: str, version: str | None = None, route: str | None = None) -> ServedModel:
        served = models.get(name)
        if served is None:
            raise ModelNotServed(f"unknown model {name!r}; this server has {', '.join(map(repr, models))}")
        if version not in (None, "", "1"):
            raise ModelNotServed(f"model {name!r} has no version {version!r}; it has version 1")
        if route is not None and route not in served.routes:
            raise ModelNotServed(f"model {name!r} ({served.model.task.name}) has no /{route}; its routes: "
                                 f"{', '.join('/' + r for r in served.routes) or 'none'} and /v2/models/{name}/infer")
        return served

    @app.get("/v2")
    async def server_metadata():
        return {"name": "facezoo", "version": facezoo.__version__, "extensions": ["binary_tensor_data"]}

    @app.get("/v2/health/live")
    async def live():
        return {"live": True}

    @app.get("/v2/health/ready")
    async def ready():
        return JSONResponse({"ready": state["ready"]}, status_code=200 if state["ready"] else 503)

    async def model_metadata(name: str, version: str | None = None):
        return lookup(name, version).metadata()

    async def model_ready(name: str, version: str | None = None):
        lookup(name, version)
        return {"name": name, "ready": state["ready"]}

    async def infer(name: str, request: Request, version: str | None = None):
        served = lookup(name, version)
        body = decompress(await request.body(), request.headers.get("content-encoding"), config.max_body_bytes)
        header_length = request.headers.get(HEADER_LENGTH)
        parse = partial(parse_infer_request, body, header_length, [served.input], served.outputs)
        inline = header_length is not None or len(body) <= INLINE_JSON_BYTES
        decoded = parse() if inline else await run_in_threadpool(parse)
        rows = await served.infer(served.model.prepare(decoded.inputs[served.input.name]), config.timeout_s)
        wanted = decoded.outputs if decoded.outputs is not None else dict.fromkeys(o.name for o in served.outputs)
        by_name = {output.name: output for output in served.outputs}
        results = [(by_name[name], rows[name], decoded.binary_output if binary is None else binary)
                   for name, binary in wanted.items()]
        payload, json_length = encode_infer_response(served.name, decoded.id, results)
        if json_length is None:
            return Response(payload, media_type="application/json")
        return Response(payload, media_type="application/octet-stream", headers={HEADER_LENGTH: str(json_length)})

    for prefix in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}"):
        app.add_api_route(prefix, model_metadata, methods=["GET"])
        app.add_api_route(f"{prefix}/ready", model_ready, methods=["GET"])
        app.add_api_route(f"{prefix}/infer", infer, methods=["POST"])

    @app.get("/v1/models")
    async def list_models():
        return {"models": [{**served.metadata(), "threshold": served.threshold} for served in models.values()]}

    @app.post("/v1/models/{name}/embed")
    async def embed(name: str, request: Request):
        served = lookup(name, route="embed")
        async with _multipart(request) as form:
            files = form_files(form, "images")
            if not files:
                raise BadRequest("images: no image files; send multipart/form-data with one or more 'images' files")
            landmarks = read_landmarks(form, len(files))
            blobs = await read_blobs([(f"images[{i}]", f) for i, f in enumerate(files)])
        faces = await run_in_threadpool(prepare_faces, served.wrapper, blobs, landmarks)
        embeddings = l2_normalize(served.wrapper.pick(await served.infer(faces.batch, config.timeout_s)))
        return {"model": served.name, "dimension": int(embeddings.shape[1]), "embeddings": embeddings.tolist()}

    @app.post("/v1/models/{name}/verify")
    async def verify(name: str, request: Request):
        served = lookup(name, route="verify")
        async with _multipart(request) as form:
            files = []
            for field_name in ("image1", "image2"):
                found = form_files(form, field_name)
                if len(found) != 1:
                    raise BadRequest(f"{field_name}: expected exactly one image file, got {len(found)}")
                files.append((field_name, found[0]))
            threshold, source = read_threshold(form, request.query_params.get("threshold")), "request"
            if threshold is None:
                threshold, source = served.threshold, served.threshold_source
            if threshold is None:
                raise BadRequest(f"threshold: model {served.name!r} has no verification threshold (no "
                                 "verification_threshold in the registry, no facezoo serve --threshold); "
                                 "give one: ?threshold=0.36 or a 'threshold' form field")
            landmarks = read_landmarks(form, 2)
            blobs = await read_blobs(files)
        faces = await run_in_threadpool(prepare_faces, served.wrapper, blobs, landmarks)
        first, second = l2_normalize(served.wrapper.pick(await served.infer(faces.batch, config.timeout_s)))
        cosine = float(np.dot(first.astype(np.float64), second.astype(np.float64)))
        return {"model": served.name, "cosine": cosine, "threshold": threshold, "threshold_source": source,
                "same_person": cosine >= threshold}

    @app.get("/metrics")
    async def prometheus():
        return Response(metrics.render(), media_type=metrics.content_type)

    app.state.metrics = metrics
    return app


@contextlib.asynccontextmanager
async def _multipart(request: Request):
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise BadRequest(f"Content-Type: expected multipart/form-data with image files, got {content_type or 'none'!r}")
    form = await request.form(max_files=MAX_FILES, max_fields=16)
    try:
        yield form
    finally:
        await form.close()


def _error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _add_error_handlers(app: FastAPI) -> None:
    async def serving_error(_request, exc: ServingError):
        return _error(exc.status, str(exc), {"Retry-After": "1"} if exc.status == 503 else None)

    async def facezoo_error(_request, exc: FacezooError):
        return _error(400, str(exc))

    async def http_error(_request, exc: HTTPException):
        return _error(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    async def validation_error(_request, exc: RequestValidationError):
        first = (exc.errors() or [{}])[0]
        where = ".".join(str(part) for part in first.get("loc", ()))
        return _error(400, f"{where or 'request'}: {first.get('msg', 'invalid')}")

    async def internal_error(_request, exc: Exception):
        return _error(500, f"internal error: {type(exc).__name__}: {exc}")

    app.add_exception_handler(Exception, internal_error)
    app.add_exception_handler(ServingError, serving_error)
    app.add_exception_handler(FacezooError, facezoo_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
