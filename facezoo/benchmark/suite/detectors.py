"""The detector rows of the suite, measured in child processes (facezoo.benchmark.suite.worker).

Three measurements, each a job of the worker (kind "detector"):

- ``latency``: one detector file on one backend, one photo at a time, at each photo size: p50,
  p99 and photos/s (sequential calls, so photos/s = 1 / mean latency);
- ``versus_opencv``: YuNet through facezoo (every converted file × backend given) against
  ``cv2.FaceDetectorYN`` on the original ONNX file, the same photo, all loaded in one process and
  taking turns round after round (the order reversed every other round), so that drift in the
  machine's speed falls on all alike; the ratio is the median of the per-round ratios;
- ``photo_path``: decode (``cv2.imdecode`` of a JPEG), detect, align, embed, each stage timed alone
  on its own input, then the whole path (decode, then ``FacePipeline.photo``), in rounds.

Photos: ``facezoo.photos.composite`` at each size (the astronaut at two scales, mirrored, one cut by
the border, and a generated face), the same array for every runner.
"""

from __future__ import annotations

import statistics
import time
from typing import Callable, Iterator

import numpy as np

from facezoo.benchmark.results import Latency

OPENCV = "cv2.FaceDetectorYN"
STAGES = ("decode", "detect", "align", "embed")


def photo(width: int, height: int) -> np.ndarray:
    """The photo every detector row of one size is timed on (BGR uint8, height × width)."""
    from facezoo.photos import composite

    return composite((height, width))


def size_label(width: int, height: int) -> str:
    return f"{width}×{height}"


def timed_laps(call: Callable[[], object], *, seconds: float, min_iterations: int,
               iterations: int | None = None) -> list[float]:
    """Seconds per call: exactly ``iterations`` calls if given, else at least ``min_iterations``
    and ``seconds`` of calls."""
    laps: list[float] = []
    origin = time.perf_counter()
    while True:
        begin = time.perf_counter()
        call()
        end = time.perf_counter()
        laps.append(end - begin)
        if iterations is not None:
            if len(laps) >= iterations:
                return laps
        elif len(laps) >= min_iterations and end - origin >= seconds:
            return laps


def summary(laps: list[float]) -> dict:
    """p50, p99 and mean milliseconds, and photos/s (calls one after another) of ``laps``."""
    latency = Latency.of(laps)
    total = sum(laps)
    return {"iterations": len(laps), "p50_ms": latency.p50, "p99_ms": latency.p99, "mean_ms": latency.mean,
            "photos_per_s": len(laps) / total if total > 0 else 0.0}


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"[:300]


def _open_detector(path: str, backend: str):
    from facezoo.runtime.detector import Detector

    return Detector(path, backend=backend)


# -- latency -------------------------------------------------------------------------------------
def measure_latency(job: dict) -> Iterator[dict]:
    """One row per (case, size): ``job["cases"]`` are {model, path, format, precision, backend}."""
    sizes = [tuple(size) for size in job["sizes"]]
    photos = {size: photo(*size) for size in sizes}
    timing = job["timing"]
    for case in job["cases"]:
        base = {**case}
        try:
            start = time.perf_counter()
            detector = _open_detector(case["path"], case["backend"])
            load_ms = (time.perf_counter() - start) * 1e3
        except Exception as exc:  # a file that does not load fails its rows, not the others
            for width, height in sizes:
                yield {**base, "width": width, "height": height, "error": _one_line(exc)}
            continue
        try:
            for width, height in sizes:
                image = photos[(width, height)]
                row = {**base, "width": width, "height": height, "load_ms": load_ms}
                try:
                    start = time.perf_counter()
                    faces = detector.detect(image)
                    row["first_ms"] = (time.perf_counter() - start) * 1e3
                    row["faces"] = len(faces)
                    for _ in range(timing["warmup"]):
                        detector.detect(image)
                    row.update(summary(timed_laps(lambda: detector.detect(image), seconds=timing["seconds"],
                                                  min_iterations=timing["min_iterations"],
                                                  iterations=timing["iterations"])))
                    row["error"] = ""
                except Exception as exc:
                    row["error"] = _one_line(exc)
                yield row
                load_ms = 0.0  # loaded once for every size
        finally:
            detector.close()


# -- YuNet: facezoo against cv2.FaceDetectorYN ----------------------------------------------------
class _OpenCV:
    """cv2.FaceDetectorYN on the original file, with the entry's decoding settings."""

    label = OPENCV

    def __init__(self, original: str, settings: dict):
        import cv2

        self.detector = cv2.FaceDetectorYN.create(original, "", (320, 320), float(settings["score_threshold"]),
                                                  float(settings["nms_threshold"]), int(settings["top_k"]))
        self.threads = cv2.getNumThreads()

    def resize(self, width: int, height: int) -> None:
        self.detector.setInputSize((width, height))

    def faces(self, image: np.ndarray) -> int:
        _, found = self.detector.detect(image)
        return 0 if found is None else len(found)

    def close(self) -> None:
        self.detector = None


class _Facezoo:
    def __init__(self, artifact: dict):
        self.artifact = artifact
        self.detector = _open_detector(artifact["path"], artifact["backend"])

    def resize(self, width: int, height: int) -> None:
        pass

    def faces(self, image: np.ndarray) -> int:
        return len(self.detector.detect(image))

    def close(self) -> None:
        self.detector.close()


def measure_versus_opencv(job: dict) -> Iterator[dict]:
    """One line per size: every runner's laps and per-round photos/s, cv2 first."""
    timing = job["timing"]
    runners: list = []
    errors: list[str] = []
    try:
        runners.append(_OpenCV(job["original"], job["settings"]))
    except Exception as exc:
        errors.append(f"{OPENCV} on {job['original']}: {_one_line(exc)}")
    for artifact in job["artifacts"]:
        try:
            runners.append(_Facezoo(artifact))
        except Exception as exc:
            errors.append(f"{artifact['path']} on {artifact['backend']}: {_one_line(exc)}")
    import cv2

    threads = runners[0].threads if runners and isinstance(runners[0], _OpenCV) else None
    try:
        for width, height in (tuple(size) for size in job["sizes"]):
            image = photo(width, height)
            alive, failed = [], list(errors)
            for runner in runners:
                try:
                    runner.resize(width, height)
                    faces = runner.faces(image)
                    for _ in range(timing["warmup"]):
                        runner.faces(image)
                    alive.append((runner, faces))
                except Exception as exc:
                    failed.append(f"{_describe(runner)}: {_one_line(exc)}")
            laps: dict[int, list[float]] = {id(r): [] for r, _ in alive}
            runs: dict[int, list[float]] = {id(r): [] for r, _ in alive}
            for round_index in range(job["rounds"]):
                order = alive if round_index % 2 == 0 else alive[::-1]
                for runner, _ in order:
                    turn = timed_laps(lambda: runner.faces(image), seconds=timing["seconds"],
                                      min_iterations=timing["min_iterations"], iterations=timing["iterations"])
                    laps[id(runner)] += turn
                    runs[id(runner)].append(len(turn) / sum(turn))
            yield {
                "width": width, "height": height, "rounds": job["rounds"], "opencv": cv2.__version__,
                "opencv_threads": threads,
                "runners": [{**_identity(runner), "faces": faces, **summary(laps[id(runner)]),
                             "runs": runs[id(runner)]} for runner, faces in alive],
                "errors": failed,
            }
    finally:
        for runner in runners:
            runner.close()


def _identity(runner) -> dict:
    if isinstance(runner, _OpenCV):
        return {"runner": OPENCV, "format": "onnx", "precision": "FP32", "backend": "opencv dnn", "path": ""}
    a = runner.artifact
    return {"runner": "facezoo", "format": a["format"], "precision": a["precision"], "backend": a["backend"],
            "path": a["path"]}


def _describe(runner) -> str:
    identity = _identity(runner)
    return identity["runner"] if identity["runner"] == OPENCV else f"{identity['path']} on {identity['backend']}"


def median_ratio(runs: list[float], reference: list[float]) -> float | None:
    """Median of the per-round ratios ``runs[i] / reference[i]``."""
    pairs = [a / b for a, b in zip(runs, reference) if b > 0]
    return statistics.median(pairs) if pairs else None


# -- the photo path --------------------------------------------------------------------------------
def measure_photo_path(job: dict) -> dict:
    """Each stage alone, then the whole path, in rounds; laps pooled over the rounds."""
    import cv2

    from facezoo.runtime.embedder import Embedder
    from facezoo.runtime.pipeline import FacePipeline, largest

    timing = job["timing"]
    width, height = job["size"]
    encoded = cv2.imencode(".jpg", photo(width, height), [cv2.IMWRITE_JPEG_QUALITY, job["jpeg_quality"]])[1]
    jpeg = np.frombuffer(encoded.tobytes(), np.uint8)
    detector = _open_detector(job["detector"], job["backend"])
    embedder = Embedder(job["embedder"], backend=job["backend"])
    pipeline = FacePipeline(detector, embedder)
    try:
        image = cv2.imdecode(jpeg, cv2.IMREAD_COLOR)
        found = detector.detect(image)
        if not found:
            raise RuntimeError(f"{job['detector']} finds no face on the {size_label(width, height)} photo")
        landmarks = np.asarray(largest(found).landmarks, np.float32)[None]
        crop = embedder.prepare([image], landmarks)
        stages = {
            "decode": lambda: cv2.imdecode(jpeg, cv2.IMREAD_COLOR),
            "detect": lambda: largest(detector.detect(image)),
            "align": lambda: embedder.prepare([image], landmarks),
            "embed": lambda: embedder.embed(crop),
        }

        def whole():
            return pipeline.photo(cv2.imdecode(jpeg, cv2.IMREAD_COLOR))

        for call in (*stages.values(), whole):
            for _ in range(max(timing["warmup"], 1)):
                call()
        laps: dict[str, list[float]] = {name: [] for name in (*stages, "whole")}
        rounds = []
        for _ in range(job["rounds"]):
            means = {}
            for name, call in (*stages.items(), ("whole", whole)):
                turn = timed_laps(call, seconds=timing["seconds"], min_iterations=timing["min_iterations"],
                                  iterations=timing["iterations"])
                laps[name] += turn
                means[name] = sum(turn) / len(turn)
            bound = 1.0 / sum(means[name] for name in stages)
            rounds.append((1.0 / means["whole"]) / bound)
        return {
            "width": width, "height": height, "jpeg_bytes": int(jpeg.size), "faces": len(found),
            "stages": {name: summary(laps[name]) for name in stages},
            "whole": summary(laps["whole"]),
            "round_ratios": rounds,
        }
    finally:
        pipeline.close()


def run_detector_job(job: dict) -> Iterator[dict]:
    """The worker's entry: the result lines of one detector job."""
    task = job["task"]
    if task == "latency":
        yield from measure_latency(job)
    elif task == "versus_opencv":
        yield from measure_versus_opencv(job)
    elif task == "photo_path":
        yield measure_photo_path(job)
    else:
        raise SystemExit(f"unknown detector task {task!r}")


__all__ = ["OPENCV", "STAGES", "measure_latency", "measure_photo_path", "measure_versus_opencv", "median_ratio",
           "photo", "run_detector_job", "size_label", "summary", "timed_laps"]
