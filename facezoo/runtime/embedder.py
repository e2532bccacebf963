"""The face pipeline: read, align (5 points), fit to the model's input, embed, compare."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from facezoo.errors import FacezooError
from facezoo.runtime.model import FaceModel, load
from facezoo.runtime.resolve import DEFAULT_CONVERTED_DIR, resolve_artifact

# The standard 5-point template for 112×112 crops (x, y): eyes, nose tip, mouth corners.
TEMPLATE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float32,
)


class ImageError(FacezooError):
    """An image cannot be read or its landmarks do not fit it."""


def template(height: int, width: int) -> np.ndarray:
    """The template for a crop size: 112×96 shifts x by −8; other sizes scale the 112 one."""
    if (height, width) == (112, 96):
        return TEMPLATE_112 - np.array([8.0, 0.0], np.float32)
    return TEMPLATE_112 * np.array([width / 112.0, height / 112.0], np.float32)


def read_image(path: str | Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ImageError(f"{path}: cannot read image (missing, or not a format OpenCV decodes)")
    return image


def align_face(image: np.ndarray, landmarks: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Warp `image` so its 5 landmarks land on the template of `size` (H, W)."""
    points = np.asarray(landmarks, np.float32).reshape(-1, 2)
    if points.shape != (5, 2):
        raise ImageError(f"expected 5 (x, y) landmarks, got shape {np.asarray(landmarks).shape}")
    matrix, _ = cv2.estimateAffinePartial2D(points, template(*size), method=cv2.LMEDS)
    if matrix is None:
        raise ImageError("landmarks are degenerate: no similarity transform maps them onto the template")
    return cv2.warpAffine(image, matrix, (size[1], size[0]), borderValue=0.0)


def fit_crop(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """An aligned crop brought to the model's size: 112×112 → 112×96 crops the sides, else resize."""
    height, width = size
    if image.shape[:2] == (height, width):
        return image
    if image.shape[:2] == (112, 112) and (height, width) == (112, 96):
        return image[:, 8:104]
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


def l2_normalize(embeddings: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
    return embeddings / np.maximum(norms, 1e-12)


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64)
    return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))


class Embedder:
    """Images in, L2-normalized embeddings out. Build once, call per batch.

    Works as a Ray Data callable class: `ds.map_batches(Embedder, fn_constructor_kwargs=
    {"model": "converted/arcface/FP32/arcface.xml"}, batch_format="numpy")` adds an
    "embedding" column from the "image" column (BGR uint8 aligned crops).
    """

    def __init__(
        self,
        model: str | Path | FaceModel,
        *,
        converted_dir: Path = DEFAULT_CONVERTED_DIR,
        format: str | None = None,
        precision: str | None = None,
        device: str = "CPU",
        backend: str | None = None,
        batch_size: int = 32,
    ):
        if isinstance(model, FaceModel):
            self.model = model
        else:
            artifact = resolve_artifact(str(model), converted_dir, format, precision)
            self.model = load(artifact.path, device=device, backend=backend)
        self.batch_size = batch_size
        _, channels, height, width = self.model.input_spec.shape
        self.size = (height, width)
        self.gray = channels == 1

    @property
    def artifact(self):
        return self.model.artifact

    def prepare(self, images: Sequence[np.ndarray] | np.ndarray, landmarks: np.ndarray | None = None) -> np.ndarray:
        """BGR uint8 images (any size) → N×H×W×C uint8 in the model's size and channels."""
        crops = []
        for index, image in enumerate(images):
            image = np.asarray(image)
            if image.ndim == 2:
                image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
                raise ImageError(f"image {index}: expected H×W×3 uint8 BGR, got {image.dtype} {image.shape}")
            crop = align_face(image, landmarks[index], self.size) if landmarks is not None else fit_crop(image, self.size)
            if self.gray:
                crop = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)[..., None]
            crops.append(crop)
        if not crops:
            raise ImageError("no images given")
        return np.stack(crops)

    def embed(self, images, landmarks: np.ndarray | None = None, normalize: bool = True) -> np.ndarray:
        crops = self.prepare(images, landmarks)
        batches = [crops[i : i + self.batch_size] for i in range(0, len(crops), self.batch_size)]
        embeddings = np.concatenate(self.model.infer_many(batches))
        return l2_normalize(embeddings) if normalize else embeddings

    def __call__(self, batch):
        if isinstance(batch, dict):
            return {**batch, "embedding": self.embed(batch["image"])}
        return self.embed(batch)

    def close(self) -> None:
        self.model.close()
