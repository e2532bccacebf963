"""The FastAPI application: KServe v2 endpoints, the face endpoints, health and /metrics.

Every refusal is `{"error": "..."}` with a 4xx/5xx status and the field at fault; nothing a
client sends can stop the server or make it unready.
"""

from __future__ import annotations

import contextlib
from functools import partial

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response

import facezoo
from facezoo.errors import FacezooError
from facezoo.serving.config import ServeConfig
from facezoo.serving.errors import ModelNotServed, ServingError
from facezoo.serving.kserve import HEADER_LENGTH, decompress, encode_infer_response, parse_infer_request
from facezoo.serving.limits import Budget
from facezoo.serving.metrics import Metrics
from facezoo.serving.middleware import BodyLimit, RequestMetrics
from facezoo.serving.models import ServedModel
from facezoo.serving.routes import ROUTES

INLINE_JSON_BYTES = 64 << 10  # larger JSON bodies are parsed off the event loop
READ = ["GET", "HEAD"]  # every GET route answers HEAD too (headers, no body)


def create_app(models: dict[str, ServedModel], config: ServeConfig, metrics: Metrics | None = None,
               detectors: dict | None = None, galleries: dict | None = None) -> FastAPI:
    """``models``: served by name (KServe and their task's routes); ``detectors``: ServedDetectors by
    name, whose nets join ``models`` for KServe and which answer /detect; ``galleries``:
    ServedGalleries by name (/v1/galleries, facezoo.serving.galleries)."""
    detectors = dict(detectors or {})
    models = dict(models)
    for detector in detectors.values():
        models.update(detector.served_nets)
    for served in [*models.values(), *detectors.values()]:
        missing = [route for route in served.routes if route not in ROUTES]
        if missing:
            raise FacezooError(f"model {served.name!r}: its task ({served.task.name}) asks for the route(s) "
                               f"{', '.join(missing)}, which facezoo.serving does not implement")
    metrics = metrics or Metrics()
    for name, served in models.items():
        metrics.track_queue(name, lambda served=served: served.batcher.admitted_images)
    state = {"ready": True}

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        # Parsing and image decoding run on worker threads: as many as do useful work on this
        # machine's cores, not anyio's 40. Each thread keeps a malloc arena of its own once it has
        # run: with 40 a busy server grew for minutes (measured: +100 MiB over 40 s, 16 clients);
        # with twice the cores it is flat (+6 MiB).
        anyio.to_thread.current_default_thread_limiter().total_tokens = config.worker_threads
        yield
        state["ready"] = False  # uvicorn has drained the requests in flight by now
        for gallery in (galleries or {}).values():
            gallery.close()
        for served in models.values():
            served.close()

    app = FastAPI(title="facezoo", version=facezoo.__version__, lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(BodyLimit, limit=config.max_body_bytes, read_timeout_s=config.read_timeout_s,
                       budget=Budget(config.max_pending_bytes))
    app.add_middleware(RequestMetrics, metrics=metrics)  # outermost: also counts 413s
    _add_error_handlers(app)

    def lookup(name: str, version: str | None = None, route: str | None = None) -> ServedModel:
        served = (detectors.get(name) if route is not None else None) or models.get(name)
        if served is None:
            known = dict.fromkeys([*detectors, *models])
            raise ModelNotServed(f"unknown model {name!r}; this server has {', '.join(map(repr, known))}")
        if version not in (None, "", "1"):
            raise ModelNotServed(f"model {name!r} has no version {version!r}; it has version 1")
        if route is not None and route not in served.routes:
            raise ModelNotServed(f"model {name!r} ({served.task.name}) has no /{route}; its routes: "
                                 f"{', '.join('/' + r for r in served.routes) or 'none'} and /v2/models/{name}/infer")
        return served

    @app.api_route("/v2", methods=READ)
    async def server_metadata():
        return {"name": "facezoo", "version": facezoo.__version__, "extensions": ["binary_tensor_data"]}

    @app.api_route("/v2/health/live", methods=READ)
    async def live():
        return {"live": True}

    @app.api_route("/v2/health/ready", methods=READ)
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
        parse = partial(parse_infer_request, body, header_length, [served.input], served.outputs,
                        config.batching.max_queue)
        inline = header_length is not None or len(body) <= INLINE_JSON_BYTES
        decoded = parse() if inline else await run_in_threadpool(parse)
        rows = await served.infer(served.model.prepare(decoded.inputs[served.input.name]), config.timeout_s)
        wanted = decoded.outputs if decoded.outputs is not None else dict.fromkeys(o.name for o in served.outputs)
        by_name = {output.name: output for output in served.outputs}
        results = [(by_name[output], rows[output], decoded.binary_output if binary is None else binary)
                   for output, binary in wanted.items()]
        payload, json_length = encode_infer_response(served.name, decoded.id, results)
        if json_length is None:
            return Response(payload, media_type="application/json")
        return Response(payload, media_type="application/octet-stream", headers={HEADER_LENGTH: str(json_length)})

    for prefix in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}"):
        app.add_api_route(prefix, model_metadata, methods=READ)
        app.add_api_route(f"{prefix}/ready", model_ready, methods=READ)
        app.add_api_route(f"{prefix}/infer", infer, methods=["POST"])

    @app.api_route("/v1/models", methods=READ)
    async def list_models():
        return {"models": [{**served.metadata(), "threshold": served.threshold} for served in models.values()],
                "detectors": [detector.metadata() for detector in detectors.values()]}

    def task_route(route: str):
        async def answer(name: str, request: Request):
            return await ROUTES[route](lookup(name, route=route), request, config)

        return answer

    for route in ROUTES:  # one template each: /metrics counts every route on its own
        app.add_api_route(f"/v1/models/{{name}}/{route}", task_route(route), methods=["POST"])

    if galleries:
        from facezoo.serving.galleries import add_gallery_routes

        add_gallery_routes(app, galleries, config)

    @app.api_route("/metrics", methods=READ)
    async def prometheus():
        return Response(metrics.render(), media_type=metrics.content_type)

    app.state.metrics = metrics
    return app


def _error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _add_error_handlers(app: FastAPI) -> None:
    async def serving_error(_request, exc: ServingError):
        headers = {"Retry-After": "1"} if exc.status == 503 else {"Connection": "close"} if exc.status >= 500 else None
        return _error(exc.status, str(exc), headers)

    async def facezoo_error(_request, exc: FacezooError):
        return _error(getattr(exc, "status", 400), str(exc))  # a gallery's errors carry their own (404, 409)

    async def http_error(_request, exc: HTTPException):
        return _error(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    async def validation_error(_request, exc: RequestValidationError):
        first = (exc.errors() or [{}])[0]
        where = ".".join(str(part) for part in first.get("loc", ()))
        return _error(400, f"{where or 'request'}: {first.get('msg', 'invalid')}")

    async def internal_error(_request, exc: Exception):
        # Starlette re-raises after this answer and the server then drops the connection: say so.
        return _error(500, f"internal error: {type(exc).__name__}: {exc}", {"Connection": "close"})

    app.add_exception_handler(Exception, internal_error)
    app.add_exception_handler(ServingError, serving_error)
    app.add_exception_handler(FacezooError, facezoo_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
