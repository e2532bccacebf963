"""A gallery: enrolled identities and 1:N identification against them.

``Gallery.create(path, model)`` makes one for a model's embeddings; ``Gallery.open(path)`` opens
it. ``path`` is always a folder: the embedded store's own files, or, for a store URI given at
creation (``milvus:...``), a small ``gallery.json`` saying where the faces live, so that every
later command needs only the folder.

Identification is open set: each query's nearest identities by cosine (an identity with several
faces scores its best), and the best one is the answer only if its cosine reaches the threshold.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facezoo.gallery.errors import EmptyGallery, GalleryError, GalleryNotFound
from facezoo.gallery.info import GalleryInfo, ModelIdentity
from facezoo.gallery.store import FOLDER_STORE, Face, Hit, normalized, store_class

POINTER = "gallery.json"  # a gallery kept in another store: where
#: faces fetched per wanted identity: an identity with several faces takes several of the nearest
FACES_PER_IDENTITY = 4
THRESHOLD_SOURCES = ("--threshold", "gallery", "registry verification_threshold")


@dataclass(frozen=True)
class Candidate:
    identity: str
    cosine: float

    def as_dict(self) -> dict:
        return {"identity": self.identity, "cosine": round(self.cosine, 6)}


@dataclass(frozen=True)
class Identification:
    """One query's answer: the identity (None: nobody enrolled is close enough) and the top K."""

    identity: str | None
    cosine: float | None  # the best candidate's, whether or not it passed
    candidates: list[Candidate] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"identity": self.identity, "cosine": None if self.cosine is None else round(self.cosine, 6),
                "candidates": [c.as_dict() for c in self.candidates]}


def best_identities(hits: list[Hit], top_k: int) -> list[Candidate]:
    """Faces → identities: each identity scored by its best face, best first, at most ``top_k``."""
    best: dict[str, float] = {}
    for hit in hits:
        if hit.cosine > best.get(hit.identity, -np.inf):
            best[hit.identity] = hit.cosine
    ranked = sorted(best.items(), key=lambda item: (-item[1], item[0]))
    return [Candidate(name, float(cosine)) for name, cosine in ranked[:top_k]]


class Gallery:
    """Identities and their face embeddings, in a store, for one model."""

    def __init__(self, path: Path, store):
        self.path = Path(path)
        self.store = store

    # -------------------------------------------------------------------------- create / open --
    @classmethod
    def create(cls, path: str | Path, model: ModelIdentity, store: str | None = None,
               threshold: float | None = None) -> "Gallery":
        path = Path(path)
        if threshold is not None and not -1.0 <= threshold <= 1.0:
            raise GalleryError(f"--threshold {threshold}: a cosine threshold must lie in [-1, 1]")
        uri = store or FOLDER_STORE
        info = GalleryInfo.for_model(model, threshold=threshold, store=uri)
        kind = store_class(uri)
        if uri == FOLDER_STORE:
            return cls(path, kind.create(path, info))
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise GalleryError(f"{path}: already exists; a new gallery needs a new (or empty) folder")
        opened = kind.create(uri, path.name, info)
        path.mkdir(parents=True, exist_ok=True)
        partial = path / f".{POINTER}.partial"
        partial.write_text(json.dumps({"store": uri, "collection": path.name}, indent=1), encoding="utf-8")
        os.replace(partial, path / POINTER)
        return cls(path, opened)

    @classmethod
    def open(cls, path: str | Path, load_index: bool = True) -> "Gallery":
        path = Path(path)
        if not path.is_dir():
            raise GalleryNotFound(f"{path}: no such gallery (create one with `facezoo gallery create {path} "
                                  f"--model MODEL`)")
        pointer = path / POINTER
        if pointer.is_file():
            try:
                where = json.loads(pointer.read_text(encoding="utf-8"))
                uri, collection = str(where["store"]), str(where["collection"])
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise GalleryError(f"{pointer}: not a gallery pointer ({exc})") from None
            return cls(path, store_class(uri).open(uri, collection))
        return cls(path, store_class(FOLDER_STORE).open(path, load_snapshot=load_index))

    @property
    def info(self) -> GalleryInfo:
        return self.store.info

    @property
    def name(self) -> str:
        return str(self.path)

    def check_model(self, model: ModelIdentity | None) -> str | None:
        """Refuse another model's embeddings (ModelMismatch); a note when only the precision differs."""
        return None if model is None else self.info.check(model, self.name)

    # ------------------------------------------------------------------------------- writing --
    def add(self, faces: list[Face], vectors: np.ndarray, model: ModelIdentity | None = None) -> int:
        """Enroll faces (of one or more identities) in one transaction: all of them or none."""
        self.check_model(model)
        for face in faces:
            check_identity_name(face.identity)
        added = self.store.add(faces, normalized(vectors, self.info.dim, f"embeddings for {self.name}"))
        if model is not None and model.precision not in self.info.precisions:
            info = GalleryInfo(**{**self.info.__dict__, "precisions": [*self.info.precisions, model.precision]})
            self.store.save_info(info)
        return added

    def remove(self, identity: str) -> int:
        return self.store.remove(identity)

    # ------------------------------------------------------------------------------- reading --
    def identities(self) -> dict[str, int]:
        return self.store.identities()

    def count(self) -> int:
        return self.store.count()

    def threshold(self, given: float | None, registry: float | None) -> tuple[float, str]:
        """The open-set threshold and where it came from: --threshold, the gallery's, the registry's."""
        for value, source in zip((given, self.info.threshold, registry), THRESHOLD_SOURCES):
            if value is not None:
                return float(value), source
        raise GalleryError(f"no identification threshold for gallery {self.name} ({self.info.model}): give "
                           f"--threshold, set the gallery's own (gallery create --threshold), or use a model whose "
                           f"registry entry has verification_threshold")

    def identify(self, vectors: np.ndarray, threshold: float, top_k: int = 5,
                 model: ModelIdentity | None = None) -> list[Identification]:
        """Each query's identity (or None below ``threshold``) and its ``top_k`` nearest identities."""
        if top_k < 1:
            raise GalleryError(f"top_k {top_k}: expected at least 1")
        self.check_model(model)
        queries = normalized(vectors, self.info.dim, f"queries for {self.name}")
        found = self.store.search(queries, top_k * FACES_PER_IDENTITY)
        if not any(found) and self.count() == 0:  # counted only then: a count scans the faces
            raise EmptyGallery(f"gallery {self.name} is empty: add identities first "
                               f"(`facezoo gallery add {self.path} --identity NAME IMAGE...`)")
        answers = []
        for hits in found:
            candidates = best_identities(hits, top_k)
            best = candidates[0] if candidates else None
            passed = best is not None and best.cosine >= threshold
            answers.append(Identification(best.identity if passed else None, best.cosine if best else None,
                                          candidates))
        return answers

    def checkpoint(self) -> None:
        checkpoint = getattr(self.store, "checkpoint", None)
        if checkpoint is not None:
            checkpoint()

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> "Gallery":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def check_identity_name(name: str) -> str:
    """An identity name: printable, no slashes (it may become a URL path segment), at most 256 characters."""
    if not isinstance(name, str) or not name.strip() or len(name) > 256 or "/" in name or not name.isprintable():
        raise GalleryError(f"identity {name!r}: expected a printable name without '/', 1 to 256 characters")
    return name


__all__ = ["Candidate", "Gallery", "Identification", "best_identities", "check_identity_name"]
