"""Where a gallery's embeddings live: the interface every store meets, and the store table.

A store holds faces (an identity, an L2-normalized vector, the source image's sha256 and the
face's index in it) and the gallery's :class:`~facezoo.gallery.info.GalleryInfo`, and finds the
faces nearest a query by cosine. Two stores:

* ``folder`` (the default, no server): SQLite for the faces and a sign-bit + float16 index, in the
  gallery's folder (:mod:`facezoo.gallery.folder`);
* ``milvus:`` URIs: Milvus, embedded in a file (Milvus Lite, ``milvus:galleries.db``) or a
  Milvus server or cluster (``milvus:http://host:19530``) (:mod:`facezoo.gallery.milvus`).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from facezoo.gallery.errors import GalleryError
from facezoo.gallery.info import GalleryInfo

FOLDER_STORE = "folder"
#: store scheme -> module:class implementing VectorStore
STORES = {
    FOLDER_STORE: "facezoo.gallery.folder:FolderStore",
    "milvus": "facezoo.gallery.milvus:MilvusStore",
}


@dataclass(frozen=True)
class Face:
    """One enrolled face, as added."""

    identity: str
    image_sha256: str
    face: int  # which face of the image (0 for a crop, or the detector's order)
    source: str  # where it came from (a path, a parquet row), for people reading `gallery list`


@dataclass(frozen=True)
class Hit:
    """A gallery face near a query."""

    identity: str
    cosine: float


class VectorStore(Protocol):
    """What a gallery asks of its store. Vectors are float32, L2-normalized, of the gallery's dim."""

    info: GalleryInfo

    def add(self, faces: list[Face], vectors: np.ndarray) -> int:
        """Add the faces of one identity in one transaction (all or none); DuplicateFace if any
        image and face is enrolled already. Returns how many were added."""

    def remove(self, identity: str) -> int:
        """Remove every face of ``identity`` (IdentityNotFound if it has none); returns how many."""

    def identities(self) -> dict[str, int]:
        """Each identity's number of faces."""

    def count(self) -> int:
        """Faces in the gallery."""

    def search(self, queries: np.ndarray, count: int) -> list[list[Hit]]:
        """Per query, up to ``count`` nearest faces, best first."""

    def save_info(self, info: GalleryInfo) -> None:
        """Replace the gallery's record (e.g. a precision noted)."""

    def close(self) -> None:
        ...


def store_class(uri: str | None):
    """The VectorStore class for a store URI (None or "folder": the embedded default)."""
    scheme = FOLDER_STORE if not uri or uri == FOLDER_STORE else uri.split(":", 1)[0]
    if scheme not in STORES:
        raise GalleryError(f"--store {uri}: unknown store; expected no --store (a folder) or one of "
                           f"{', '.join(s + ':...' for s in STORES if s != FOLDER_STORE)}")
    module, _, name = STORES[scheme].partition(":")
    return getattr(importlib.import_module(module), name)


def checked_batch(faces: list[Face], vectors: np.ndarray, dim: int) -> np.ndarray:
    """What every store checks before it writes an add: one unit vector per face, and no image and
    face given twice in the call (DuplicateFace, nothing added). Returns the normalized vectors."""
    from facezoo.gallery.errors import DuplicateFace

    vectors = normalized(vectors, dim, "embeddings")
    if len(faces) != len(vectors):
        raise GalleryError(f"{len(faces)} faces but {len(vectors)} embeddings")
    seen: dict[tuple[str, int], str] = {}
    for face in faces:
        key = (face.image_sha256, int(face.face))
        if key in seen:
            raise DuplicateFace(f"{face.source}: the same image as {seen[key]} (sha256 {face.image_sha256[:12]}…), "
                                f"given twice; nothing was added")
        seen[key] = face.source
    return vectors


def normalized(vectors: np.ndarray, dim: int, where: str) -> np.ndarray:
    """``vectors`` as contiguous float32 rows of length ``dim``, each of unit length."""
    array = np.asarray(vectors, dtype=np.float32)
    if array.ndim == 1:
        array = array[None]
    if array.ndim != 2 or array.shape[1] != dim:
        raise GalleryError(f"{where}: expected N×{dim} embeddings, got shape {tuple(np.shape(vectors))}")
    if not np.all(np.isfinite(array)):
        raise GalleryError(f"{where}: embeddings contain NaN or infinity")
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise GalleryError(f"{where}: an embedding is all zeros")
    return np.ascontiguousarray(array / norms, dtype=np.float32)


__all__ = ["FOLDER_STORE", "Face", "Hit", "STORES", "VectorStore", "checked_batch", "normalized", "store_class"]
