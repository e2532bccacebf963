#!/usr/bin/env python
"""Vector-index candidates for facezoo's face galleries (issue #21), measured side by side.

    python benchmarks/gallery_candidates.py --n 100000                 # every candidate
    python benchmarks/gallery_candidates.py --n 1000000 \\
        --candidates exact-f32,faiss-hnsw-sqfp16,usearch-hnsw          # a subset
    python benchmarks/gallery_candidates.py --n 2000 --out /tmp/x      # a quick end-to-end check

Data: N identity centres drawn uniformly on the unit sphere in `--dim` dimensions; gallery vector i
= normalize(centre_i + noise); each query = normalize(centre of a gallery identity + fresh noise),
with the query noise drawn so that a query's cosine to its identity's gallery vector is spread over
0.5-0.8 (typical of face embeddings) while random pairs sit near 0. The reference is the exact
search: float32 matmul (BLAS) over the whole gallery; recall@1 = share of queries whose first
result is the exact search's first result.

Every candidate runs in two child processes of its own, one after the other (never two at once):
  build:  insert the gallery in chunks (rate, time; stopped and recorded as such past
          `--build-budget` seconds), then save it to disk;
  search: reopen the saved index (time, resident memory), tune the candidate's search-time knob
          (ef, nprobe, re-rank depth) on tuning queries to the smallest value that reaches
          `--tune-recall`, then measure recall@1 on held-out queries, latency at batch 1 and at
          batch 64 (wall and process CPU time), and remove one identity (how, time, and that it is
          gone from the results).
Memory is the process's VmRSS from /proc/self/status after reopening and searching, minus the
same figure just before reopening (libraries imported, queries loaded); the index's own size
accounting and its size on disk are recorded beside it. The 1-, 5- and 15-minute load averages
(os.getloadavg) are recorded at the start and end of each phase, because other processes may share
the machine.

Results are merged into `<out>/<machine>-gallery-candidates.json` (one entry per N and candidate
settings; a rerun replaces its own entries) and rendered to the `.md` beside it.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("LANCEDB_LOG", "error")   # lancedb's Rust logger: no per-query deprecation notes

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results"
DEFAULT_WORK = HERE / "work" / "gallery-candidates"
DEFAULT_MACHINE = "amd-epyc-2cpu"

SIGMA_GALLERY = 0.6          # gallery noise: cos(gallery vector, its centre) ~ 1/sqrt(1+0.36) = 0.857
QUERY_COS = (0.5, 0.8)       # target cos(query, its identity's gallery vector), drawn uniformly
GEN_CHUNK = 50_000

TARGETS = {
    "recall_at_1": 0.99,
    "p99_batch1_ms": 5.0,
    "memory_ratio_to_fp16": 1.3,
}


# ----------------------------------------------------------------------------- small helpers

def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def proc_mem() -> dict:
    """Resident memory of this process from /proc/self/status, in bytes."""
    out = {}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                key, _, val = line.partition(":")
                if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem", "VmHWM"):
                    out[key] = int(val.split()[0]) * 1024
    except OSError:
        pass
    return out


def mem_delta(after: dict, before: dict) -> dict:
    return {k: after[k] - before.get(k, 0) for k in after if k != "VmHWM"}


def dir_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:
                pass
    return total


def normalize(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def pct(values, q) -> float | None:
    if len(values) == 0:
        return None
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def make_progress(transient: bool = False):
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TimeRemainingColumn(), transient=transient)


def console():
    from rich.console import Console
    return Console(stderr=True)


# ----------------------------------------------------------------------------- data

def data_dir(work: Path, n: int, dim: int, n_queries: int, n_tune: int, seed: int) -> Path:
    return work / f"data-n{n}-d{dim}-q{n_queries}-t{n_tune}-s{seed}"


def ensure_dataset(work: Path, n: int, dim: int, n_queries: int, n_tune: int, seed: int,
                   threads: int) -> Path:
    """Write gallery.npy (float32), queries.npy, query_ids.npy, truth.npz and meta.json once."""
    d = data_dir(work, n, dim, n_queries, n_tune, seed)
    if (d / "meta.json").exists():
        return d
    d.mkdir(parents=True, exist_ok=True)
    con = console()
    nq = n_queries + n_tune
    rng_q = np.random.default_rng(seed + 1)
    query_ids = rng_q.choice(n, nq, replace=nq > n).astype(np.int64)
    # target cos(q, g) uniform in QUERY_COS -> cos(q, centre) -> query noise scale
    target = rng_q.uniform(QUERY_COS[0], QUERY_COS[1], nq)
    cos_qc = np.minimum(target * math.sqrt(1 + SIGMA_GALLERY ** 2), 0.999)
    sigma_q = np.sqrt(1.0 / cos_qc ** 2 - 1.0).astype(np.float32)

    rng = np.random.default_rng(seed)
    gallery = np.lib.format.open_memmap(d / "gallery.npy.tmp", mode="w+", dtype=np.float32,
                                        shape=(n, dim))
    centres_q = np.zeros((nq, dim), dtype=np.float32)
    order = np.argsort(query_ids, kind="stable")
    sorted_ids = query_ids[order]
    t0 = time.perf_counter()
    with make_progress() as prog:
        task = prog.add_task(f"gallery {n}x{dim}", total=n)
        for s in range(0, n, GEN_CHUNK):
            e = min(n, s + GEN_CHUNK)
            centres = normalize(rng.standard_normal((e - s, dim), dtype=np.float32))
            noise = rng.standard_normal((e - s, dim), dtype=np.float32) * (SIGMA_GALLERY / math.sqrt(dim))
            gallery[s:e] = normalize(centres + noise)
            lo, hi = np.searchsorted(sorted_ids, [s, e])
            sel = order[lo:hi]
            centres_q[sel] = centres[query_ids[sel] - s]
            prog.update(task, completed=e)
    gallery.flush()
    del gallery
    os.replace(d / "gallery.npy.tmp", d / "gallery.npy")
    noise_q = rng_q.standard_normal((nq, dim), dtype=np.float32) * (sigma_q[:, None] / math.sqrt(dim))
    queries = normalize(centres_q + noise_q).astype(np.float32)
    np.save(d / "queries.npy", queries)
    np.save(d / "query_ids.npy", query_ids.astype(np.int64))
    gen_s = time.perf_counter() - t0

    # exact reference: float32 matmul over the whole gallery, top-2 per query
    from threadpoolctl import threadpool_limits
    gallery = np.load(d / "gallery.npy", mmap_mode="r")
    best = np.full((nq, 2), -np.inf, dtype=np.float32)
    best_id = np.full((nq, 2), -1, dtype=np.int64)
    t0 = time.perf_counter()
    chunk = 65_536
    with threadpool_limits(limits=threads), make_progress() as prog:
        task = prog.add_task("exact reference (f32 matmul)", total=n)
        for s in range(0, n, chunk):
            e = min(n, s + chunk)
            block = np.ascontiguousarray(gallery[s:e])
            sims = queries @ block.T
            kk = min(2, e - s)
            part = np.argpartition(-sims, kk - 1, axis=1)[:, :kk]
            cand_s = np.concatenate([best, np.take_along_axis(sims, part, axis=1)], axis=1)
            cand_i = np.concatenate([best_id, part + s], axis=1)
            top = np.argsort(-cand_s, axis=1, kind="stable")[:, :2]
            best = np.take_along_axis(cand_s, top, axis=1)
            best_id = np.take_along_axis(cand_i, top, axis=1)
            prog.update(task, completed=e)
    truth_s = time.perf_counter() - t0
    own = np.einsum("ij,ij->i", queries, np.asarray(gallery[query_ids]))
    np.savez(d / "truth.npz", top1=best_id[:, 0], top1_score=best[:, 0], top2_score=best[:, 1],
             own_score=own)
    other = np.where(best_id[:, 0] == query_ids, best[:, 1], best[:, 0])
    meta = {
        "n": n, "dim": dim, "queries": n_queries, "tune_queries": n_tune, "seed": seed,
        "model": (f"centres uniform on the unit sphere; gallery = normalize(centre + N(0, "
                  f"{SIGMA_GALLERY}^2/dim I)); query = normalize(centre + N(0, s^2/dim I)) with s drawn "
                  f"so that the expected cos(query, own gallery vector) is uniform in "
                  f"[{QUERY_COS[0]}, {QUERY_COS[1]}]; one gallery vector per identity"),
        "cos_query_own": {f"p{q}": round(pct(own, q), 4) for q in (1, 50, 99)},
        "cos_query_best_other": {f"p{q}": round(pct(other, q), 4) for q in (1, 50, 99)},
        "exact_top1_is_own_identity": float(np.mean(best_id[:, 0] == query_ids)),
        "generate_s": round(gen_s, 2), "reference_s": round(truth_s, 2),
        "reference": "float32 matmul (numpy + OpenBLAS) over the whole gallery",
    }
    (d / "meta.json").write_text(json.dumps(meta, indent=2))
    con.print(f"data: {n}x{dim}, own cos p1/p50/p99 {list(meta['cos_query_own'].values())}, "
              f"best other {list(meta['cos_query_best_other'].values())}")
    return d


# ----------------------------------------------------------------------------- candidates

HNSW_EF = [16, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048]


class Candidate:
    """One index under test. Ids are the gallery row numbers (int64)."""

    family = ""
    library = ""
    defaults: dict = {}
    knob: str | None = None        # search-time knob tuned for recall, if any
    removal = ""                   # how an identity is removed

    def __init__(self, dim: int, n: int, threads: int, params: dict):
        self.dim, self.n, self.threads = dim, n, threads
        self.params = {**self.defaults, **params}
        self.knob_value = None

    def knob_values(self) -> list:
        return []

    def settings(self) -> dict:
        return dict(self.params)

    def train_size(self) -> int:
        return 0

    def begin(self, path: Path, sample: np.ndarray | None) -> None:
        pass

    def add(self, ids: np.ndarray, x: np.ndarray) -> None:
        raise NotImplementedError

    def end(self) -> None:
        pass

    def save(self, path: Path) -> None:
        raise NotImplementedError

    def open(self, path: Path) -> None:
        raise NotImplementedError

    def set_knob(self, value) -> None:
        self.knob_value = value

    def search(self, q: np.ndarray, k: int) -> np.ndarray:
        raise NotImplementedError

    def remove(self, key: int) -> str:
        raise NotImplementedError

    def own_size(self) -> dict:
        return {}

    def close(self) -> None:
        """Close the database client a candidate holds (Milvus Lite, Qdrant local), if any."""
        client = getattr(self, "client", None)
        if client is not None:
            try:
                client.close()
            except Exception:
                pass
            self.client = None


class ExactF32(Candidate):
    family, library = "exact-f32", "numpy (OpenBLAS sgemm)"
    removal = "yes: swap the row with the last one and shrink (O(dim))"

    def begin(self, path, sample):
        self.x = np.empty((self.n, self.dim), dtype=np.float32)
        self.keys = np.empty(self.n, dtype=np.int64)
        self.count = 0

    def add(self, ids, x):
        m = len(ids)
        self.x[self.count:self.count + m] = x
        self.keys[self.count:self.count + m] = ids
        self.count += m

    def save(self, path):
        np.save(path / "vectors.npy", self.x[:self.count])
        np.save(path / "keys.npy", self.keys[:self.count])

    def open(self, path):
        self.x = np.load(path / "vectors.npy")
        self.keys = np.load(path / "keys.npy")
        self.count = len(self.keys)

    def _scores(self, q):
        return q @ self.x[:self.count].T

    def search(self, q, k):
        s = self._scores(q)
        if k == 1:
            return self.keys[np.argmax(s, axis=1)][:, None]
        part = np.argpartition(-s, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(s, part, axis=1), axis=1)
        return self.keys[np.take_along_axis(part, order, axis=1)]

    def remove(self, key):
        pos = int(np.flatnonzero(self.keys[:self.count] == key)[0])
        last = self.count - 1
        self.x[pos] = self.x[last]
        self.keys[pos] = self.keys[last]
        self.count = last
        return "swap-remove"

    def own_size(self):
        return {"bytes": int(self.x[:self.count].nbytes + self.keys[:self.count].nbytes)}


def faiss_for(nq: int, threads: int):
    """faiss with its OpenMP team sized for `nq` queries. faiss parallelizes over queries, so a
    single query gains nothing from a second thread, and on a busy machine every parallel region
    then waits for that idle thread to be scheduled (a brute-force Hamming scan of 1M codes opens
    16 such regions): single queries run on one thread."""
    import faiss
    faiss.omp_set_num_threads(1 if nq < 2 else threads)
    return faiss


class FaissCandidate(Candidate):
    library = "faiss"

    def _faiss(self, nq: int | None = None):
        return faiss_for(self.threads if nq is None else nq, self.threads)

    def save(self, path):
        self._faiss().write_index(self.index, str(path / "index.faiss"))

    def open(self, path):
        self.index = self._faiss().read_index(str(path / "index.faiss"))

    def add(self, ids, x):
        self.index.add(x)

    def own_size(self):
        faiss = self._faiss()
        return {"bytes": int(faiss.serialize_index(self.index).nbytes),
                "note": "serialized size (faiss.serialize_index)"}


class FaissFlatF16(FaissCandidate):
    family = "faiss-flat-sqfp16"
    removal = "yes: remove_ids (compacts the codes, O(N)); ids after it shift down, so keep a key map"

    def begin(self, path, sample):
        faiss = self._faiss()
        self.index = faiss.IndexScalarQuantizer(self.dim, faiss.ScalarQuantizer.QT_fp16,
                                                faiss.METRIC_INNER_PRODUCT)

    def open(self, path):
        super().open(path)
        self.keys = np.arange(self.index.ntotal, dtype=np.int64)

    def search(self, q, k):
        self._faiss(len(q))
        _d, i = self.index.search(q, k)
        return self.keys[i]

    def remove(self, key):
        faiss = self._faiss()
        pos = int(np.flatnonzero(self.keys == key)[0])
        self.index.remove_ids(np.array([pos], dtype=np.int64))
        self.keys = np.delete(self.keys, pos)
        assert faiss is not None
        return "remove_ids"


class FaissHNSWSQ(FaissCandidate):
    family = "faiss-hnsw-sqfp16"
    defaults = {"M": 32, "efc": 128}
    knob = "efSearch"
    removal = ("no remove_ids (faiss raises 'remove_ids not implemented' for HNSW); tombstone instead: "
               "search with SearchParametersHNSW(sel=IDSelectorNot(IDSelectorBatch(removed))), memory "
               "kept until a rebuild")

    def knob_values(self):
        return HNSW_EF

    def begin(self, path, sample):
        faiss = self._faiss()
        self.index = faiss.IndexHNSWSQ(self.dim, faiss.ScalarQuantizer.QT_fp16,
                                       int(self.params["M"]), faiss.METRIC_INNER_PRODUCT)
        self.index.hnsw.efConstruction = int(self.params["efc"])
        self.index.train(sample)

    def train_size(self):
        return 1000

    def open(self, path):
        super().open(path)
        self.removed: list[int] = []
        self._sel = None

    def _params(self):
        faiss = self._faiss()
        p = faiss.SearchParametersHNSW()
        p.efSearch = int(self.knob_value or 16)
        if self._sel is not None:
            p.sel = self._sel
        return p

    def search(self, q, k):
        self._faiss(len(q))
        _d, i = self.index.search(q, k, params=self._params())
        return i

    def remove(self, key):
        faiss = self._faiss()
        try:
            self.index.remove_ids(np.array([key], dtype=np.int64))
            return "remove_ids"
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
            self.remove_error = first[:160]
        self.removed.append(int(key))
        self._batch = faiss.IDSelectorBatch(np.array(self.removed, dtype=np.int64))
        self._sel = faiss.IDSelectorNot(self._batch)
        return "tombstone (IDSelectorNot; remove_ids raises)"


class FaissIVFSQ(FaissCandidate):
    family = "faiss-ivf-sqfp16"
    defaults = {"nlist": "auto"}
    knob = "nprobe"
    removal = "yes: remove_ids (scans the inverted lists, O(N)); ids stay stable"

    def _nlist(self):
        v = self.params["nlist"]
        if v == "auto":
            return int(2 ** round(math.log2(max(16.0, 4 * math.sqrt(self.n)))))
        return int(v)

    def settings(self):
        return {"nlist": self._nlist(), "train": self.train_size(), "niter": 10}

    def train_size(self):
        return min(self.n, 40 * self._nlist())

    def knob_values(self):
        out, v = [], 1
        while v <= self._nlist():
            out.append(v)
            v *= 2
        return out

    def begin(self, path, sample):
        faiss = self._faiss()
        self.quantizer = faiss.IndexFlatIP(self.dim)
        self.index = faiss.IndexIVFScalarQuantizer(self.quantizer, self.dim, self._nlist(),
                                                   faiss.ScalarQuantizer.QT_fp16,
                                                   faiss.METRIC_INNER_PRODUCT)
        self.index.cp.niter = 10
        self.index.train(sample)

    def set_knob(self, value):
        super().set_knob(value)
        self.index.nprobe = int(value)

    def search(self, q, k):
        self._faiss(len(q))
        _d, i = self.index.search(q, k)
        return i

    def remove(self, key):
        self.index.remove_ids(np.array([key], dtype=np.int64))
        return "remove_ids"


class BinaryRerank(Candidate):
    """Sign bits (dim/8 bytes per vector) scanned exhaustively by faiss's Hamming k-NN, then the
    best `rerank` candidates re-ranked exactly with the fp16 vectors."""

    family = "faiss-binary+f16-rerank"
    library = "faiss (knn_hamming) + numpy"
    knob = "rerank"
    removal = "yes: swap the row (codes, fp16 vector, key) with the last one and shrink (O(dim))"

    def knob_values(self):
        return [1, 2, 4, 8, 16, 32, 64, 128, 256]

    def begin(self, path, sample):
        self.codes = np.empty((self.n, self.dim // 8), dtype=np.uint8)
        self.vec = np.empty((self.n, self.dim), dtype=np.float16)
        self.keys = np.empty(self.n, dtype=np.int64)
        self.count = 0

    def add(self, ids, x):
        m = len(ids)
        self.codes[self.count:self.count + m] = np.packbits(x > 0, axis=1)
        self.vec[self.count:self.count + m] = x
        self.keys[self.count:self.count + m] = ids
        self.count += m

    def save(self, path):
        np.save(path / "codes.npy", self.codes[:self.count])
        np.save(path / "vectors16.npy", self.vec[:self.count])
        np.save(path / "keys.npy", self.keys[:self.count])

    def open(self, path):
        self.codes = np.load(path / "codes.npy")
        self.vec = np.load(path / "vectors16.npy")
        self.keys = np.load(path / "keys.npy")
        self.count = len(self.keys)

    def search(self, q, k):
        faiss = faiss_for(len(q), self.threads)
        depth = max(k, int(self.knob_value or 16))
        depth = min(depth, self.count)
        qc = np.packbits(q > 0, axis=1)
        _d, cand = faiss.knn_hamming(qc, self.codes[:self.count], depth)
        vecs = self.vec[cand].astype(np.float32)             # (nq, depth, dim)
        scores = np.einsum("qkd,qd->qk", vecs, q)
        order = np.argsort(-scores, axis=1)[:, :k]
        return self.keys[np.take_along_axis(cand, order, axis=1)]

    def remove(self, key):
        pos = int(np.flatnonzero(self.keys[:self.count] == key)[0])
        last = self.count - 1
        self.codes[pos] = self.codes[last]
        self.vec[pos] = self.vec[last]
        self.keys[pos] = self.keys[last]
        self.count = last
        return "swap-remove"

    def own_size(self):
        c = self.count
        return {"bytes": int(self.codes[:c].nbytes + self.vec[:c].nbytes + self.keys[:c].nbytes)}


class UsearchHNSW(Candidate):
    family = "usearch-hnsw"
    library = "usearch"
    defaults = {"M": 32, "efc": 128, "metric": "ip", "dtype": "f16"}
    knob = "expansion_search"
    removal = "yes: Index.remove(key) (the node is marked deleted and skipped; its slot can be reused)"

    def knob_values(self):
        return HNSW_EF

    def _new(self):
        from usearch.index import Index
        return Index(ndim=self.dim, metric=self.params["metric"], dtype=self.params["dtype"],
                     connectivity=int(self.params["M"]), expansion_add=int(self.params["efc"]),
                     expansion_search=64)

    def begin(self, path, sample):
        self.index = self._new()

    def add(self, ids, x):
        self.index.add(ids, x, threads=self.threads)

    def save(self, path):
        self.index.save(str(path / "index.usearch"))

    def open(self, path):
        self.index = self._new()
        self.index.load(str(path / "index.usearch"))

    def set_knob(self, value):
        super().set_knob(value)
        self.index.expansion_search = int(value)

    def search(self, q, k):
        r = self.index.search(q, k, threads=self.threads)
        return np.asarray(r.keys).reshape(len(q), -1)[:, :k].astype(np.int64)

    def remove(self, key):
        self.index.remove(int(key))
        return "Index.remove"

    def own_size(self):
        return {"bytes": int(self.index.memory_usage), "note": "Index.memory_usage",
                "serialized_bytes": int(self.index.serialized_length)}


class HnswlibF32(Candidate):
    family = "hnswlib-f32"
    library = "hnswlib"
    defaults = {"M": 32, "efc": 128}
    knob = "ef"
    removal = ("yes: mark_deleted(label) (tombstone: skipped in results, still in the graph; with "
               "allow_replace_deleted=True a later add reuses the slot)")

    def knob_values(self):
        return HNSW_EF

    def begin(self, path, sample):
        import hnswlib
        self.index = hnswlib.Index(space="ip", dim=self.dim)
        self.index.init_index(max_elements=self.n, M=int(self.params["M"]),
                              ef_construction=int(self.params["efc"]), random_seed=100,
                              allow_replace_deleted=True)
        self.index.set_num_threads(self.threads)

    def add(self, ids, x):
        self.index.add_items(x, ids)

    def save(self, path):
        self.index.save_index(str(path / "index.hnswlib"))

    def open(self, path):
        import hnswlib
        self.index = hnswlib.Index(space="ip", dim=self.dim)
        self.index.load_index(str(path / "index.hnswlib"), max_elements=self.n,
                              allow_replace_deleted=True)
        self.index.set_num_threads(self.threads)

    def set_knob(self, value):
        super().set_knob(value)
        self.index.set_ef(int(value))

    def search(self, q, k):
        labels, _d = self.index.knn_query(q, k=k)
        return labels.astype(np.int64)

    def remove(self, key):
        self.index.mark_deleted(int(key))
        return "mark_deleted"


class MilvusLite(Candidate):
    family = "milvus-lite"
    library = "pymilvus + milvus-lite"
    defaults = {"index": "HNSW", "M": 32, "efc": 128}
    removal = "yes: MilvusClient.delete(ids=[...]) (a delete record; segments filter it, compaction drops it)"
    COLL = "gallery"
    INSERT_BATCH = 2000

    @property
    def knob(self):  # type: ignore[override]
        return "ef" if self.params["index"] == "HNSW" else None

    def settings(self):
        if self.params["index"] == "HNSW":
            return dict(self.params)
        return {"index": self.params["index"]}

    def knob_values(self):
        return HNSW_EF if self.params["index"] == "HNSW" else []

    def _client(self, path):
        from pymilvus import MilvusClient
        return MilvusClient(str(path / "gallery.db"))

    def begin(self, path, sample):
        from pymilvus import DataType
        self.client = self._client(path)
        schema = self.client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vec", DataType.FLOAT_VECTOR, dim=self.dim)
        ip = self.client.prepare_index_params()
        params = {}
        if self.params["index"] == "HNSW":
            params = {"M": int(self.params["M"]), "efConstruction": int(self.params["efc"])}
        ip.add_index(field_name="vec", index_type=self.params["index"], metric_type="IP",
                     params=params)
        self.client.create_collection(self.COLL, schema=schema, index_params=ip)

    def add(self, ids, x):
        for s in range(0, len(ids), self.INSERT_BATCH):
            rows = [{"id": int(i), "vec": v} for i, v in zip(ids[s:s + self.INSERT_BATCH],
                                                             x[s:s + self.INSERT_BATCH])]
            self.client.insert(self.COLL, rows)

    def end(self):
        self.client.flush(self.COLL)
        self.client.load_collection(self.COLL)
        self.index_info = self.client.describe_index(self.COLL, "vec")

    def save(self, path):
        self.close()

    def open(self, path):
        self.client = self._client(path)
        self.client.load_collection(self.COLL)
        self.index_info = self.client.describe_index(self.COLL, "vec")

    def search(self, q, k):
        sp = {"metric_type": "IP"}
        if self.params["index"] == "HNSW":
            sp["params"] = {"ef": int(self.knob_value or 64)}
        res = self.client.search(self.COLL, data=[v for v in q], anns_field="vec", limit=k,
                                 search_params=sp, output_fields=["id"])
        out = np.full((len(q), k), -1, dtype=np.int64)
        for r, hits in enumerate(res):
            for c, h in enumerate(list(hits)[:k]):
                out[r, c] = int(h["id"])
        return out

    def remove(self, key):
        self.client.delete(self.COLL, ids=[int(key)])
        return "MilvusClient.delete"

    def own_size(self):
        info = getattr(self, "index_info", None) or {}
        return {"describe_index": {k: v for k, v in info.items()
                                   if k in ("index_type", "total_rows", "indexed_rows", "state")}}


class LanceDB(Candidate):
    family = "lancedb-ivf-hnsw-sq"
    library = "lancedb"
    defaults = {"partitions": 1, "M": 32, "efc": 128, "vectors": "f16"}
    knob = "ef"
    removal = "yes: Table.delete(\"id = ...\") (deletion file; the index skips deleted rows)"

    def knob_values(self):
        return HNSW_EF

    def _table(self, ids, x):
        import pyarrow as pa
        dt = np.float16 if self.params["vectors"] == "f16" else np.float32
        flat = pa.array(np.ascontiguousarray(x, dtype=dt).ravel())
        return pa.table({"id": pa.array(ids, pa.int64()),
                         "vector": pa.FixedSizeListArray.from_arrays(flat, self.dim)})

    def begin(self, path, sample):
        import lancedb
        self.db = lancedb.connect(str(path / "lance"))
        self.table = None

    def add(self, ids, x):
        if self.table is None:
            self.table = self.db.create_table("gallery", self._table(ids, x))
        else:
            self.table.add(self._table(ids, x))

    def end(self):
        from lancedb.index import HnswSq
        self.table.create_index("vector", config=HnswSq(
            distance_type="dot", num_partitions=int(self.params["partitions"]),
            m=int(self.params["M"]), ef_construction=int(self.params["efc"])))

    def save(self, path):
        pass

    def open(self, path):
        import lancedb
        self.db = lancedb.connect(str(path / "lance"))
        self.table = self.db.open_table("gallery")

    def search(self, q, k):
        ef = int(self.knob_value or 64)
        qs = [v for v in q] if len(q) > 1 else q[0]
        t = (self.table.search(qs).distance_type("dot").ef(max(ef, k))
             .nprobes(int(self.params["partitions"])).limit(k).select(["id"]).to_arrow())
        out = np.full((len(q), k), -1, dtype=np.int64)
        ids = t.column("id").to_numpy()
        if "query_index" in t.column_names:
            qi = t.column("query_index").to_numpy()
        else:
            qi = np.zeros(len(ids), dtype=np.int64)
        dist = t.column("_distance").to_numpy()
        for r in range(len(q)):
            m = np.flatnonzero(qi == r)
            m = m[np.argsort(dist[m], kind="stable")][:k]
            out[r, :len(m)] = ids[m]
        return out

    def remove(self, key):
        self.table.delete(f"id = {int(key)}")
        return "Table.delete"

    def own_size(self):
        try:
            idx = self.table.list_indices()
            stats = self.table.index_stats(idx[0].name) if idx else None
            return {"index_stats": str(stats)[:400] if stats is not None else None}
        except Exception as exc:  # accounting only
            return {"error": repr(exc)[:200]}


class QdrantLocal(Candidate):
    family = "qdrant-local"
    library = "qdrant-client (local mode)"
    removal = "yes: QdrantClient.delete(points_selector=PointIdsList([...]))"
    COLL = "gallery"
    BATCH = 1000

    def _client(self, path):
        from qdrant_client import QdrantClient
        return QdrantClient(path=str(path / "qdrant"))

    def begin(self, path, sample):
        from qdrant_client import models
        self.client = self._client(path)
        self.client.create_collection(self.COLL, vectors_config=models.VectorParams(
            size=self.dim, distance=models.Distance.DOT))

    def add(self, ids, x):
        from qdrant_client import models
        for s in range(0, len(ids), self.BATCH):
            self.client.upsert(self.COLL, points=models.Batch(
                ids=[int(i) for i in ids[s:s + self.BATCH]], vectors=x[s:s + self.BATCH].tolist()),
                wait=True)

    def save(self, path):
        self.close()

    def open(self, path):
        self.client = self._client(path)

    def search(self, q, k):
        from qdrant_client import models
        out = np.full((len(q), k), -1, dtype=np.int64)
        if len(q) == 1:
            pts = [self.client.query_points(self.COLL, query=q[0].tolist(), limit=k).points]
        else:
            reqs = [models.QueryRequest(query=v.tolist(), limit=k) for v in q]
            pts = [r.points for r in self.client.query_batch_points(self.COLL, requests=reqs)]
        for r, p in enumerate(pts):
            for c, h in enumerate(p[:k]):
                out[r, c] = int(h.id)
        return out

    def remove(self, key):
        from qdrant_client import models
        self.client.delete(self.COLL, points_selector=models.PointIdsList(points=[int(key)]))
        return "QdrantClient.delete"


CANDIDATES = {c.family: c for c in (ExactF32, FaissFlatF16, BinaryRerank, FaissHNSWSQ, FaissIVFSQ,
                                    UsearchHNSW, HnswlibF32, MilvusLite, LanceDB, QdrantLocal)}
# `--candidates default`: every family (Milvus Lite both with its HNSW index and with FLAT) except
# Qdrant's local mode, which commits every point to SQLite (about 10 ms a point here); `all` adds it
DEFAULT_SPECS = ["exact-f32", "faiss-flat-sqfp16", "faiss-binary+f16-rerank", "faiss-hnsw-sqfp16",
                 "faiss-ivf-sqfp16", "usearch-hnsw", "hnswlib-f32", "milvus-lite",
                 "milvus-lite:index=FLAT", "lancedb-ivf-hnsw-sq"]
ALL_SPECS = DEFAULT_SPECS + ["qdrant-local"]


def parse_spec(spec: str) -> tuple[str, dict]:
    family, _, rest = spec.partition(":")
    family = family.strip()
    if family not in CANDIDATES:
        raise SystemExit(f"unknown candidate {family!r}; known: {', '.join(CANDIDATES)}")
    params = {}
    for kv in filter(None, (p.strip() for p in rest.split(","))):
        k, _, v = kv.partition("=")
        params[k.strip()] = v.strip()
    return family, params


def spec_label(family: str, settings: dict) -> str:
    if not settings:
        return family
    return family + " (" + ", ".join(f"{k}={v}" for k, v in settings.items()) + ")"


def spec_slug(spec: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in spec)


# ----------------------------------------------------------------------------- child phases

class BuildStopped(Exception):
    pass


def child_build(job: dict) -> dict:
    family, params = job["family"], job["params"]
    n, dim, threads = job["n"], job["dim"], job["threads"]
    ddir, idir = Path(job["data"]), Path(job["index_dir"])
    cand = CANDIDATES[family](dim, n, threads, params)
    out = {"phase": "build", "load_start": loadavg(), "started": now_iso()}
    gallery = np.load(ddir / "gallery.npy", mmap_mode="r")
    gc.collect()
    mem0 = proc_mem()
    t0, c0 = time.perf_counter(), time.process_time()
    sample = None
    if cand.train_size():
        sample = np.ascontiguousarray(gallery[:cand.train_size()])
    cand.begin(idir, sample)
    train_s = time.perf_counter() - t0
    del sample
    chunk = job["chunk"]
    inserted = 0
    budget = job["build_budget"]
    stopped = False
    try:
        with make_progress() as prog:
            task = prog.add_task(f"build {spec_label(family, cand.settings())}", total=n)
            for s in range(0, n, chunk):
                e = min(n, s + chunk)
                x = np.ascontiguousarray(gallery[s:e])
                cand.add(np.arange(s, e, dtype=np.int64), x)
                inserted = e
                prog.update(task, completed=e)
                if time.perf_counter() - t0 > budget and e < n:
                    raise BuildStopped
        t_add = time.perf_counter()
        cand.end()
        end_s = time.perf_counter() - t_add
    except BuildStopped:
        stopped = True
        end_s = 0.0
    build_s = time.perf_counter() - t0
    out.update({
        "settings": cand.settings(),
        "inserted": inserted,
        "stopped_at_budget": stopped,
        "build_s": round(build_s, 3),
        "train_s": round(train_s, 3),
        "finalize_s": round(end_s, 3),
        "build_cpu_s": round(time.process_time() - c0, 2),
        "insert_rate_per_s": round(inserted / build_s, 1) if build_s > 0 else None,
    })
    gc.collect()
    out["build_mem_delta"] = mem_delta(proc_mem(), mem0)
    out["build_peak_rss"] = proc_mem().get("VmHWM")
    if not stopped:
        t1 = time.perf_counter()
        cand.save(idir)
        out["save_s"] = round(time.perf_counter() - t1, 3)
        out["disk_bytes"] = dir_size(idir)
        try:
            out["own_size_build"] = cand.own_size()
        except Exception as exc:
            out["own_size_build"] = {"error": repr(exc)[:200]}
    cand.close()
    out["load_end"] = loadavg()
    return out


def _timed_batches(cand, q, batch, order, budget, min_batches, max_batches, label, prog):
    wall, cpu, got = [], [], {}
    nb = len(q) // batch
    if nb == 0:
        return wall, cpu, got
    t_start = time.perf_counter()
    task = prog.add_task(label, total=max_batches)
    done = 0
    rng = np.random.default_rng(7)
    idx = np.asarray(order)
    while done < max_batches:
        for b in range(nb):
            sel = idx[b * batch:(b + 1) * batch]
            qb = np.ascontiguousarray(q[sel])
            t0, c0 = time.perf_counter(), time.process_time()
            ids = cand.search(qb, 1)
            wall.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
            for j, r in zip(sel, ids[:, 0]):
                got.setdefault(int(j), int(r))
            done += 1
            prog.update(task, completed=done)
            if done >= max_batches:
                break
            if done >= min_batches and time.perf_counter() - t_start > budget:
                break
        if done >= min_batches and time.perf_counter() - t_start > budget:
            break
        idx = rng.permutation(len(q))
    prog.update(task, total=done, completed=done)
    return wall, cpu, got


def child_search(job: dict) -> dict:
    family, params = job["family"], job["params"]
    n, dim, threads = job["n"], job["dim"], job["threads"]
    ddir, idir = Path(job["data"]), Path(job["index_dir"])
    cand = CANDIDATES[family](dim, n, threads, params)
    out = {"phase": "search", "load_start": loadavg(), "started": now_iso()}
    queries = np.load(ddir / "queries.npy")
    truth = np.load(ddir / "truth.npz")
    top1 = truth["top1"]
    query_ids = np.load(ddir / "query_ids.npy")
    n_eval = job["queries"]
    q_eval, gt_eval = queries[:n_eval], top1[:n_eval]
    q_tune, gt_tune = queries[n_eval:], top1[n_eval:]
    # import the candidate's library before the memory baseline
    if family == "milvus-lite":
        import pymilvus  # noqa: F401
        import milvus_lite  # noqa: F401
    elif family.startswith("lancedb"):
        import lancedb  # noqa: F401
    elif family == "qdrant-local":
        import qdrant_client  # noqa: F401
    elif family.startswith("usearch"):
        import usearch.index  # noqa: F401
    elif family.startswith("hnswlib"):
        import hnswlib  # noqa: F401
    if family.startswith("faiss") or family == "faiss-binary+f16-rerank":
        import faiss  # noqa: F401
    gc.collect()
    mem0 = proc_mem()
    t0 = time.perf_counter()
    cand.open(idir)
    out["reopen_s"] = round(time.perf_counter() - t0, 3)
    gc.collect()
    out["mem_after_reopen"] = mem_delta(proc_mem(), mem0)
    out["settings"] = cand.settings()

    with make_progress() as prog:
        # --- tune the search-time knob on the tuning queries
        sweep = []
        if cand.knob and cand.knob in params:   # pinned, e.g. "faiss-hnsw-sqfp16:efSearch=512"
            cand.set_knob(int(params[cand.knob]))
            out["knob"] = {"name": cand.knob, "value": int(params[cand.knob]), "sweep": [],
                           "pinned": True}
        elif cand.knob and len(q_tune):
            values = cand.knob_values()
            task = prog.add_task(f"tune {cand.knob}", total=len(values))
            chosen = None
            for i, v in enumerate(values):
                cand.set_knob(v)
                t1 = time.perf_counter()
                ids = np.concatenate([cand.search(np.ascontiguousarray(q_tune[s:s + 64]), 1)
                                      for s in range(0, len(q_tune), 64)])
                per_q = (time.perf_counter() - t1) / len(q_tune)
                rec = float(np.mean(ids[:, 0] == gt_tune))
                sweep.append({"value": v, "recall_at_1": round(rec, 4),
                              "ms_per_query_batch64": round(per_q * 1e3, 3)})
                prog.update(task, completed=i + 1)
                if rec >= job["tune_recall"]:
                    chosen = v
                    break
                if per_q * 1e3 > job["tune_max_ms"]:
                    break
            if chosen is None:
                best = max(sweep, key=lambda r: (r["recall_at_1"], -r["value"]))
                chosen = best["value"]
                out["tune_note"] = (f"no {cand.knob} in the sweep reached recall {job['tune_recall']} "
                                    f"on the tuning queries; took the best one")
            prog.update(task, total=len(sweep), completed=len(sweep))
            cand.set_knob(chosen)
            out["knob"] = {"name": cand.knob, "value": chosen, "sweep": sweep,
                           "tune_recall": job["tune_recall"], "tune_queries": len(q_tune)}
        # --- warm-up
        for s in range(min(5, len(q_eval))):
            cand.search(q_eval[s:s + 1], 1)
        # --- batch 64: the first pass (in order) gives recall@1 over every eval query
        wall, cpu, got = _timed_batches(cand, q_eval, 64, np.arange(len(q_eval)),
                                        job["batch_budget"], job["min_batches"],
                                        max(job["min_batches"], len(q_eval) // 64), "batch 64", prog)
        ids64 = np.array([got.get(i, -1) for i in range(len(q_eval))])
        covered = np.array([i in got for i in range(len(q_eval))])
        # the tail that does not fill a batch of 64, searched for recall only
        if (~covered).any():
            rest = np.flatnonzero(~covered)
            ids64[rest] = cand.search(np.ascontiguousarray(q_eval[rest]), 1)[:, 0]
        out["batch64"] = {
            "batches": len(wall),
            "p50_ms": round(pct(wall, 50) * 1e3, 3) if wall else None,
            "p99_ms": round(pct(wall, 99) * 1e3, 3) if wall else None,
            "mean_ms": round(float(np.mean(wall)) * 1e3, 3) if wall else None,
            "cpu_p50_ms": round(pct(cpu, 50) * 1e3, 3) if cpu else None,
            "queries_per_s": round(64 * len(wall) / float(np.sum(wall)), 1) if wall else None,
        }
        out["recall_at_1"] = round(float(np.mean(ids64 == gt_eval)), 4)
        out["recall_queries"] = int(len(q_eval))
        out["identity_hit_rate"] = round(float(np.mean(ids64 == query_ids[:n_eval])), 4)
        # --- batch 1
        wall1, cpu1, hits = [], [], []
        t_start = time.perf_counter()
        task = prog.add_task("batch 1", total=len(q_eval))
        for i in range(len(q_eval)):
            qi = q_eval[i:i + 1]
            t1, c1 = time.perf_counter(), time.process_time()
            r = cand.search(qi, 1)
            wall1.append(time.perf_counter() - t1)
            cpu1.append(time.process_time() - c1)
            hits.append(int(r[0, 0]) == int(gt_eval[i]))
            prog.update(task, completed=i + 1)
            if i + 1 >= job["min_single"] and time.perf_counter() - t_start > job["single_budget"]:
                break
        prog.update(task, total=len(wall1), completed=len(wall1))
        out["batch1"] = {
            "queries": len(wall1),
            "p50_ms": round(pct(wall1, 50) * 1e3, 3),
            "p99_ms": round(pct(wall1, 99) * 1e3, 3),
            "mean_ms": round(float(np.mean(wall1)) * 1e3, 3),
            "cpu_p50_ms": round(pct(cpu1, 50) * 1e3, 3),
            "cpu_p99_ms": round(pct(cpu1, 99) * 1e3, 3),
            "recall_at_1": round(float(np.mean(hits)), 4),
        }
    gc.collect()
    out["mem_after_search"] = mem_delta(proc_mem(), mem0)
    try:
        out["own_size"] = cand.own_size()
    except Exception as exc:
        out["own_size"] = {"error": repr(exc)[:200]}
    # --- removal: drop the exact first hit of eval query 0 and check it no longer comes back
    victim = int(gt_eval[0])
    rem = {"victim": victim}
    try:
        t1 = time.perf_counter()
        how = cand.remove(victim)
        rem["remove_ms"] = round((time.perf_counter() - t1) * 1e3, 3)
        rem["how"] = how
        if getattr(cand, "remove_error", None):
            rem["native_error"] = cand.remove_error
        k = min(10, n - 1)
        after = cand.search(np.ascontiguousarray(q_eval[:1]), k)[0]
        rem["gone"] = bool(victim not in set(int(a) for a in after))
        rem["first_after"] = int(after[0])
    except Exception as exc:
        rem["error"] = repr(exc)[:300]
        rem["gone"] = False
    out["removal"] = rem
    cand.close()
    out["load_end"] = loadavg()
    return out


def child_main(job_path: str) -> None:
    job = json.loads(Path(job_path).read_text())
    res = run_phase(job)
    Path(job["result"]).write_text(json.dumps(res, indent=2, default=str))


def run_phase(job: dict) -> dict:
    from threadpoolctl import threadpool_limits
    with threadpool_limits(limits=job["threads"]):
        try:
            res = child_build(job) if job["phase"] == "build" else child_search(job)
            res["ok"] = True
        except Exception as exc:
            import traceback
            res = {"ok": False, "phase": job["phase"], "error": repr(exc)[:500],
                   "traceback": traceback.format_exc()[-3000:], "load_end": loadavg()}
    return res


# ----------------------------------------------------------------------------- parent

def machine_info() -> dict:
    info = {"python": platform.python_version(), "platform": platform.platform(),
            "cores": os.cpu_count()}
    try:
        txt = Path("/proc/cpuinfo").read_text()
        for line in txt.splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        flags = next((ln.split(":", 1)[1].split() for ln in txt.splitlines()
                      if ln.startswith("flags")), [])
        info["isa"] = sorted(f for f in flags if f.startswith(("avx512", "avx2", "f16c", "amx")))
    except OSError:
        pass
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["mem_gib"] = round(int(line.split()[1]) / 2 ** 20, 1)
    except OSError:
        pass
    import importlib.metadata as md
    vers = {}
    for pkg in ("numpy", "faiss-cpu", "usearch", "hnswlib", "pymilvus", "milvus-lite", "lancedb",
                "qdrant-client"):
        try:
            vers[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            vers[pkg] = None
    info["versions"] = vers
    return info


def wait_for_load(max_load: float, wait_s: float) -> dict:
    if max_load <= 0:
        return {"waited_s": 0}
    t0 = time.perf_counter()
    while os.getloadavg()[0] > max_load and time.perf_counter() - t0 < wait_s:
        time.sleep(10)
    return {"waited_s": round(time.perf_counter() - t0, 1), "load_now": loadavg(),
            "below_threshold": os.getloadavg()[0] <= max_load, "threshold": max_load}


def _mem_available() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 1 << 62


def _rss_of(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def run_child(job: dict, timeout: float, inline: bool = False) -> dict:
    if inline:   # small galleries: same process, no start-up cost (memory figures are rougher)
        t0 = time.perf_counter()
        res = run_phase(job)
        res["wall_s"] = round(time.perf_counter() - t0, 1)
        res["inline"] = True
        return res
    jp = Path(job["result"]).with_suffix(".job.json")
    jp.write_text(json.dumps(job))
    Path(job["result"]).unlink(missing_ok=True)
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(job["threads"])
    env.setdefault("LANCEDB_LOG", "error")
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--child", str(jp)],
                            env=env, start_new_session=True)
    # wait, and stop the child past its time limit or when the machine runs short of memory
    # (other processes share it; a child that would push it into the OOM killer is stopped first)
    floor = job.get("min_available", 0)
    peak = 0
    while True:
        try:
            rc = proc.wait(timeout=1.0)
            break
        except subprocess.TimeoutExpired:
            pass
        peak = max(peak, _rss_of(proc.pid))
        why = None
        if time.perf_counter() - t0 > timeout:
            why = f"killed after the {timeout:.0f} s limit of the {job['phase']} phase"
        elif floor and _mem_available() < floor:
            why = (f"killed when the machine's MemAvailable fell below {floor / 2 ** 30:.1f} GiB "
                   f"(the child's RSS was {peak / 2 ** 30:.1f} GiB at most)")
        if why:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return {"ok": False, "phase": job["phase"], "timed_out": "limit" in why, "error": why,
                    "child_peak_rss": peak, "wall_s": round(time.perf_counter() - t0, 1),
                    "load_end": loadavg()}
    rp = Path(job["result"])
    if rp.exists():
        res = json.loads(rp.read_text())
    else:
        res = {"ok": False, "phase": job["phase"], "error": f"child exited with {rc} and no result",
               "load_end": loadavg()}
    res["wall_s"] = round(time.perf_counter() - t0, 1)
    return res


def results_paths(out: Path, machine: str) -> tuple[Path, Path]:
    return out / f"{machine}-gallery-candidates.json", out / f"{machine}-gallery-candidates.md"


def combine(n: int, family: str, params: dict, build: dict, search: dict | None,
            waits: list) -> dict:
    cls = CANDIDATES[family]
    settings = build.get("settings") or (search or {}).get("settings") or params
    return {"n": n, "candidate": family, "library": cls.library, "settings": settings,
            "label": spec_label(family, settings), "removal_support": cls.removal,
            "build": build, "search": search, "load_waits": waits}


def entry_key(e: dict) -> str:
    return f"{e['n']}|{e['label']}"


def main_parent(args) -> None:
    con = console()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    if args.candidates in ("default", ""):
        specs = DEFAULT_SPECS
    elif args.candidates == "all":
        specs = ALL_SPECS
    else:
        specs = _split_specs(args.candidates)
    parsed = [parse_spec(s) for s in specs]
    small = args.n < 20_000
    inline = {"auto": small, "yes": False, "no": True}[args.isolate]
    for name, big, little in (("queries", 1000, 200), ("tune_queries", 500, 100),
                              ("min_batches", 30, 5), ("min_single", 100, 50),
                              ("time_budget", 60.0, 5.0)):
        if getattr(args, name) is None:
            setattr(args, name, little if small else big)
    load_first = loadavg()
    ddir = ensure_dataset(work, args.n, args.dim, args.queries, args.tune_queries, args.seed,
                          args.threads)
    meta = json.loads((ddir / "meta.json").read_text())
    jpath, mpath = results_paths(out, args.machine)
    doc = {"entries": []}
    if jpath.exists() and not args.fresh:
        try:
            doc = json.loads(jpath.read_text())
        except json.JSONDecodeError:
            doc = {"entries": []}
    doc["machine"] = machine_info()
    doc["machine_name"] = args.machine
    doc["targets"] = TARGETS
    doc.setdefault("data", {})[str(args.n)] = meta
    doc["method"] = {
        "memory": ("VmRSS delta of the search process (/proc/self/status): after reopening the saved "
                   "index and running every search, minus just before reopening (libraries imported, "
                   "queries loaded). RssAnon/RssFile split and the index's own accounting in the JSON."),
        "fp16_raw": "N x dim x 2 bytes",
        "recall": "recall@1 against the exact float32 matmul's first result, held-out queries, batch 64",
        "tuning": (f"search-time knob: smallest value in the sweep reaching recall {args.tune_recall} on "
                   f"{args.tune_queries} separate tuning queries"),
        "latency": ("wall clock per search call; batch 1: one query per call; batch 64: 64 queries per "
                    "call, p50/p99 per call; process CPU time in the JSON"),
        "threads": args.threads,
    }
    runs = doc.setdefault("runs", [])
    run_rec = {"n": args.n, "started": now_iso(), "load_start": load_first,
               "candidates": specs, "argv": sys.argv[1:]}
    runs.append(run_rec)
    fp16_bytes = args.n * args.dim * 2
    con.print(f"[bold]gallery candidates[/bold] N={args.n} dim={args.dim} threads={args.threads} "
              f"load {load_first}")
    for family, params in parsed:
        cand = CANDIDATES[family](args.dim, args.n, args.threads, params)
        label = spec_label(family, cand.settings())
        slug = spec_slug(label)
        rdir = work / f"run-n{args.n}" / slug
        if rdir.exists():
            shutil.rmtree(rdir)
        idir = rdir / "index"
        idir.mkdir(parents=True)
        base = {"family": family, "params": params, "n": args.n, "dim": args.dim,
                "threads": args.threads, "data": str(ddir), "index_dir": str(idir),
                "chunk": args.chunk, "build_budget": args.build_budget, "queries": args.queries,
                "tune_recall": args.tune_recall, "tune_max_ms": args.tune_max_ms,
                "batch_budget": args.time_budget, "single_budget": args.time_budget,
                "min_batches": args.min_batches, "min_single": args.min_single,
                "min_available": int(args.min_available_gib * 2 ** 30)}
        waits = [wait_for_load(args.max_load, args.load_wait)]
        con.print(f"[bold cyan]{label}[/bold cyan]: build (load {loadavg()})")
        build = run_child({**base, "phase": "build", "result": str(rdir / "build.json")},
                          args.build_budget + args.grace, inline)
        build["dim"] = args.dim
        search = None
        if build.get("ok") and not build.get("stopped_at_budget"):
            waits.append(wait_for_load(args.max_load, args.load_wait))
            con.print(f"[bold cyan]{label}[/bold cyan]: search (load {loadavg()})")
            search = run_child({**base, "phase": "search", "result": str(rdir / "search.json")},
                               args.search_timeout, inline)
        entry = combine(args.n, family, params, build, search, waits)
        entry["fp16_raw_bytes"] = fp16_bytes
        doc["entries"] = [e for e in doc["entries"] if entry_key(e) != entry_key(entry)] + [entry]
        doc["entries"].sort(key=lambda e: (e["n"], list(CANDIDATES).index(e["candidate"]), e["label"]))
        run_rec["load_end"] = loadavg()
        jpath.write_text(json.dumps(doc, indent=2, default=str))
        mpath.write_text(render_md(doc))
        con.print("  " + summary_line(entry))
        if not args.keep_indexes:
            shutil.rmtree(idir, ignore_errors=True)
    run_rec["finished"] = now_iso()
    run_rec["load_end"] = loadavg()
    jpath.write_text(json.dumps(doc, indent=2, default=str))
    mpath.write_text(render_md(doc))
    con.print(f"wrote {jpath} and {mpath}")


def _split_specs(text: str) -> list[str]:
    """Split 'a,b:M=16,efc=64,c' into ['a', 'b:M=16,efc=64', 'c'] (a part with '=' and no ':'
    belongs to the candidate before it)."""
    out: list[str] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if "=" in part and ":" not in part and out:
            out[-1] += "," + part
        else:
            out.append(part)
    return out


# ----------------------------------------------------------------------------- report

def _mib(b) -> str:
    return "–" if b is None else f"{b / 2 ** 20:,.0f}"


def _f(v, fmt="{:.2f}") -> str:
    return "–" if v is None else fmt.format(v)


def _mem_used(e: dict):
    s = e.get("search") or {}
    m = s.get("mem_after_search") or {}
    return m.get("VmRSS")


def summary_line(e: dict) -> str:
    b, s = e["build"], e.get("search") or {}
    if not b.get("ok"):
        return f"build failed: {b.get('error')}"
    if b.get("stopped_at_budget"):
        return (f"build stopped at the budget: {b['inserted']} inserted in {b['build_s']:.0f} s "
                f"({b['insert_rate_per_s']}/s)")
    if not s.get("ok"):
        return f"build {b['build_s']:.1f} s; search failed: {s.get('error')}"
    mem = _mem_used(e)
    return (f"build {b['build_s']:.1f} s ({b['insert_rate_per_s']:,.0f}/s), mem {_mib(mem)} MiB "
            f"({mem / e['fp16_raw_bytes']:.2f}x fp16), recall@1 {s['recall_at_1']:.4f}, "
            f"b1 p50/p99 {s['batch1']['p50_ms']:.2f}/{s['batch1']['p99_ms']:.2f} ms, "
            f"b64 p50/p99 {_f(s['batch64']['p50_ms'], '{:.1f}')}/{_f(s['batch64']['p99_ms'], '{:.1f}')} ms, "
            f"reopen {s['reopen_s']:.2f} s, removal {s['removal'].get('how')} gone={s['removal'].get('gone')}")


def _load_str(e: dict) -> str:
    b, s = e["build"], e.get("search") or {}
    parts = []
    for ph in (b, s):
        if ph.get("load_start"):
            end = ph.get("load_end")
            parts.append(f"{ph['load_start'][0]:.1f}→{end[0]:.1f}" if end else
                         f"{ph['load_start'][0]:.1f}→?")
    return " / ".join(parts) if parts else "–"


def _max_load(e: dict) -> float:
    vals = []
    for ph in (e["build"], e.get("search") or {}):
        for k in ("load_start", "load_end"):
            if ph.get(k):
                vals.append(ph[k][0])
    return max(vals) if vals else 0.0


def _targets_str(e: dict, t: dict) -> str:
    s = e.get("search") or {}
    if not s.get("ok"):
        return "–"
    mem = _mem_used(e)
    ratio = mem / e["fp16_raw_bytes"] if mem is not None else None
    checks = [
        s["recall_at_1"] >= t["recall_at_1"],
        s["batch1"]["p99_ms"] <= t["p99_batch1_ms"],
        ratio is not None and ratio <= t["memory_ratio_to_fp16"],
        bool((s.get("removal") or {}).get("gone")),
    ]
    return " ".join("✓" if c else "✗" for c in checks)


def render_md(doc: dict) -> str:
    m = doc.get("machine", {})
    t = doc.get("targets", TARGETS)
    meth = doc.get("method", {})
    lines = [f"# Gallery index candidates on {doc.get('machine_name')} (issue #21)", ""]
    lines.append(f"CPU: {m.get('cpu')}, {m.get('cores')} cores, {m.get('mem_gib')} GiB RAM; "
                 f"ISA: {', '.join(m.get('isa', []))}.")
    lines.append("Versions: " + ", ".join(f"{k} {v}" for k, v in (m.get("versions") or {}).items()
                                           if v) + ".")
    lines.append("")
    lines.append("Produced by `benchmarks/gallery_candidates.py` (see its docstring). Every number "
                 "below was measured on this machine; a blank cell was not measured.")
    lines.append("")
    lines.append(f"- Memory: {meth.get('memory')}")
    lines.append(f"- Recall: {meth.get('recall')}.")
    lines.append(f"- Tuning: {meth.get('tuning')}.")
    lines.append(f"- Latency: {meth.get('latency')}. Threads per library: {meth.get('threads')}.")
    lines.append(f"- Targets (1M x 512), the ✓/✗ column in that order: recall@1 >= {t['recall_at_1']}; "
                 f"batch-1 p99 <= {t['p99_batch1_ms']} ms; RSS after search <= "
                 f"{t['memory_ratio_to_fp16']}x the raw FP16 vectors; an identity can be removed "
                 f"(checked: the removed id no longer comes back).")
    lines.append("- Load: the 1-minute load average (`os.getloadavg()`) at the start→end of the build "
                 "and of the search phase.")
    lines.append("")
    for n in sorted({e["n"] for e in doc.get("entries", [])}, reverse=True):
        meta = doc.get("data", {}).get(str(n), {})
        lines.append(f"## N = {n:,} x {meta.get('dim', '?')}")
        lines.append("")
        if meta:
            lines.append(f"Data: {meta.get('model')}. cos(query, own gallery vector) p1/p50/p99 = "
                         f"{'/'.join(str(v) for v in meta['cos_query_own'].values())}; best other "
                         f"gallery vector p1/p50/p99 = "
                         f"{'/'.join(str(v) for v in meta['cos_query_best_other'].values())}; the "
                         f"exact top-1 is the query's own identity for "
                         f"{meta['exact_top1_is_own_identity']:.1%} of queries. "
                         f"{meta['queries']} evaluation + {meta['tune_queries']} tuning queries. "
                         f"FP16 raw size: {n * meta.get('dim', 0) * 2 / 2 ** 20:,.0f} MiB.")
            lines.append("")
        lines.append("| candidate | settings (tuned knob) | build s | insert /s | RSS Δ reopen MiB | "
                     "RSS Δ after search MiB | ×FP16 | recall@1 | b1 p50 ms | b1 p99 ms | "
                     "b64 p50 ms | b64 p99 ms | reopen s | removal | targets | load |")
        lines.append("|" + "---|" * 16)
        notes = []
        for e in [x for x in doc["entries"] if x["n"] == n]:
            b, s = e["build"], e.get("search") or {}
            settings = ", ".join(f"{k}={v}" for k, v in (e.get("settings") or {}).items()) or "–"
            if s.get("knob"):
                settings += f" ({s['knob']['name']}={s['knob']['value']})"
            rem = s.get("removal") or {}
            rem_txt = f"{rem.get('how', 'error')}" + (" ✓" if rem.get("gone") else " ✗") if rem else "–"
            blank = " | " * 12
            if not b.get("ok"):
                lines.append(f"| {e['candidate']} | {settings} | failed{blank}{_load_str(e)} |")
                notes.append(f"{e['label']}: build failed: {b.get('error')}")
                continue
            if b.get("stopped_at_budget"):
                lines.append(f"| {e['candidate']} | {settings} | stopped at {b['build_s']:.0f} s: "
                             f"{b['inserted']:,} of {n:,} inserted | {b['insert_rate_per_s']:,.0f}"
                             f"{' | ' * 11}✗ | {_load_str(e)} |")
                notes.append(f"{e['label']}: the build was stopped at the {b['build_s']:.0f} s budget "
                             f"with {b['inserted']:,} of {n:,} vectors inserted "
                             f"({b['insert_rate_per_s']:,.0f}/s over the whole build, "
                             f"{b.get('build_cpu_s')} s of CPU); nothing was searched.")
                continue
            if not s.get("ok"):
                lines.append(f"| {e['candidate']} | {settings} | {b['build_s']:.1f} | "
                             f"{b['insert_rate_per_s']:,.0f} | search failed{' | ' * 11}"
                             f"{_load_str(e)} |")
                notes.append(f"{e['label']}: search failed: {s.get('error')}")
                continue
            mem = _mem_used(e)
            mr = (s.get("mem_after_reopen") or {}).get("VmRSS")
            ratio = mem / e["fp16_raw_bytes"] if mem is not None else None
            lines.append(
                f"| {e['candidate']} | {settings} | {b['build_s']:.1f} | {b['insert_rate_per_s']:,.0f} | "
                f"{_mib(mr)} | {_mib(mem)} | {_f(ratio)} | {s['recall_at_1']:.4f} | "
                f"{s['batch1']['p50_ms']:.2f} | {s['batch1']['p99_ms']:.2f} | "
                f"{_f(s['batch64']['p50_ms'], '{:.1f}')} | {_f(s['batch64']['p99_ms'], '{:.1f}')} | "
                f"{s['reopen_s']:.2f} | {rem_txt} | {_targets_str(e, t)} | {_load_str(e)} |")
            if s.get("tune_note"):
                notes.append(f"{e['label']}: {s['tune_note']}")
        lines.append("")
        lines.append("<details><summary>details: CPU time, sweep, own size accounting, disk, "
                     "removal</summary>")
        lines.append("")
        lines.append("| candidate | b1 CPU p50 ms | b1 CPU p99 ms | b64 CPU p50 ms | b64 queries/s | build CPU s | "
                     "knob sweep (value: tuning recall@1) | own size MiB | disk MiB | RSS Δ reopen "
                     "anon/file MiB | build peak RSS MiB | remove ms | removal support |")
        lines.append("|" + "---|" * 13)
        for e in [x for x in doc["entries"] if x["n"] == n]:
            b, s = e["build"], e.get("search") or {}
            if not (b.get("ok") and s.get("ok")):
                continue
            own = (s.get("own_size") or {}).get("bytes")
            mr = s.get("mem_after_reopen") or {}
            sweep = ", ".join(f"{r['value']}: {r['recall_at_1']:.3f}"
                              for r in (s.get("knob") or {}).get("sweep", [])) or "–"
            lines.append(f"| {e['label']} | {s['batch1']['cpu_p50_ms']:.2f} | "
                         f"{_f(s['batch1'].get('cpu_p99_ms'))} | "
                         f"{_f(s['batch64'].get('cpu_p50_ms'), '{:.1f}')} | "
                         f"{_f(s['batch64'].get('queries_per_s'), '{:,.0f}')} | "
                         f"{_f(b.get('build_cpu_s'), '{:.1f}')} | {sweep} | {_mib(own)} | "
                         f"{_mib(b.get('disk_bytes'))} | {_mib(mr.get('RssAnon'))}/"
                         f"{_mib(mr.get('RssFile'))} | {_mib(b.get('build_peak_rss'))} | "
                         f"{_f(s['removal'].get('remove_ms'))} | {e['removal_support']} |")
        lines.append("")
        lines.append("</details>")
        lines.append("")
        high = [e for e in doc["entries"] if e["n"] == n and _max_load(e) > 2.5]
        if high:
            lines.append(f"**Load was high.** The 1-minute load average exceeded 2.5 on this "
                         f"{m.get('cores')}-core machine during "
                         + ", ".join(f"{e['label']} (max {_max_load(e):.1f})" for e in high)
                         + ". Other processes (test suites, other benchmarks) were running, so wall-clock "
                           "times, latencies above all, are inflated and noisy; the CPU-time columns "
                           "in the details are less affected.")
            lines.append("")
        for note in notes:
            lines.append(f"- {note}")
        if notes:
            lines.append("")
        extra = (doc.get("notes") or {}).get(str(n))
        if extra:
            lines.extend(extra if isinstance(extra, list) else [extra])
            lines.append("")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- CLI

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=100_000, help="gallery size (identities)")
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--queries", type=int, default=None,
                   help="evaluation queries (default 1000; 200 below N=20000)")
    p.add_argument("--tune-queries", type=int, default=None,
                   help="separate queries for tuning knobs (default 500; 100 below N=20000)")
    p.add_argument("--candidates", default="default",
                   help=("comma-separated families, each optionally with settings: "
                         "'usearch-hnsw:M=16,efc=64,faiss-hnsw-sqfp16'; 'default' = "
                         + ",".join(DEFAULT_SPECS) + "; 'all' adds qdrant-local"))
    p.add_argument("--out", default=str(DEFAULT_OUT), help="folder for the .json and .md")
    p.add_argument("--machine", default=DEFAULT_MACHINE)
    p.add_argument("--work", default=str(DEFAULT_WORK), help="data and saved indexes")
    p.add_argument("--seed", type=int, default=21)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--chunk", type=int, default=20_000, help="vectors per insert call")
    p.add_argument("--build-budget", type=float, default=1200,
                   help="seconds; the build stops (and is recorded as stopped) past this")
    p.add_argument("--grace", type=float, default=600, help="extra seconds before a build is killed")
    p.add_argument("--search-timeout", type=float, default=1800)
    p.add_argument("--tune-recall", type=float, default=0.995)
    p.add_argument("--tune-max-ms", type=float, default=50.0,
                   help="stop the sweep past this many ms per query (batch 64)")
    p.add_argument("--time-budget", type=float, default=None,
                   help=("seconds for each of the batch-1 and batch-64 timings, at least the minimums "
                         "(default 60; 5 below N=20000)"))
    p.add_argument("--min-batches", type=int, default=None, help="default 30; 5 below N=20000")
    p.add_argument("--min-single", type=int, default=None, help="default 100; 50 below N=20000")
    p.add_argument("--isolate", choices=("auto", "yes", "no"), default="auto",
                   help=("run each phase in a child process of its own (auto: from N=20000 up; "
                         "below it the phases run in this process)"))
    p.add_argument("--max-load", type=float, default=0.0,
                   help="before each phase wait until the 1-minute load is below this (0: never wait)")
    p.add_argument("--load-wait", type=float, default=600.0, help="the longest such wait, seconds")
    p.add_argument("--min-available-gib", type=float, default=2.0,
                   help="stop a candidate when the machine's MemAvailable falls below this (0: never)")
    p.add_argument("--fresh", action="store_true", help="do not merge into an existing results file")
    p.add_argument("--keep-indexes", action="store_true")
    p.add_argument("--render", action="store_true",
                   help="only write the .md again from the .json in --out (after a change to the report)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _on_sigterm(signum, _frame):
    # a benchmark stopped from outside says so in its log instead of vanishing
    sys.stderr.write(f"\n[pid {os.getpid()}] stopped by signal {signum} at {now_iso()}\n")
    sys.stderr.flush()
    os._exit(128 + signum)


def main(argv=None):
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGHUP, _on_sigterm)
    args = parse_args(argv)
    if args.child:
        child_main(args.child)
        return
    if args.render:
        jpath, mpath = results_paths(Path(args.out), args.machine)
        mpath.write_text(render_md(json.loads(jpath.read_text())))
        print(f"wrote {mpath}")
        return
    main_parent(args)


if __name__ == "__main__":
    main()
