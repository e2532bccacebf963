"""The folder store's search index: sign bits to find candidates, float16 vectors to rank them.

Each unit vector is kept twice: as its signs, ``dim`` bits (64 bytes at 512-d), and as float16. A
query's signs are compared with every face's by Hamming distance (FAISS ``IndexBinaryFlat``:
a SIMD popcount scan, 64 MB at 1M faces), and the :data:`RERANK` nearest are scored exactly, as
the cosine of the float16 vectors, and ranked. The Hamming distance between two sign vectors
follows the angle between them (its expectation is dim·θ/π), so a face that is near in cosine
is near in bits; re-ranking enough candidates makes the top results those of exact search
(benchmarks/results/*-gallery*.md measures recall@1 at 1M). A gallery of up to
:data:`EXACT_UP_TO` faces is scored whole, exactly.

Why not a graph (HNSW)? On face-like data at 1M × 512 the graphs measured here needed large
search lists (expansion 384-2048) to reach recall 0.99, were 3-300× slower to build, and take
1.35-1.5× the raw float16 vectors in memory; this index takes 1.07× (float16 + bits + keys),
builds as fast as the vectors arrive, supports removal exactly, and its batch-1 latency does not
depend on the data's structure (benchmarks/gallery_candidates.py compares them).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np

#: candidates re-scored exactly per query at 512 bits or more (at least the number of results asked for)
RERANK = 64
FULL_BITS = 512
EXACT_UP_TO = 4096  # faces: a gallery this small is scored whole (about a millisecond), exactly
PARALLEL_FROM = 8  # queries in one search from which FAISS may use all its threads
SHARD_ROWS = 1 << 18  # codes per FAISS index: a search of a few queries scans the shards side by side
GROWTH = 1.25  # capacity grows by this factor: at most 25 % slack while a gallery grows


@contextlib.contextmanager
def _threads(count: int | None):
    """FAISS's OpenMP threads set to ``count`` for one call, then restored. FAISS splits a search
    by query: for a few queries its parallel region only waits on the other threads, and on a busy
    machine that wait is the whole latency (p99 48 ms instead of 0.07 ms for one query, measured)."""
    if count is None:
        yield
        return
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(count)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def rerank_candidates(bits: int) -> int:
    """Candidates to re-score for codes of ``bits``: fewer bits tell angles apart less sharply, so
    more candidates. Measured at 1M synthetic faces (recall@1 against exact search): 128 bits with
    64 candidates 0.927, 1024 0.987, 2048 0.993; 256 bits 1.0 at 200k with 64; 512 bits 1.0."""
    if bits >= FULL_BITS:
        return RERANK
    return RERANK * 2 * (FULL_BITS // bits) ** 2


def sign_codes(vectors: np.ndarray) -> np.ndarray:
    """Each row's signs packed into bytes (zero-padded to a multiple of 8 bits)."""
    return np.packbits(np.asarray(vectors) > 0, axis=1)


class BinaryRerankIndex:
    """Keys (uint64, ascending), sign codes in a FAISS binary index, float16 vectors."""

    def __init__(self, dim: int):
        self.dim = int(dim)
        self.bits = -(-self.dim // 8) * 8
        self._shards: list = []  # IndexBinaryFlat of SHARD_ROWS codes each (the last may be partial)
        self._keys = np.empty(0, np.uint64)
        self._vectors = np.empty((0, self.dim), np.float16)
        self._count = 0
        self._executor = None  # threads that scan the shards of a small search, made when first needed

    def __len__(self) -> int:
        return self._count

    @property
    def ndim(self) -> int:
        return self.dim

    @property
    def nbytes(self) -> int:
        """Memory in use: float16 vectors, sign codes, keys (capacity slack not counted)."""
        return self._count * (self.dim * 2 + self.bits // 8 + 8)

    @property
    def keys(self) -> np.ndarray:
        return self._keys[: self._count]

    def _reserve(self, total: int) -> None:
        if total <= len(self._vectors):
            return
        capacity = max(total, int(len(self._vectors) * GROWTH) + 1)
        vectors = np.empty((capacity, self.dim), np.float16)
        keys = np.empty(capacity, np.uint64)
        vectors[: self._count] = self._vectors[: self._count]
        keys[: self._count] = self._keys[: self._count]
        self._vectors, self._keys = vectors, keys

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        """Append faces; keys must be larger than every key already in (the database's order)."""
        keys = np.asarray(keys, np.uint64).reshape(-1)
        vectors = np.asarray(vectors, np.float32).reshape(len(keys), self.dim)
        if len(keys) == 0:
            return
        if np.any(np.diff(keys.astype(np.int64)) <= 0) or (self._count and keys[0] <= self._keys[self._count - 1]):
            raise ValueError("keys must be added in increasing order")
        self._reserve(self._count + len(keys))
        self._vectors[self._count : self._count + len(keys)] = vectors.astype(np.float16)
        self._keys[self._count : self._count + len(keys)] = keys
        self._add_codes(sign_codes(vectors))
        self._count += len(keys)

    def _add_codes(self, codes: np.ndarray) -> None:
        """Append codes, filling the last shard before starting the next."""
        import faiss

        while len(codes):
            if not self._shards or self._shards[-1].ntotal >= SHARD_ROWS:
                self._shards.append(faiss.IndexBinaryFlat(self.bits))
            room = SHARD_ROWS - self._shards[-1].ntotal
            self._shards[-1].add(np.ascontiguousarray(codes[:room]))
            codes = codes[room:]

    def contains(self, keys: np.ndarray) -> np.ndarray:
        keys = np.asarray(keys, np.uint64).reshape(-1)
        where = np.searchsorted(self.keys, keys)
        inside = where < self._count
        found = np.zeros(len(keys), bool)
        found[inside] = self.keys[where[inside]] == keys[inside]
        return found

    def remove(self, keys: np.ndarray) -> int:
        """Drop faces by key (compacting: O(faces), a remove is rare beside a search)."""
        drop = np.isin(self.keys, np.asarray(keys, np.uint64))
        removed = int(drop.sum())
        if removed == 0:
            return 0
        keep = ~drop
        codes = self._codes()[keep]
        self._vectors = np.ascontiguousarray(self._vectors[: self._count][keep])
        self._keys = np.ascontiguousarray(self.keys[keep])
        self._count = len(self._keys)
        self._shards = []
        self._add_codes(codes)
        return removed

    def _codes(self) -> np.ndarray:
        import faiss

        if not self._shards:
            return np.empty((0, self.bits // 8), np.uint8)
        return np.concatenate([faiss.vector_to_array(shard.xb).reshape(-1, self.bits // 8) for shard in self._shards])

    def search(self, queries: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
        """Per unit query, the ``count`` nearest faces by cosine: (keys, cosines), best first,
        each (n, min(count, len)) (empty rows when there are no faces)."""
        queries = np.asarray(queries, np.float32).reshape(-1, self.dim)
        count = min(int(count), self._count)
        if count == 0:
            return np.empty((len(queries), 0), np.uint64), np.empty((len(queries), 0), np.float32)
        if self._count <= EXACT_UP_TO:  # every face scored: exact
            scores = queries @ self._vectors[: self._count].astype(np.float32).T
            rows = np.broadcast_to(np.arange(self._count), scores.shape)
            candidates = self._count
        else:
            candidates = min(self._count, max(rerank_candidates(self.bits), count))
            rows = self._candidates(sign_codes(queries), candidates)
            scores = np.einsum("qcd,qd->qc", self._vectors[rows].astype(np.float32), queries)
        best = np.argpartition(-scores, count - 1, axis=1)[:, :count] if count < candidates else (
            np.broadcast_to(np.arange(candidates), scores.shape))
        order = np.take_along_axis(best, np.argsort(-np.take_along_axis(scores, best, axis=1), axis=1), axis=1)
        return self.keys[np.take_along_axis(rows, order, axis=1)], np.take_along_axis(scores, order, axis=1)

    def _candidates(self, codes: np.ndarray, count: int) -> np.ndarray:
        """Rows of the ``count`` faces nearest each query in Hamming distance, over every shard.

        A few queries: the shards are scanned side by side on threads (FAISS releases the GIL; one
        query cannot be split inside FAISS), each with one OpenMP thread. Many: one shard after the
        other, FAISS splitting the queries over its threads."""
        few = len(codes) < PARALLEL_FROM

        def scan(shard_index: int):
            shard = self._shards[shard_index]
            distances, rows = shard.search(codes, min(count, shard.ntotal))
            return distances, rows + shard_index * SHARD_ROWS

        with _threads(1 if few else None):
            if few and len(self._shards) > 1:
                parts = list(self._pool().map(scan, range(len(self._shards))))
            else:
                parts = [scan(k) for k in range(len(self._shards))]
        distances = np.concatenate([d for d, _ in parts], axis=1)
        rows = np.concatenate([r for _, r in parts], axis=1)
        if rows.shape[1] > count:
            nearest = np.argpartition(distances, count - 1, axis=1)[:, :count]
            rows = np.take_along_axis(rows, nearest, axis=1)
        return rows

    def _pool(self):
        from concurrent.futures import ThreadPoolExecutor

        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=max(1, min(len(os.sched_getaffinity(0)), 8)),
                                                thread_name_prefix="facezoo-gallery-scan")
        return self._executor

    # ------------------------------------------------------------------------------ files --
    def save(self, path: Path) -> None:
        """Keys, codes and vectors in one uncompressed .npz (written by the caller atomically)."""
        with open(path, "wb") as handle:
            np.savez(handle, keys=self.keys, codes=self._codes(), vectors=self._vectors[: self._count],
                     dim=np.array([self.dim]))

    @classmethod
    def load(cls, path: Path) -> "BinaryRerankIndex":
        with np.load(path, allow_pickle=False) as data:
            dim = int(data["dim"][0])
            index = cls(dim)
            keys, codes, vectors = data["keys"], data["codes"], data["vectors"]
        if len(keys) != len(codes) or len(keys) != len(vectors) or vectors.shape[1:] != (dim,):
            raise ValueError(f"{path}: keys, codes and vectors disagree in length or width")
        if codes.shape[1:] != (index.bits // 8,):
            raise ValueError(f"{path}: codes of {codes.shape[1:]} bytes for {dim}-d vectors")
        index._keys, index._vectors, index._count = keys.astype(np.uint64), vectors.astype(np.float16), len(keys)
        index._add_codes(np.ascontiguousarray(codes))
        return index


__all__ = ["BinaryRerankIndex", "EXACT_UP_TO", "RERANK", "rerank_candidates", "sign_codes"]
