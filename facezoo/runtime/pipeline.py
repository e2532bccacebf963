"""From photo to embeddings: detect, pick the faces, align each by its five landmarks, embed.

The ArcFace template's landmark order is every detector's (facezoo.tasks.detectors), so a
detector's landmarks go straight into the embedder's alignment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from facezoo.runtime.errors import NoFaceError
from facezoo.tasks.detectors import Face


def largest(faces: Sequence[Face]) -> Face:
    """The face with the largest box (the person a photo is of, usually)."""
    return max(faces, key=lambda face: face.area)


@dataclass(frozen=True)
class PhotoFaces:
    """The faces used from one photo, and their embeddings (row i: faces[i])."""

    label: str
    width: int
    height: int
    faces: list[Face]
    embeddings: np.ndarray = field(repr=False)


class FacePipeline:
    """Photos in, embeddings of their faces out. ``detector``: a FaceDetector (facezoo.runtime.Detector);
    ``embedder``: a FaceEmbedder (facezoo.runtime.Embedder)."""

    def __init__(self, detector, embedder):
        self.detector = detector
        self.embedder = embedder

    def faces(self, image: np.ndarray, label: str = "image", all_faces: bool = False) -> list[Face]:
        """The detector's faces (all, best first), or the largest; NoFaceError naming ``label`` if none."""
        found = self.detector.detect(image)
        if not found:
            raise NoFaceError(f"no face found in {label}")
        return list(found) if all_faces else [largest(found)]

    def embed_faces(self, image: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
        """L2-normalized embeddings of ``faces`` of one photo, each aligned by its landmarks."""
        landmarks = np.stack([np.asarray(face.landmarks, np.float32) for face in faces])
        return self.embedder.embed([image] * len(faces), landmarks)

    def photo(self, image: np.ndarray, label: str = "image", all_faces: bool = False) -> PhotoFaces:
        faces = self.faces(image, label, all_faces)
        return PhotoFaces(label, int(image.shape[1]), int(image.shape[0]), faces, self.embed_faces(image, faces))

    def __call__(self, images: Sequence[np.ndarray], labels: Sequence[str] | None = None,
                 all_faces: bool = False) -> list[PhotoFaces]:
        labels = list(labels) if labels is not None else [f"image {i}" for i in range(len(images))]
        return [self.photo(image, label, all_faces) for image, label in zip(images, labels)]

    def close(self) -> None:
        self.detector.close()
        self.embedder.close()


__all__ = ["FacePipeline", "PhotoFaces", "largest"]
