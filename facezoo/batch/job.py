"""`facezoo embed-dataset` on Ray Data: read, align, embed with the Embedder actors, write Parquet.

    read_binary_files(paths, include_paths=True)      bytes + path
    map_batches(decode_faces)                        one aligned crop (or error) per face, tasks
      or map_batches(DetectFaces, ActorPool)         photos: one row per face found, aligned (--detector)
    map_batches(Embedder, compute=ActorPoolStrategy)  the model loaded once per actor
    map_batches(output_table) → write_parquet         path, face, embedding, error (+ box, score, landmarks)

Locally Ray starts on this machine; with `ray_address` the same job runs on that cluster.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from facezoo.batch.inputs import IMAGE_EXTENSIONS, is_uri, list_images, read_landmarks, root_key
from facezoo.batch.stages import DetectFaces, decode_faces, output_table
from facezoo.errors import FacezooError
from facezoo.runtime import Embedder, load, resolve_artifact
from facezoo.runtime.resolve import DEFAULT_CONVERTED_DIR
from facezoo.runtime.detector import is_detector


#: The CPUs Ray reserves for each detector and embedder actor when both run: half each, so that the
#: two actor pools and the file reads fit a 2-CPU machine (a whole CPU each left none for the reads).
ACTOR_CPUS_WITH_DETECTOR = 0.5


@dataclass
class EmbedJob:
    """Everything `facezoo embed-dataset` was asked to do."""

    input_dir: str
    model: str
    output: str
    converted_dir: Path = DEFAULT_CONVERTED_DIR
    format: str | None = None
    precision: str | None = None
    device: str = "CPU"
    landmarks: Path | None = None
    detector: str | None = None  # a converted face detector: photos in, one row per face found
    ray_address: str | None = None  # None: a local Ray on this machine
    actors: int = 1
    batch_size: int = 32
    num_cpus: int | None = None  # local Ray only
    object_store_mb: int | None = None  # local Ray only


@dataclass
class JobSummary:
    rows: int
    embedded: int
    images: int
    failures: list[tuple[str, int, str]] = field(default_factory=list)  # path, face, error
    seconds: float = 0.0
    output: str = ""

    @property
    def throughput(self) -> float:
        return self.embedded / self.seconds if self.seconds else 0.0


def run_embed_job(job: EmbedJob, say=print) -> JobSummary:
    """Run the job to completion; returns what was written and what failed."""
    import ray

    if job.actors < 1 or job.batch_size < 1:
        raise FacezooError("--actors and --batch-size must be at least 1")
    if job.detector is not None and job.landmarks is not None:
        raise FacezooError("--detector and --landmarks: give one (the detector finds the landmarks)")
    artifact = resolve_artifact(job.model, job.converted_dir, job.format, job.precision)
    if job.detector is not None:  # resolved here, so that a bad name fails before Ray starts
        detector = resolve_artifact(job.detector, job.converted_dir)
        if not is_detector(detector):
            raise FacezooError(f"--detector {job.detector}: {detector.path} is not a converted face detector")
        job = dataclasses.replace(job, detector=str(detector.path.resolve()))
    size = _input_size(artifact)
    root = root_key(job.input_dir)
    paths = job.input_dir if is_uri(job.input_dir) else list_images(job.input_dir)
    landmarks = read_landmarks(job.landmarks, root) if job.landmarks else None
    started_here = not ray.is_initialized()
    if started_here:
        _init_ray(job)
    try:
        resources = ray.cluster_resources()
        where = job.ray_address or "local Ray"
        count = len(paths) if isinstance(paths, list) else "every"
        say(f"embedding {count} images from {job.input_dir} with {artifact.path} on {where} "
            f"({int(resources.get('CPU', 0))} CPUs, {job.actors} actor(s), batches of {job.batch_size})")
        start = time.perf_counter()
        target, staging = _output_paths(job.output)
        dataset = _pipeline(ray, job, artifact.path, paths, root, size, landmarks)
        dataset.write_parquet(str(staging))
        if staging != target:
            _publish(Path(staging), Path(target))
        seconds = time.perf_counter() - start
    finally:
        if started_here:
            ray.shutdown()
    return _summarize(str(target), seconds)


def _pipeline(ray, job: EmbedJob, model_path: Path, paths, root: str, size, landmarks):
    from ray.data import ActorPoolStrategy

    listed = {} if isinstance(paths, list) else {"file_extensions": list(IMAGE_EXTENSIONS)}  # a URI: Ray lists it
    files = ray.data.read_binary_files(paths, include_paths=True, **listed)
    if job.detector is not None:
        faces = files.map_batches(
            DetectFaces, fn_constructor_kwargs={"detector": job.detector, "size": size, "root": root,
                                                "device": job.device},
            batch_format="numpy", batch_size=job.batch_size, compute=ActorPoolStrategy(size=job.actors),
            num_cpus=ACTOR_CPUS_WITH_DETECTOR,
        )
    else:
        faces = files.map_batches(decode_faces, batch_format="numpy", batch_size=job.batch_size,
                                  fn_kwargs={"root": root, "size": size, "landmarks": landmarks,
                                             "landmarks_file": str(job.landmarks or "")})
    embedded = faces.map_batches(
        Embedder,
        fn_constructor_kwargs={"model": str(Path(model_path).resolve()), "device": job.device,
                               "batch_size": job.batch_size},
        batch_format="numpy", batch_size=job.batch_size, compute=ActorPoolStrategy(size=job.actors),
        num_cpus=ACTOR_CPUS_WITH_DETECTOR if job.detector is not None else 1,
    )
    return embedded.map_batches(output_table, batch_format="numpy")


def _init_ray(job: EmbedJob) -> None:
    import ray

    if job.ray_address:
        ray.init(address=job.ray_address, log_to_driver=False)
        return
    options = {"include_dashboard": False, "log_to_driver": False}
    if job.num_cpus:
        options["num_cpus"] = job.num_cpus
    if job.object_store_mb:
        options["object_store_memory"] = job.object_store_mb << 20
    ray.init(address="local", **options)  # "local": never join someone else's cluster by accident


def _input_size(artifact) -> tuple[int, int]:
    """(H, W) the crops are made at, from the model card (or the file when it has none)."""
    if artifact.card:
        shape = artifact.card.input.shape
    else:
        with load(artifact.path) as model:
            shape = model.input_spec.shape
    return int(shape[2]), int(shape[3])


def _output_paths(output: str) -> tuple[str, str]:
    """Where Ray writes: beside the target first (renamed into place at the end), or a URI as is."""
    if is_uri(output):
        return output, output
    target = Path(output).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    return str(target), str(target.with_name(f".{target.name}.partial-{os.getpid()}"))


def _publish(staging: Path, target: Path) -> None:
    from facezoo.atomic import replace_tree

    replace_tree(staging, target)


def _summarize(output: str, seconds: float) -> JobSummary:
    import pyarrow.parquet as pq

    table = pq.read_table(output, columns=["path", "face", "error"])
    errors = table.column("error").to_pylist()
    paths, faces = table.column("path").to_pylist(), table.column("face").to_pylist()
    failures = sorted((p, f, e) for p, f, e in zip(paths, faces, errors) if e)
    return JobSummary(table.num_rows, table.num_rows - len(failures), len(set(paths)), failures, seconds, output)
