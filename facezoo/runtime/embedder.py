"""`Embedder`: the face-recognition task's wrapper, built from a file or zoo name as well as a
loaded model, and `read_image`."""

from __future__ import annotations

from pathlib import Path

from facezoo.images import read_image
from facezoo.runtime.model import FaceModel, load
from facezoo.runtime.resolve import DEFAULT_CONVERTED_DIR, resolve_artifact
from facezoo.tasks.recognition import FaceEmbedder


class Embedder(FaceEmbedder):
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
        if not isinstance(model, FaceModel):
            artifact = resolve_artifact(str(model), converted_dir, format, precision)
            model = load(artifact.path, device=device, backend=backend, threads=threads,
                         performance_hint=performance_hint)
        super().__init__(model, batch_size=batch_size, resize=resize)


__all__ = ["Embedder", "read_image"]
