"""What a gallery records about the model whose embeddings it holds, and who may query it.

Cosines are only comparable between embeddings of one network with one set of weights. A gallery
therefore records the model's name and the sha256 of the original weights (the model card's
``source.files``), which every precision converted from them shares, and the checksum of the
model card it was created with. A query from another model or other weights is refused; another
precision of the same weights is allowed and noted (``precisions``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from facezoo.gallery.errors import GalleryError, ModelMismatch

FORMAT_VERSION = 1


@dataclass(frozen=True)
class ModelIdentity:
    """The model behind a set of embeddings: what a gallery compares before it accepts them."""

    model: str
    weights: dict[str, str]  # original file name -> sha256 (the model card's source files)
    precision: str
    dim: int
    card_sha256: str = ""

    @classmethod
    def of_artifact(cls, artifact, dim: int | None = None) -> "ModelIdentity":
        """From a converted artifact (facezoo.runtime.resolve.Artifact) and its model card; ``dim``
        where the card does not say it (a file without a card)."""
        from facezoo.downloader.verify import sha256_file

        card = artifact.card
        card_path = Path(artifact.path).parent / "model_card.json"
        weights = dict((card.source or {}).get("files") or {}) if card is not None else {}
        if card is not None and card.outputs and card.outputs[0].shape and card.outputs[0].shape[-1] > 0:
            dim = int(card.outputs[0].shape[-1])
        if dim is None:
            raise GalleryError(f"{artifact.path}: no model card says the embedding's length")
        return cls(model=artifact.model, weights=weights, precision=artifact.precision, dim=int(dim),
                   card_sha256=sha256_file(card_path) if card_path.is_file() else "")

    @classmethod
    def of_embedder(cls, embedder) -> "ModelIdentity":
        """From a loaded facezoo.runtime.Embedder."""
        return cls.of_artifact(embedder.artifact, int(embedder.model.output_specs[0].shape[-1]))


@dataclass
class GalleryInfo:
    """A gallery's own record: its model, dimension, decision threshold and store."""

    model: str
    weights: dict[str, str]
    dim: int
    precision: str  # the precision it was created with
    card_sha256: str
    precisions: list[str] = field(default_factory=list)  # every precision that has added faces
    threshold: float | None = None  # the gallery's own open-set threshold (cosine), if set
    store: str = "folder"  # "folder" or the store URI (milvus:...)
    created: str = ""
    format_version: int = FORMAT_VERSION

    @classmethod
    def for_model(cls, identity: ModelIdentity, threshold: float | None = None, store: str = "folder") -> "GalleryInfo":
        return cls(model=identity.model, weights=dict(identity.weights), dim=identity.dim,
                   precision=identity.precision, card_sha256=identity.card_sha256, precisions=[identity.precision],
                   threshold=threshold, store=store, created=datetime.now(timezone.utc).isoformat(timespec="seconds"))

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str, where: str) -> "GalleryInfo":
        try:
            data = json.loads(text)
            info = cls(**data)
        except (TypeError, ValueError) as exc:
            raise GalleryError(f"{where}: not a facezoo gallery record: {exc}") from None
        if info.format_version > FORMAT_VERSION:
            raise GalleryError(f"{where}: gallery format {info.format_version} is newer than this facezoo "
                               f"understands ({FORMAT_VERSION}); upgrade facezoo")
        return info

    def check(self, identity: ModelIdentity, name: str) -> str | None:
        """Refuse embeddings of another model or weights; return a note when only the precision differs."""
        if identity.model != self.model:
            raise ModelMismatch(f"gallery {name} holds embeddings of {self.model}; {identity.model} cannot query "
                                f"or join it (cosines between two models mean nothing)")
        if identity.weights and self.weights and identity.weights != self.weights:
            raise ModelMismatch(f"gallery {name} holds embeddings of {self.model} converted from other weights "
                                f"({_files(self.weights)}) than this model's ({_files(identity.weights)})")
        if identity.dim != self.dim:
            raise ModelMismatch(f"gallery {name} holds {self.dim}-d embeddings; these are {identity.dim}-d")
        if identity.precision != self.precision:
            return f"{identity.precision} embeddings against a gallery created at {self.precision} (same weights)"
        return None


def _files(weights: dict[str, str]) -> str:
    return ", ".join(f"{name} {digest[:12]}" for name, digest in sorted(weights.items()))


__all__ = ["FORMAT_VERSION", "GalleryInfo", "ModelIdentity"]
