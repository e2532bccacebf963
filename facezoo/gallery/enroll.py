"""From files to gallery faces: images (aligned crops, or photos through a detector), folders of
identities, and the Parquet that `facezoo embed-dataset` writes.

The embedder and, for photos, the face pipeline are passed in (a ``facezoo.runtime.Embedder``
and ``FacePipeline``): this module only decides which faces an image gives and what they are
called. Enrolling takes the largest face of each photo (the person the photo is of); identifying
takes every face.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facezoo.gallery.errors import DuplicateFace, GalleryError
from facezoo.gallery.gallery import check_identity_name
from facezoo.gallery.store import Face
from facezoo.images import IMAGE_SUFFIXES


@dataclass(frozen=True)
class QueryFace:
    """One face to identify: which image, which of its faces, and (with a detector) where."""

    path: str
    face: int
    found: object | None = None  # the detector's Face (box, score, landmarks), None for a crop


def file_sha256(path: Path) -> str:
    from facezoo.downloader.verify import sha256_file

    try:
        return sha256_file(Path(path))
    except OSError as exc:
        raise GalleryError(f"{path}: cannot read ({exc.strerror or exc})") from None


def _read(path: Path):
    from facezoo.images import read_image

    return read_image(path)


def enrollment_faces(identity: str, paths: list[Path], embedder, pipeline=None) -> tuple[list[Face], np.ndarray]:
    """``identity``'s faces from its images: each image's largest face (``pipeline``) or the image
    itself as an aligned crop. An image given twice is refused before anything is embedded."""
    check_identity_name(identity)
    if not paths:
        raise GalleryError(f"identity {identity!r}: no images given")
    shas: dict[str, Path] = {}
    for path in paths:
        sha = file_sha256(path)
        if sha in shas:
            raise DuplicateFace(f"{path}: the same image as {shas[sha]} (sha256 {sha[:12]}…), given twice; "
                                f"nothing was added")
        shas[sha] = Path(path)
    if pipeline is None:  # aligned crops, embedded in one batch
        faces = [Face(identity, sha, 0, str(path)) for sha, path in shas.items()]
        return faces, embedder.embed([_read(path) for path in shas.values()])
    faces, vectors = [], []
    for sha, path in shas.items():
        image = _read(path)
        found = pipeline.detector.detect(image)
        if not found:
            from facezoo.runtime.errors import NoFaceError

            raise NoFaceError(f"no face found in {path}")
        index = max(range(len(found)), key=lambda k: found[k].area)
        faces.append(Face(identity, sha, index, str(path)))
        vectors.append(pipeline.embed_faces(image, [found[index]])[0])
    return faces, np.stack(vectors)


def query_faces(paths: list[Path], embedder, pipeline=None) -> tuple[list[QueryFace], np.ndarray]:
    """Every face of every image to identify (a crop: the image), and their embeddings."""
    if pipeline is None:
        return [QueryFace(str(path), 0) for path in paths], embedder.embed([_read(path) for path in paths])
    records, vectors = [], []
    for path in paths:
        image = _read(path)
        found = pipeline.faces(image, str(path), all_faces=True)
        records.extend(QueryFace(str(path), k, face) for k, face in enumerate(found))
        vectors.append(pipeline.embed_faces(image, found))
    return records, np.concatenate(vectors)


def identity_folders(root: Path) -> dict[str, list[Path]]:
    """``root/<identity>/*.jpg|png``: each identity's images, names and files sorted."""
    root = Path(root)
    if not root.is_dir():
        raise GalleryError(f"--from-folder {root}: not a folder")
    found = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        images = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if images:
            found[check_identity_name(folder.name)] = images
    if not found:
        raise GalleryError(f"--from-folder {root}: no identity folders with images ({root}/<identity>/*.jpg|png)")
    return found


def parquet_faces(path: Path, images: Path | None = None) -> dict[str, tuple[list[Face], np.ndarray]]:
    """The rows of an `embed-dataset` Parquet (path, face, embedding, error), by identity: the parent
    folder of ``path``. Rows with an error are skipped. An image's sha256 is the file's under
    ``images`` (the folder embed-dataset read); without it, the sha256 of the row's path, so that
    the same row added twice is still refused."""
    import hashlib

    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path, columns=["path", "face", "embedding", "error"])
    except Exception as exc:  # pyarrow raises its own error types
        raise GalleryError(f"--from-parquet {path}: not an embed-dataset Parquet file ({exc})") from None
    by_identity: dict[str, tuple[list[Face], list[np.ndarray]]] = {}
    rows = zip(*(table.column(name).to_pylist() for name in ("path", "face", "embedding", "error")))
    for row_path, face, embedding, error in rows:
        if error or embedding is None:
            continue
        parent = Path(row_path).parent.name
        if not parent:
            raise GalleryError(f"--from-parquet {path}: row {row_path!r} has no parent folder to name its identity")
        if images is not None:
            sha = file_sha256(Path(images) / row_path)
        else:
            sha = hashlib.sha256(f"embed-dataset:{row_path}".encode()).hexdigest()
        faces, vectors = by_identity.setdefault(check_identity_name(parent), ([], []))
        faces.append(Face(parent, sha, int(face), f"{path}:{row_path}#{face}"))
        vectors.append(np.asarray(embedding, np.float32))
    if not by_identity:
        raise GalleryError(f"--from-parquet {path}: no rows with an embedding")
    return {name: (faces, np.stack(vectors)) for name, (faces, vectors) in by_identity.items()}


__all__ = ["QueryFace", "enrollment_faces", "file_sha256", "identity_folders", "parquet_faces",
           "query_faces"]
