"""Embedding arithmetic every part of facezoo shares: L2 normalization and cosines."""

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


__all__ = ["cosine_rows", "cosine_similarity", "l2_normalize"]
