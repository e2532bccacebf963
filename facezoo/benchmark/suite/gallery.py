"""The gallery section: 1:N search at scale, facezoo's stores beside exact search, in one run.

Synthetic identities: unit-vector centres drawn at random on the sphere; each gallery face and
each query is its identity's centre plus fresh Gaussian noise, normalized, with the noise set so
that a query's cosine to its own identity's face is about 0.65 (as a face embedding's to another
photo of the same person) while strangers score about 0. For each store (the embedded folder
store; Milvus through its embedded engine, Milvus Lite), measured in the same run as exact search
(float32 BLAS matmul over the same vectors):

* build: faces inserted per second (database and index together), the index's memory (its own
  accounting, and the process's RSS growth) against the raw float16 vectors;
* the snapshot's write time and a reopen (checksums verified, index loaded);
* queries at batch 1 and batch 64 through ``Gallery.identify`` (search, and the identities of the
  candidates looked up), p50 and p99, and recall@1 against the exact top-1.

Writes ``<machine>-gallery.{json,md}``.
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

SAME_PERSON_COSINE = 0.65
CHUNK = 20_000  # faces generated, and added, per step
SEED = 2026
EXACT_TIMED = 100  # queries timed one by one through exact search (each reads every vector)
EF_SWEEP = (64, 256, 1024)  # Milvus HNSW search lists timed at batch 1 (recall against exact search)
SWEEP_QUERIES = 200


@dataclass(frozen=True)
class GalleryTargets:
    """The issue's targets, one table: recall, latency at batch 1, memory against raw FP16."""

    min_recall_at_1: float = 0.99
    max_p99_batch1_ms: float = 5.0
    max_memory_ratio: float = 1.3


@dataclass
class StoreFigures:
    store: str
    faces: int
    dim: int
    settings: dict
    build_s: float = 0.0
    insert_per_s: float = 0.0
    index_bytes: int | None = None  # the index's own accounting
    rss_growth_bytes: int | None = None
    raw_fp16_bytes: int = 0
    snapshot_s: float | None = None
    reopen_s: float | None = None
    recall_at_1: float = 0.0
    latency_ms: dict = field(default_factory=dict)  # "batch1"/"batch64" -> {"p50", "p99"}
    exact_latency_ms: dict = field(default_factory=dict)
    sweep: list = field(default_factory=list)  # Milvus: [{"ef", "recall_at_1", "p50", "p99"}] at batch 1
    note: str = ""


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def noise_scale(dim: int, cosine: float = SAME_PERSON_COSINE) -> float:
    """Per-coordinate noise σ with cos(c + σ·z₁, c + σ·z₂) ≈ ``cosine`` for a unit centre c:
    1 / (1 + dim·σ²) = cosine."""
    return float(np.sqrt((1.0 / cosine - 1.0) / dim))


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def synthetic_chunks(size: int, dim: int, seed: int = SEED):
    """(start, centres, gallery faces) chunk by chunk, reproducibly (one RNG stream per chunk)."""
    sigma = noise_scale(dim)
    for start in range(0, size, CHUNK):
        rng = np.random.default_rng([seed, start])
        count = min(CHUNK, size - start)
        centres = _unit(rng.standard_normal((count, dim)))
        yield start, centres, _unit(centres + sigma * rng.standard_normal((count, dim)))


def synthetic_queries(size: int, dim: int, count: int, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """``count`` queries: (their identities' indices, the query vectors)."""
    rng = np.random.default_rng([seed, 2**31])  # a stream no chunk uses
    who = np.sort(rng.choice(size, count, replace=False))
    centres = np.empty((count, dim), np.float32)
    for start, chunk_centres, _ in synthetic_chunks(size, dim, seed):
        inside = (who >= start) & (who < start + len(chunk_centres))
        centres[inside] = chunk_centres[who[inside] - start]
    sigma = noise_scale(dim)
    return who, _unit(centres + sigma * rng.standard_normal(centres.shape))


def _percentiles(seconds: list[float]) -> dict:
    ms = np.asarray(seconds) * 1e3
    return {"p50": round(float(np.percentile(ms, 50)), 3), "p99": round(float(np.percentile(ms, 99)), 3),
            "n": len(ms)}


def _time_batches(run, queries: np.ndarray, batch: int, limit: int) -> tuple[dict, list]:
    laps, answers = [], []
    for start in range(0, min(len(queries), limit * batch), batch):
        chunk = queries[start : start + batch]
        begun = time.perf_counter()
        answers.extend(run(chunk))
        laps.append(time.perf_counter() - begun)
    return _percentiles(laps), answers


def _exact(gallery: np.ndarray):
    def run(chunk: np.ndarray) -> list[int]:
        return list(np.argmax(chunk @ gallery.T, axis=1))

    return run


def measure_store(store: str, size: int, dim: int, queries: np.ndarray, workdir: Path, batch: int,
                  progress: Progress) -> tuple[StoreFigures, list]:
    """Build a gallery of ``size`` synthetic identities in ``store``, reopen it, time its queries."""
    from facezoo.gallery import Face, Gallery, ModelIdentity

    folder = workdir / f"gallery-{store.split(':')[0]}-{size}"
    shutil.rmtree(folder, ignore_errors=True)
    uri = None if store == "folder" else f"milvus:{workdir / f'milvus-{size}.db'}"
    if uri:
        shutil.rmtree(workdir / f"milvus-{size}.db", ignore_errors=True)
    identity = ModelIdentity("synthetic", {}, "FP32", dim)
    gc.collect()
    rss_before = _rss()
    gallery = Gallery.create(folder, identity, store=uri)
    task = progress.add_task(f"{store}: adding", total=size)
    begun = time.perf_counter()
    for start, _, faces in synthetic_chunks(size, dim):
        records = [Face(f"p{start + k}", f"{start + k:064x}", 0, "synthetic") for k in range(len(faces))]
        gallery.add(records, faces)
        progress.update(task, completed=start + len(faces))
    build_s = time.perf_counter() - begun
    progress.remove_task(task)
    figures = StoreFigures(store=store if uri is None else "milvus-lite", faces=size, dim=dim,
                           settings=_settings(gallery), build_s=round(build_s, 1),
                           insert_per_s=round(size / build_s), raw_fp16_bytes=size * dim * 2)
    figures.rss_growth_bytes = _rss() - rss_before
    index = getattr(gallery.store, "_index", None)
    figures.index_bytes = int(index.nbytes) if index is not None else None
    begun = time.perf_counter()  # folder: the index snapshot; Milvus: seal, build the segment indexes, load
    gallery.store.checkpoint(force=True)
    figures.snapshot_s = round(time.perf_counter() - begun, 1)
    gallery.close()
    del gallery
    gc.collect()
    begun = time.perf_counter()
    gallery = Gallery.open(folder)
    figures.reopen_s = round(time.perf_counter() - begun, 2)
    task = progress.add_task(f"{store}: queries", total=None)
    answers = {}
    for label, size_of_batch, limit in (("batch1", 1, len(queries)), (f"batch{batch}", batch, 50)):
        def run(chunk):
            return [a.candidates[0].identity if a.candidates else None
                    for a in gallery.identify(chunk, threshold=0.0, top_k=1)]

        run(queries[:size_of_batch])  # warm
        figures.latency_ms[label], answers[label] = _time_batches(run, queries, size_of_batch, limit)
    if uri is not None and gallery.store.index_type == "HNSW":
        default_ef = gallery.store.ef_search
        for ef in EF_SWEEP:
            gallery.store.ef_search = ef
            latency, found = _time_batches(run, queries, 1, min(SWEEP_QUERIES, len(queries)))
            figures.sweep.append({"ef": ef, **latency, "answers": found})
        gallery.store.ef_search = default_ef
    progress.remove_task(task)
    gallery.close()
    return figures, answers["batch1"]


def _recall(found: list, exact_top: list) -> float:
    """Share of queries whose top-1 is exact search's (over the queries answered)."""
    return round(float(np.mean([t == f"p{e}" for t, e in zip(found, exact_top)])), 4)


def _settings(gallery) -> dict:
    store = gallery.store
    from facezoo.gallery.folder import INDEX_SETTINGS, FolderStore
    from facezoo.gallery.milvus import HNSW

    if isinstance(store, FolderStore):
        return dict(INDEX_SETTINGS)
    return {"engine": "Milvus Lite", "index": store.index_type, **({"ef": store.ef_search, **HNSW}
                                                                    if store.index_type == "HNSW" else {})}


def run_gallery_benchmark(options, console: Console | None = None) -> dict[str, Path]:
    """The gallery section of the suite: every store at options.gallery_size (Milvus at
    options.gallery_milvus_size), exact search in the same run."""
    from facezoo.benchmark.machine import describe_machine

    console = console or Console(stderr=True)
    machine = describe_machine(options.machine_name)
    size, dim, batch = options.gallery_size, options.gallery_dim, options.gallery_batch
    workdir = Path(options.workdir) / "gallery"
    workdir.mkdir(parents=True, exist_ok=True)
    who, queries = synthetic_queries(size, dim, options.gallery_queries)
    targets = GalleryTargets()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    stores: list[StoreFigures] = []
    with Progress(*columns, console=console, transient=True) as progress:
        plan = [("folder", size)] + ([("milvus", options.gallery_milvus_size)] if options.gallery_milvus_size else [])
        for store, store_size in plan:
            load = os.getloadavg()[0]
            count = options.gallery_queries if store == "folder" else options.gallery_milvus_queries
            store_queries = (queries if store_size == size else synthetic_queries(store_size, dim, count)[1])[:count]
            figures, top1 = measure_store(store, store_size, dim, store_queries, workdir, batch, progress)
            exact_gallery = np.concatenate([faces for _, _, faces in synthetic_chunks(store_size, dim)])
            run = _exact(exact_gallery)
            run(store_queries[:1])
            # batch 1 reads the whole matrix per query: timed on the first EXACT_TIMED queries
            figures.exact_latency_ms["batch1"], _ = _time_batches(run, store_queries, 1, EXACT_TIMED)
            figures.exact_latency_ms[f"batch{batch}"], exact_top = _time_batches(run, store_queries, batch,
                                                                              len(store_queries))
            del exact_gallery
            figures.recall_at_1 = _recall(top1, exact_top)
            for point in figures.sweep:
                point["recall_at_1"] = _recall(point.pop("answers"), exact_top)
            figures.note = f"load average {load:.2f} at the start, {os.getloadavg()[0]:.2f} at the end"
            stores.append(figures)
            console.print(f"{figures.store}: {store_size} faces, recall@1 {figures.recall_at_1}, batch-1 p99 "
                          f"{figures.latency_ms['batch1']['p99']} ms (exact {figures.exact_latency_ms['batch1']['p99']} "
                          f"ms)", highlight=False)
    document = {"machine": asdict(machine), "size": size, "dim": dim, "queries": options.gallery_queries,
                "milvus_queries": options.gallery_milvus_queries,
                "same_person_cosine": SAME_PERSON_COSINE, "targets": asdict(targets),
                "stores": [asdict(s) for s in stores], "command": "python benchmarks/run.py --gallery-only"}
    results = Path(options.results_dir)
    results.mkdir(parents=True, exist_ok=True)
    stem = results / f"{machine.name}-gallery"
    json_path = stem.with_suffix(".json")
    partial = json_path.with_name(f".{json_path.name}.partial")
    partial.write_text(json.dumps(document, indent=1), encoding="utf-8")
    os.replace(partial, json_path)
    md_path = stem.with_suffix(".md")
    partial = md_path.with_name(f".{md_path.name}.partial")
    partial.write_text(render_markdown(document), encoding="utf-8")
    os.replace(partial, md_path)
    return {"json": json_path, "markdown": md_path}


def render_markdown(document: dict) -> str:
    targets = document["targets"]
    lines = [f"# Galleries: 1:N search, {document['size']:,} identities × {document['dim']}-d",
             "",
             f"Machine: {document['machine'].get('cpu_model', '')} ({document['machine'].get('usable_cpus', '?')} usable CPUs, "
             f"{document['machine'].get('memory_gib', '?')} GiB). "
             f"Synthetic identities (a query's cosine to its own identity's face ≈ "
             f"{document['same_person_cosine']}, strangers ≈ 0), {document['queries']} queries (through Milvus Lite "
             f"{document.get('milvus_queries', document['queries'])}). Each store was "
             f"measured in the same run as exact search (float32 matmul over the same vectors). Targets: "
             f"recall@1 ≥ {targets['min_recall_at_1']}, batch-1 p99 ≤ {targets['max_p99_batch1_ms']} ms, memory ≤ "
             f"{targets['max_memory_ratio']}× the raw FP16 vectors.",
             "",
             "| store | faces | build s | inserts/s | index memory (× FP16) | RSS growth (× FP16) | snapshot (Milvus: seal + index) s | "
             "reopen s | recall@1 | batch 1 p50 / p99 ms | batch 64 p50 / p99 ms | exact batch 1 p50 / p99 ms | "
             "exact batch 64 p50 / p99 ms |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for s in document["stores"]:
        raw = s["raw_fp16_bytes"]

        def ratio(value):
            return "—" if value is None else f"{value / 2**30:.2f} GiB ({value / raw:.2f}×)"

        lat = {k: f"{v['p50']} / {v['p99']}" for k, v in s["latency_ms"].items()}
        exact = {k: f"{v['p50']} / {v['p99']}" for k, v in s["exact_latency_ms"].items()}
        big = next((k for k in lat if k != "batch1"), "batch64")
        lines.append(f"| {s['store']} | {s['faces']:,} | {s['build_s']} | {s['insert_per_s']:,} | "
                     f"{ratio(s['index_bytes'])} | {ratio(s['rss_growth_bytes'])} | {s['snapshot_s'] or '—'} | "
                     f"{s['reopen_s']} | {s['recall_at_1']} | {lat.get('batch1', '—')} | {lat.get(big, '—')} | "
                     f"{exact.get('batch1', '—')} | {exact.get(big, '—')} |")
    sweeps = [s for s in document["stores"] if s.get("sweep")]
    for s in sweeps:
        lines += ["", f"{s['store']} at {s['faces']:,} faces, HNSW search list (ef) against recall, batch 1 "
                      f"({s['sweep'][0]['n']} queries):", "", "| ef | recall@1 | p50 / p99 ms |", "|---:|---:|---:|"]
        lines += [f"| {p['ef']} | {p['recall_at_1']} | {p['p50']} / {p['p99']} |" for p in s["sweep"]]
    lines += ["", "Settings and conditions:", ""]
    for s in document["stores"]:
        lines.append(f"- {s['store']}: {json.dumps(s['settings'])}; {s['note']}")
    lines += ["", f"Command: `{document['command']}`", ""]
    return "\n".join(lines)


__all__ = ["GalleryTargets", "StoreFigures", "noise_scale", "run_gallery_benchmark", "synthetic_chunks",
           "synthetic_queries"]
