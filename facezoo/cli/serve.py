"""`facezoo serve`: converted models over HTTP (KServe v2 and face endpoints), dynamically batched."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from facezoo.cli.common import ZooOption, console, open_zoo, reports_errors
from facezoo.cli.deploy_options import (
    DEFAULT_CONVERTED_DIR,
    ConvertedDir,
    DeviceOption,
    FormatOption,
    PrecisionOption,
    check_format,
    check_positive,
    check_precision,
)
from facezoo.errors import FacezooError


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)


def _detector_name(detector: str, detectors: dict) -> str:
    """The served name of --detector (a zoo name, or a file whose card names its model)."""
    if detector in detectors:
        return detector
    return next(name for name in detectors if Path(detector).stem.startswith(name))


@reports_errors
def serve(
    models: Annotated[list[str], typer.Argument(metavar="MODEL_OR_FILE...", help="Zoo names or converted files.")],
    converted_dir: ConvertedDir = DEFAULT_CONVERTED_DIR,
    fmt: FormatOption = None,
    precision: PrecisionOption = None,
    device: DeviceOption = "CPU",
    backend: Annotated[Optional[str], typer.Option("--backend", help="openvino, onnxruntime or mindspore.")] = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port (0: any free one, printed at start).")] = 8000,
    max_batch: Annotated[int, typer.Option("--max-batch", help="Images per batched inference.")] = 32,
    max_delay_ms: Annotated[float, typer.Option("--max-delay-ms", help="Longest wait to fill a batch.")] = 5.0,
    max_queue: Annotated[int, typer.Option("--max-queue", help="Images queued or running before 503.")] = 1024,
    timeout_s: Annotated[float, typer.Option("--timeout-s", help="Seconds before a waiting request gets 503.")] = 30.0,
    max_body_mb: Annotated[float, typer.Option("--max-body-mb", help="Largest request body (413 above).")] = 64.0,
    read_timeout_s: Annotated[
        float, typer.Option("--read-timeout-s", help="Headers, and each piece of a body, must arrive within this (408).")
    ] = 30.0,
    max_pending_mb: Annotated[
        float, typer.Option("--max-pending-mb", help="Bytes of request bodies held at once, over all clients (503).")
    ] = 256.0,
    max_connections: Annotated[
        int, typer.Option("--max-connections", help="Open connections; one more is answered 503 and closed.")
    ] = 512,
    max_image_pixels: Annotated[
        int, typer.Option("--max-image-pixels", help="Width × height an image may declare, checked before decoding (413).")
    ] = 40_000_000,
    threshold: Annotated[
        Optional[float],
        typer.Option("--threshold", help="Cosine for /verify decisions (default: the registry's, if any)."),
    ] = None,
    detector: Annotated[
        Optional[str],
        typer.Option("--detector", help="A converted face detector (zoo name or file): served at "
                     "/v1/models/DET/detect, and /embed and /verify take photos, detecting the largest face first."),
    ] = None,
    gallery: Annotated[
        Optional[list[Path]],
        typer.Option("--gallery", help="A gallery (facezoo gallery create) to serve at /v1/galleries/NAME: "
                     "identify, enroll, remove. Its model must be among the models served. Repeatable."),
    ] = None,
    zoo: ZooOption = None,
) -> None:
    """Serve converted models: KServe v2 REST (tritonclient works), /v1 embed and verify, /metrics.

    A detector (given with --detector, or among the models) answers /v1/models/DET/detect with each
    photo's faces; its nets' raw heads are KServe models (DET, or DET-PART for a detector of several nets).

    Concurrent requests are batched (up to --max-batch images or --max-delay-ms) onto the
    backend's parallel requests. SIGTERM lets the requests in flight finish, then stops.
    """
    from facezoo.serving import BatchingOptions, Metrics, ModelChoice, ServeConfig, create_app, open_model
    from facezoo.serving.detectors import is_detector_choice, open_detector
    from facezoo.serving.server import bind, run_server, url_of

    check_positive(max_batch, "--max-batch")
    check_positive(max_queue, "--max-queue")
    check_positive(max_delay_ms, "--max-delay-ms", 0)
    check_positive(timeout_s, "--timeout-s", 0.001)
    check_positive(max_body_mb, "--max-body-mb", 0.001)
    check_positive(read_timeout_s, "--read-timeout-s", 0.001)
    check_positive(max_pending_mb, "--max-pending-mb", 0.001)
    check_positive(max_connections, "--max-connections")
    check_positive(max_image_pixels, "--max-image-pixels")
    if threshold is not None and not -1.0 <= threshold <= 1.0:
        raise FacezooError(f"--threshold: {threshold:g} is not a cosine in [-1, 1]")
    fmt, precision = check_format(fmt), check_precision(precision)
    config = ServeConfig(host, port, BatchingOptions(max_batch, max_delay_ms / 1e3, max_queue), timeout_s,
                         int(max_body_mb * 2**20), read_timeout_s, int(max_pending_mb * 2**20), max_connections,
                         max_image_pixels)
    registry = open_zoo(zoo)
    metrics = Metrics()
    served: dict = {}
    detectors: dict = {}
    galleries: dict = {}
    try:
        for model in [*models, *([detector] if detector else [])]:
            choice = ModelChoice(model, Path(converted_dir), fmt, precision, device, backend)
            if is_detector_choice(choice):
                with console.status(f"loading detector {model}"):
                    found = open_detector(choice, config.batching, timeout_s, metrics.observe_batch)
                if found.name in detectors or found.name in served:
                    found.close()
                    raise FacezooError(f"{model}: a model named {found.name!r} is already served; serve each name once")
                detectors[found.name] = found
                console.print(f"{found.name}: detector, nets {', '.join(found.served_nets)}", highlight=False)
                continue
            if model == detector:
                raise FacezooError(f"--detector {detector}: not a converted face detector")
            with console.status(f"loading {model}"):
                loaded = open_model(choice, registry, config.batching, threshold, metrics.observe_batch)
            if loaded.name in served:
                loaded.close()
                raise FacezooError(f"{model}: a model named {loaded.name!r} is already served; serve each name once")
            served[loaded.name] = loaded
            console.print(f"{loaded.name}: {loaded.artifact.path} ({loaded.model.backend.name}, "
                          f"{loaded.model.backend.device}, {loaded.batcher.lanes} parallel requests)", highlight=False)
        if detector is not None:
            chosen = next(iter(d for d in detectors.values() if d.name == _detector_name(detector, detectors)))
            for loaded in served.values():
                loaded.detector = chosen
        for path in gallery or []:
            from facezoo.serving.galleries import open_gallery

            opened = open_gallery(path, served)
            if opened.name in galleries:
                opened.close()
                raise FacezooError(f"--gallery {path}: a gallery named {opened.name!r} is already served")
            galleries[opened.name] = opened
            console.print(f"gallery {opened.name}: {opened.gallery.count()} faces of {opened.gallery.info.model}",
                          highlight=False)
        sock = bind(host, port)
    except BaseException:
        for loaded in [*galleries.values(), *served.values(), *detectors.values()]:
            loaded.close()
        raise
    app = create_app(served, config, metrics, detectors, galleries)
    url = url_of(sock)
    console.print(f"serving {', '.join([*served, *detectors])} at {url}  (KServe v2: {url}/v2/models/NAME/infer; "
                  f"faces: {url}/v1/models/NAME/embed and /verify"
                  + (f"; detect: {url}/v1/models/{', '.join(detectors)}/detect" if detectors else "")
                  + (f"; galleries: {url}/v1/galleries/{', '.join(galleries)}" if galleries else "")
                  + f"; metrics: {url}/metrics)", highlight=False)
    run_server(app, sock, drain_s=timeout_s + 5.0, read_timeout_s=read_timeout_s, max_connections=max_connections)
    console.print("stopped: requests in flight were answered", highlight=False)
