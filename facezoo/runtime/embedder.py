"""The face pipeline: read, align (5 points), fit to the model's input, embed, compare."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from facezoo.numerics import l2_normalize
from facezoo.preprocessing import ImageError, align_face, fit_crop
from facezoo.runtime.model import FaceModel, load
from facezoo.runtime.resolve import DEFAULT_CONVERTED_DIR, resolve_artifact


def read_image(path: str | Path) -> np.ndarray:
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ImageError(f"{path}: cannot read image (missing, or not a format OpenCV decodes)")
    return image


class Embedder:
    """Images in, L2-normalized embeddings out. Build once, call per batch.

    Without landmarks, only aligned crops of the model's input size are accepted (112x112 also
    for a 112x96 model): anything else raises ImageError, unless ``resize=True`` asks for a
    plain resize on purpose. With landmarks (N x 5 x 2), each face is aligned first.

    Works as a Ray Data callable class: `ds.map_batches(Embedder, fn_constructor_kwargs=
    {"model": "converted/arcface/FP32/arcface.xml"}, batch_format="numpy",
    compute=ray.data.ActorPoolStrategy(size=2))` adds an "embedding" column from the "image"
    column (BGR uint8 aligned crops); `facezoo embed-dataset` is built on it.
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
        resize: bool = False,
        threads: int | None = None,
        performance_hint: str | None = None,
    ):
        if isinstance(model, FaceModel):
            self.model = model
        else:
            artifact = resolve_artifact(str(model), converted_dir, format, precision)
            self.model = load(artifact.path, device=device, backend=backend, threads=threads,
                              performance_hint=performance_hint)
        self.batch_size = batch_size
        self.resize = resize
        _, channels, height, width = self.model.input_spec.shape
        self.size = (height, width)
        self.gray = channels == 1

    @property
    def artifact(self):
        return self.model.artifact

    def prepare(self, images: Sequence[np.ndarray] | np.ndarray, landmarks: np.ndarray | None = None) -> np.ndarray:
        """BGR uint8 images (any size) → N×H×W×C uint8 in the model's size and channels."""
        import cv2

        if landmarks is not None and len(landmarks) != len(images):
            raise ImageError(f"{len(images)} images but landmarks for {len(landmarks)}")
        crops = []
        for index, image in enumerate(images):
            image = np.asarray(image)
            if image.ndim == 2:
                image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
                raise ImageError(f"image {index}: expected H×W×3 uint8 BGR, got {image.dtype} {image.shape}")
            if landmarks is not None:
                crop = align_face(image, landmarks[index], self.size)
            else:
                crop = fit_crop(image, self.size, resize=self.resize, label=f"image {index}")
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
