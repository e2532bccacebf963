"""Face recognition: an aligned face crop in, one embedding out.

What this task declares for the rest of facezoo:

- outputs: one, ``converted.output_name`` (default ``embedding``), ``[-1, output.dim]`` float32;
- validation: on the same faces as the original model, each precision's gate
  (:mod:`facezoo.gates`: min cosine, max relative error), a batch against its rows run one at a
  time within the same bounds, and no same/different decision over the pairs of faces flipped at
  the decision threshold (the registry's ``verification_threshold``, else the cut that best
  separates the original's same- from different-identity pairs);
- probes: generated faces, one of them colour-asymmetric so that a missing RGB/BGR swap cannot
  hide; the checker and the quantization gate add pairs of generated identities (and real images
  when given) so that same-identity pairs exist;
- use: :class:`FaceEmbedder` (BGR crops or photos with landmarks in, L2-normalized embeddings
  out); `facezoo serve` adds ``/embed`` and ``/verify``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import ClassVar, Sequence

import numpy as np

from facezoo import gates, images
from facezoo.numerics import best_separation, cosine_rows, flipped_pairs, l2_normalize, pair_cosines, pair_indices
from facezoo.preprocessing import ImageError, align_face, fit_crop
from facezoo.tasks.base import Column, Comparison, DecisionRule, Outputs, Samples, Task, TensorDecl

PROBE_COUNT = 4  # faces every artifact is validated on while converting (faces.probe_images)
DEFAULT_SAMPLES = 8  # faces of `facezoo check`
SYNTHETIC_IDENTITY = 3000  # generated identities of the check: 3000, 3001, ... (two variations each)
THRESHOLD_FROM_REGISTRY = "registry verification_threshold"
THRESHOLD_FROM_SEPARATION = "best separation of the original's same/different pairs (midpoint of the widest gap)"
#: The metrics of an artifact no one could run: every number unmeasured.
CLOSENESS = ("min_cosine", "mean_cosine", "max_abs_error", "max_relative_error")


def closeness(reference: np.ndarray, outputs: np.ndarray) -> dict[str, float]:
    """How close ``outputs`` are to ``reference``, row by row: min/mean cosine, max absolute
    error, and max relative error (max |a - b| over max |a|: cosine alone is blind to a small
    systematic slip that changes every row the same way)."""
    reference = np.asarray(reference, np.float64).reshape(len(reference), -1)
    outputs = np.asarray(outputs, np.float64).reshape(len(outputs), -1)
    cosines = cosine_rows(reference, outputs)
    abs_error = float(np.max(np.abs(reference - outputs)))
    scale = float(np.max(np.abs(reference))) or 1.0
    return {"min_cosine": float(cosines.min()), "mean_cosine": float(cosines.mean()),
            "max_abs_error": abs_error, "max_relative_error": abs_error / scale}


def gate_reasons(measured: dict[str, float], gate: gates.Gate, against: str = "") -> list[str]:
    """Why ``measured`` misses ``gate`` (empty: it meets it)."""
    suffix = f" {against}" if against else ""
    reasons = []
    if not measured["min_cosine"] >= gate.min_cosine:  # also catches NaN
        reasons.append(f"min cosine {measured['min_cosine']:.7f} < {gate.min_cosine}{suffix}")
    bound = gate.max_relative_error
    if bound is not None and not measured["max_relative_error"] <= bound:
        reasons.append(f"max relative error {measured['max_relative_error']:.2e} > {bound:g}{suffix}")
    return reasons


def sample_faces(size: tuple[int, int], images_dir: Path | None = None, samples: int = DEFAULT_SAMPLES) -> Samples:
    """Up to samples-1 real images (sorted, so one person's images stay together), then generated faces.

    The generated part always holds the colour-asymmetric face, then pairs of variations 0 and 1 of
    identities 3000, 3001, ... so that same-identity pairs exist. Real images take their identity
    from their sub-folder, or from the file name without a trailing number (LFW: Name_0001.jpg).
    """
    from facezoo import faces  # OpenCV draws them: loaded when faces are drawn, not with the registry

    if samples < 2:
        raise ImageError("--samples must be at least 2 (the check compares pairs of faces)")
    crops, identities, sources = [], [], []
    if images_dir is not None:
        files = images.list_images(images_dir)
        if not files:
            raise ImageError(f"{images_dir}: no .jpg/.jpeg/.png/.bmp images found")
        for path in files[: samples - 1]:
            crops.append(fit_crop(images.read_image(path), size, resize=True))  # any real pixels serve here
            identities.append(f"real:{images.identity_of(path, Path(images_dir))}")
            sources.append(str(path))
    real = len(crops)
    crops.append(faces.colour_asymmetric_face(size))
    identities.append("synthetic:colour-asymmetric")
    sources.append("synthetic:colour-asymmetric")
    k = 0
    while len(crops) < samples:
        identity, variation = SYNTHETIC_IDENTITY + k // 2, k % 2
        crops.append(faces.synthetic_face(identity, variation, size))
        identities.append(f"synthetic:{identity}")
        sources.append(f"synthetic:{identity}/{variation}")
        k += 1
    return Samples(np.stack(crops).astype(np.uint8), identities, sources, real)


def separating_threshold(embeddings: np.ndarray, identities: Sequence) -> tuple[float, float]:
    """The cosine that best separates same- from different-identity pairs, and how well it does."""
    pairs = pair_indices(len(embeddings))
    labels = np.asarray(list(identities), dtype=object)
    return best_separation(pair_cosines(embeddings, pairs), labels[pairs[:, 0]] == labels[pairs[:, 1]])


class FaceEmbedder:
    """Images in, L2-normalized embeddings out, on a loaded model. Build once, call per batch.

    Without landmarks, only aligned crops of the model's input size are accepted (112x112 also
    for a 112x96 model): anything else raises ImageError, unless ``resize=True`` asks for a
    plain resize on purpose. With landmarks (N x 5 x 2), each face is aligned first.
    ``model`` is anything with ``input_spec``, ``output_specs`` and ``infer_many`` (a
    :class:`facezoo.runtime.FaceModel`); ``facezoo.runtime.Embedder`` also loads one from a file.
    """

    def __init__(self, model, *, batch_size: int = 32, resize: bool = False):
        self.model = model
        self.batch_size = batch_size
        self.resize = resize
        self.output = model.output_specs[0].name  # the embedding: the task's one output
        _, channels, height, width = model.input_spec.shape
        self.size = (height, width)
        self.gray = channels == 1

    @property
    def artifact(self):
        return self.model.artifact

    def prepare(self, pictures: Sequence[np.ndarray] | np.ndarray, landmarks: np.ndarray | None = None) -> np.ndarray:
        """BGR uint8 images (any size) → N×H×W×C uint8 in the model's size and channels."""
        import cv2

        if landmarks is not None and len(landmarks) != len(pictures):
            raise ImageError(f"{len(pictures)} images but landmarks for {len(landmarks)}")
        crops = []
        for index, image in enumerate(pictures):
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

    def pick(self, outputs: Outputs) -> np.ndarray:
        """The embedding among a model's named outputs."""
        return outputs[self.output]

    def embed(self, pictures, landmarks: np.ndarray | None = None, normalize: bool = True) -> np.ndarray:
        crops = self.prepare(pictures, landmarks)
        batches = [crops[i : i + self.batch_size] for i in range(0, len(crops), self.batch_size)]
        embeddings = np.concatenate([self.pick(outputs) for outputs in self.model.infer_many(batches)])
        return l2_normalize(embeddings) if normalize else embeddings

    def __call__(self, batch):
        if isinstance(batch, dict):
            return {**batch, "embedding": self.embed(batch["image"])}
        return self.embed(batch)

    def close(self) -> None:
        self.model.close()


class Recognition(Task):
    name: ClassVar[str] = "face_recognition"
    serving_routes: ClassVar[tuple[str, ...]] = ("embed", "verify")
    convert_columns: ClassVar[tuple[Column, ...]] = (
        Column("min cos", "{min_cosine:.7f}"),
        Column("mean cos", "{mean_cosine:.7f}"),
        Column("max rel err", "{max_relative_error:.2e}"),
        Column("batch cos", "{batch_min_cosine:.7f}"),
        Column("batch Δ", "{batch_relative_diff:.1e}"),
    )
    check_columns: ClassVar[tuple[Column, ...]] = (
        Column("min cos", "{min_cosine:.7f}"),
        Column("mean cos", "{mean_cosine:.7f}"),
        Column("max abs err", "{max_abs_error:.2e}"),
        Column("max rel err", "{max_relative_error:.2e}"),
        Column("agree", "{agreement:.1%}"),
        Column("flips", "{flipped}/{pairs}"),
        Column("cos ≥", "{cosine_threshold:g}"),
    )

    def check_entry(self, spec) -> list[tuple[str, str]]:
        problems = []
        if spec.output.dim <= 0:
            problems.append(("output.dim", "required for face recognition: the embedding's length"))
        if spec.parts:
            problems.append(("parts", "a face recognition model is one graph"))
        return problems

    def outputs(self, spec) -> tuple[TensorDecl, ...]:
        return (TensorDecl(spec.converted.output_name, (-1, spec.output.dim), "float32",
                           {"l2_normalized": spec.output.l2_normalized}),)

    def probe_images(self, spec, part: str = "") -> np.ndarray:
        from facezoo.faces import probe_images

        return probe_images(PROBE_COUNT, (spec.input.height, spec.input.width))

    def samples(self, size: tuple[int, int], images_dir: Path | None = None, count: int = DEFAULT_SAMPLES) -> Samples:
        return sample_faces(size, images_dir, count)

    def decision_rule(self, spec, reference: Outputs, samples: Samples, allowed_flips: int = 0,
                      from_registry: bool = True) -> DecisionRule:
        embeddings = _only(reference)
        if from_registry and spec.verification_threshold is not None:
            pairs = pair_indices(len(embeddings))
            labels = np.asarray(samples.identities, dtype=object)
            same = labels[pairs[:, 0]] == labels[pairs[:, 1]]
            threshold = float(spec.verification_threshold)
            accuracy = float(np.mean((pair_cosines(embeddings, pairs) >= threshold) == same))
            return DecisionRule(threshold, THRESHOLD_FROM_REGISTRY, accuracy, allowed_flips)
        threshold, accuracy = separating_threshold(embeddings, samples.identities)
        return DecisionRule(float(threshold), THRESHOLD_FROM_SEPARATION, float(accuracy), allowed_flips)

    def gate(self, precision: str, overrides: dict | None = None) -> gates.Gate:
        return gates.gate_for(precision, (overrides or {}).get(precision))

    def compare(self, reference: Outputs, outputs: Outputs, singles: Outputs, gate: gates.Gate,
                rule: DecisionRule | None) -> Comparison:
        expected = _only(reference)
        name = next(iter(reference))
        if name not in outputs:
            return self.unmeasured(gate, rule, len(expected),
                                   f"no output named {name!r} (the artifact has {', '.join(outputs) or 'none'})")
        got = np.asarray(outputs[name], np.float32)
        got = got.reshape(len(got), -1) if got.ndim > 2 else got
        if got.shape != expected.shape:
            return self.unmeasured(gate, rule, len(expected), f"output shape {got.shape} != original {expected.shape}")
        if not np.all(np.isfinite(got)):
            return self.unmeasured(gate, rule, len(expected), "non-finite outputs")
        measured = closeness(expected, got)
        reasons = gate_reasons(measured, gate)
        batch = _batch_closeness(got, singles.get(name))
        batch_reasons = gate_reasons(batch, gate, against="between a batch and its single runs")
        if batch_reasons:
            reasons.append(f"batch of {len(got)} differs from single runs: " + ", ".join(
                r.replace(" between a batch and its single runs", "") for r in batch_reasons))
        metrics = {**measured, "batch_min_cosine": batch["min_cosine"], "batch_relative_diff": batch["max_relative_error"]}
        if rule is not None:
            decided = len(expected) if rule.decided_samples is None else min(rule.decided_samples, len(expected))
            pairs = pair_indices(decided)
            flips = flipped_pairs(expected[:decided], got[:decided], rule.threshold)
            metrics.update(pairs=len(pairs), agreement=float(1.0 - len(flips) / max(len(pairs), 1)),
                           flipped=int(len(flips)), flipped_pairs=[(int(pairs[k, 0]), int(pairs[k, 1])) for k in flips])
            if len(flips) > rule.allowed_flips:
                reasons.append(f"{len(flips)} of {len(pairs)} same/different decisions flipped at cosine "
                               f"{rule.threshold:.4f} (allowed {rule.allowed_flips})")
        return Comparison(metrics, _bounds(gate, rule), reasons)

    def unmeasured(self, gate: gates.Gate, rule: DecisionRule | None, samples: int, reason: str = "") -> Comparison:
        nan = float("nan")
        metrics = {key: nan for key in (*CLOSENESS, "batch_min_cosine", "batch_relative_diff")}
        if rule is not None:
            pairs = len(pair_indices(samples if rule.decided_samples is None else min(rule.decided_samples, samples)))
            metrics.update(pairs=pairs, agreement=nan, flipped=pairs, flipped_pairs=[])
        return Comparison(metrics, _bounds(gate, rule), [reason] if reason else ["not measured"])

    def rank(self, metrics: dict, passed: bool) -> tuple:
        """Passing first, then fewer flipped decisions, then the higher min cosine (unmeasured last)."""
        cosine = metrics.get("min_cosine", float("nan"))
        return (passed, -int(metrics.get("flipped", 0)), cosine if math.isfinite(cosine) else -2.0)

    def wrapper(self, model, **options) -> FaceEmbedder:
        return FaceEmbedder(model, **options)


def _only(outputs: Outputs) -> np.ndarray:
    (embeddings,) = outputs.values()
    return np.asarray(embeddings, np.float32).reshape(len(embeddings), -1)


def _batch_closeness(batch: np.ndarray, singles: np.ndarray | None) -> dict[str, float]:
    """A batch's first rows against the same inputs run one at a time."""
    if singles is None:
        return dict.fromkeys(CLOSENESS, float("nan"))
    singles = np.asarray(singles, np.float32)
    singles = singles.reshape(len(singles), -1) if singles.ndim > 2 else singles
    if singles.shape[1:] != batch.shape[1:] or len(batch) < len(singles):
        return dict.fromkeys(CLOSENESS, float("nan"))
    return closeness(singles, batch[: len(singles)])


def _bounds(gate: gates.Gate, rule: DecisionRule | None) -> dict:
    bounds = {"cosine_threshold": gate.min_cosine, "relative_error_bound": gate.max_relative_error}
    if rule is not None:
        bounds["allowed_flips"] = rule.allowed_flips
    return bounds


TASK = Recognition()

__all__ = ["DEFAULT_SAMPLES", "FaceEmbedder", "PROBE_COUNT", "Recognition", "SYNTHETIC_IDENTITY", "TASK",
           "THRESHOLD_FROM_REGISTRY", "THRESHOLD_FROM_SEPARATION", "closeness", "gate_reasons", "sample_faces",
           "separating_threshold"]
