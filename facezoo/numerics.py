"""Embedding arithmetic every part of facezoo shares: L2 normalization, cosines, pair decisions."""

from __future__ import annotations

import numpy as np

EPS = 1e-12  # below this norm a vector counts as zero


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (a zero row stays zero), in x's float dtype."""
    x = np.asarray(x)
    if x.dtype.kind != "f":
        x = x.astype(np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), EPS)


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine of row i of a with row i of b, in float64 (each row flattened)."""
    a = np.asarray(a, np.float64).reshape(len(a), -1)
    b = np.asarray(b, np.float64).reshape(len(b), -1)
    return np.sum(a * b, axis=1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), EPS)


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine of two embeddings."""
    return float(cosine_rows(np.ravel(a)[None], np.ravel(b)[None])[0])


def pair_indices(n: int) -> np.ndarray:
    """Every unordered pair (i, j), i < j, of n faces, as an (n·(n−1)/2, 2) array."""
    return np.array([(i, j) for i in range(n) for j in range(i + 1, n)], np.int64).reshape(-1, 2)


def pair_cosines(embeddings: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    return cosine_rows(embeddings[pairs[:, 0]], embeddings[pairs[:, 1]])


def flipped_pairs(reference: np.ndarray, outputs: np.ndarray, decision_threshold: float) -> np.ndarray:
    """Indices (into pair_indices) of the pairs whose same/different decision at the threshold
    differs between the reference's embeddings and the outputs (a NaN output counts as different)."""
    pairs = pair_indices(len(reference))
    same_reference = pair_cosines(reference, pairs) >= decision_threshold
    with np.errstate(invalid="ignore"):
        same_outputs = pair_cosines(outputs, pairs) >= decision_threshold
    return np.flatnonzero(same_reference != same_outputs)


def best_separation(scores: np.ndarray, issame) -> tuple[float, float]:
    """(threshold, accuracy): the cut that best separates same (score >= t) from different pairs.

    Among the accuracy-maximizing cuts, the one with the widest gap between the neighbouring
    scores is chosen, and the threshold is the midpoint of that gap (as far as possible from
    every pair's score).
    """
    scores = np.asarray(scores, np.float64)
    issame = np.asarray(issame, bool)
    values = np.unique(scores)
    # cut j lies just below values[j] (j = len(values): above everything); accepted: scores >= values[j]
    cuts = np.r_[values[0] - 1.0, (values[:-1] + values[1:]) / 2.0, values[-1] + 1.0]
    gaps = np.r_[np.inf, np.diff(values), np.inf]
    lowest_accepted = np.r_[values, np.inf]
    same_sorted, different_sorted = np.sort(scores[issame]), np.sort(scores[~issame])
    true_accepts = len(same_sorted) - np.searchsorted(same_sorted, lowest_accepted, side="left")
    true_rejects = np.searchsorted(different_sorted, lowest_accepted, side="left")
    accuracies = (true_accepts + true_rejects) / len(scores)
    best = accuracies.max()
    candidates = np.flatnonzero(accuracies >= best - 1e-12)
    pick = candidates[np.argmax(gaps[candidates])]
    return float(cuts[pick]), float(best)


__all__ = ["best_separation", "cosine_rows", "cosine_similarity", "flipped_pairs", "l2_normalize", "pair_cosines", "pair_indices"]
