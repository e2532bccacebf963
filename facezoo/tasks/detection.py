"""Face detection: a photo in, faces out (box, score, five landmarks).

What this task declares for the rest of facezoo:

- parts: a detector is one or more nets (YuNet: one; MTCNN: P-, R- and O-Net), each converted to
  its own artifact per format and precision; the nets keep their raw outputs (the heads) under the
  original's names, and :mod:`facezoo.tasks.detectors` decodes them;
- validation, by :data:`DETECTION_GATES`: the raw heads of each net against the original's on the
  same probes (the recognition gate's cosine and relative error, batch against single runs), and
  the decoded faces of the whole detector on real and generated photos: the same faces above the
  score threshold (one within ``score_margin`` of it may differ), box IoU and landmark distance in
  pixels of the photo;
- use: :class:`FaceDetector` (BGR photo in, faces out); `facezoo serve` adds ``/detect``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Mapping, Sequence

import numpy as np

from facezoo import gates, images
from facezoo.tasks.base import Column, Comparison, DecisionRule, Outputs, Samples, Task, TensorDecl
from facezoo.tasks.detectors import ARCHITECTURES, DetectorArchitecture, Face, architecture_named
from facezoo.tasks.recognition import closeness, gate_reasons

#: IoU above which a converted detection and an original one are the same face (then judged by
#: the gate's min_iou); below it they are two faces.
SAME_FACE_IOU = 0.5
HEAD_METRICS = ("min_cosine", "mean_cosine", "max_abs_error", "max_relative_error")
FACE_METRICS = ("faces", "matched", "missing", "extra", "min_iou", "max_landmark_px", "max_score_diff")


@dataclass(frozen=True)
class DetectionGate:
    """What a converted detector must meet against the original, at one precision."""

    heads: gates.Gate  # each raw head tensor, as recognition's embeddings
    min_iou: float  # every matched face's box against the original's
    max_landmark_px: float  # every matched landmark, in pixels of the photo
    #: a candidate the original's last NMS merged into a face, scoring within this of it, is as
    #: good a match: FP16 resolves scores near 1 to 2^-11, so near-ties may fall the other way
    tie_margin: float
    score_margin: float = 0.02  # a face this close to the score threshold may be found by one only


DETECTION_GATES: dict[str, DetectionGate] = {
    "FP32": DetectionGate(gates.GATES["FP32"], min_iou=0.99, max_landmark_px=0.5, tie_margin=1e-5),
    "FP16": DetectionGate(gates.GATES["FP16"], min_iou=0.97, max_landmark_px=1.5, tie_margin=1e-3),
    "INT8": DetectionGate(gates.GATES["INT8"], min_iou=0.97, max_landmark_px=1.5, tie_margin=1e-2),
    "BF16": DetectionGate(gates.GATES["BF16"], min_iou=0.97, max_landmark_px=1.5, tie_margin=1e-2),
}


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    ax1, ay1, ax2, ay2 = a
    bx1, by1, bx2, by2 = b
    w = max(0.0, min(ax2, bx2) - max(ax1, bx1))
    h = max(0.0, min(ay2, by2) - max(ay1, by1))
    inter = w * h
    union = max(0.0, ax2 - ax1) * max(0.0, ay2 - ay1) + max(0.0, bx2 - bx1) * max(0.0, by2 - by1) - inter
    return inter / union if union > 0 else 0.0


@dataclass(frozen=True)
class FaceMatch:
    """One photo's faces found by a converted detector against the original's."""

    faces: int  # the original's
    matched: int
    missing: int  # the original's faces not found, clear of the threshold
    extra: int  # faces the original did not find, clear of the threshold
    ious: tuple[float, ...]
    landmark_px: tuple[float, ...]
    score_diffs: tuple[float, ...]
    ties: int = 0  # matched faces judged against a near-tied candidate the original merged into them


def _landmark_px(a: Face, b: Face) -> float:
    return float(np.max(np.linalg.norm(np.asarray(a.landmarks, np.float64) - np.asarray(b.landmarks, np.float64), axis=1)))


def _closest(original: Face, found: Face, tie_margin: float) -> tuple[Face, bool]:
    """The original face, or a near-tied candidate it merged, that ``found`` overlaps most."""
    tied = [alt for alt in original.alternatives if alt.score >= original.score - tie_margin]
    best = max([original, *tied], key=lambda face: box_iou(face.box, found.box))
    return best, best is not original


def match_faces(reference: Sequence[Face], found: Sequence[Face], threshold: float, margin: float,
                tie_margin: float = 0.0) -> FaceMatch:
    """Pair faces by IoU (greedy, best first); an unpaired face counts only if its score is at least
    ``margin`` above ``threshold`` (one near the threshold may fall on either side of it). Each pair
    is measured against the original face or a candidate its NMS merged into it scoring within
    ``tie_margin`` of it, whichever the found face overlaps most."""
    pairs = sorted(((box_iou(r.box, f.box), i, j) for i, r in enumerate(reference) for j, f in enumerate(found)),
                   reverse=True)
    used_r, used_f, matches = set(), set(), []
    for iou, i, j in pairs:
        if iou < SAME_FACE_IOU:
            break
        if i in used_r or j in used_f:
            continue
        used_r.add(i)
        used_f.add(j)
        original, tie = _closest(reference[i], found[j], tie_margin)
        matches.append((box_iou(original.box, found[j].box), original, found[j], tie))
    clear = threshold + margin
    missing = sum(1 for i, r in enumerate(reference) if i not in used_r and r.score >= clear)
    extra = sum(1 for j, f in enumerate(found) if j not in used_f and f.score >= clear)
    return FaceMatch(len(reference), len(matches), missing, extra, tuple(m[0] for m in matches),
                     tuple(_landmark_px(r, f) for _, r, f, _ in matches),
                     tuple(abs(r.score - f.score) for _, r, f, _ in matches), sum(m[3] for m in matches))


def compare_detections(reference: Sequence[Sequence[Face]], found: Sequence[Sequence[Face]], threshold: float,
                       gate: DetectionGate, names: Sequence[str] = ()) -> Comparison:
    """Every photo's faces against the original's, by ``gate``."""
    matches = [match_faces(r, f, threshold, gate.score_margin, gate.tie_margin) for r, f in zip(reference, found)]
    ious = [v for m in matches for v in m.ious]
    landmarks = [v for m in matches for v in m.landmark_px]
    scores = [v for m in matches for v in m.score_diffs]
    metrics = {
        "photos": len(matches),
        "faces": sum(m.faces for m in matches),
        "matched": sum(m.matched for m in matches),
        "missing": sum(m.missing for m in matches),
        "extra": sum(m.extra for m in matches),
        "min_iou": min(ious) if ious else float("nan"),
        "max_landmark_px": max(landmarks) if landmarks else float("nan"),
        "max_score_diff": max(scores) if scores else float("nan"),
        "ties": sum(m.ties for m in matches),
    }
    reasons = []
    for index, match in enumerate(matches):
        label = names[index] if index < len(names) else f"photo {index}"
        if match.missing or match.extra:
            reasons.append(f"{label}: {match.missing} of the original's {match.faces} faces not found, "
                           f"{match.extra} faces the original did not find (score ≥ {threshold + gate.score_margin:g})")
    if ious and not metrics["min_iou"] >= gate.min_iou:
        reasons.append(f"box IoU {metrics['min_iou']:.4f} < {gate.min_iou}")
    if landmarks and not metrics["max_landmark_px"] <= gate.max_landmark_px:
        reasons.append(f"landmark off by {metrics['max_landmark_px']:.3f} px > {gate.max_landmark_px}")
    return Comparison(metrics, _face_bounds(gate), reasons)


def _face_bounds(gate: DetectionGate) -> dict:
    return {"cosine_threshold": gate.heads.min_cosine, "relative_error_bound": gate.heads.max_relative_error,
            "iou_bound": gate.min_iou, "landmark_px_bound": gate.max_landmark_px, "score_margin": gate.score_margin,
            "tie_margin": gate.tie_margin}


class FaceDetector:
    """Photos in, faces out, on loaded nets. Build once, call per photo.

    ``models``: the detector's nets by part name, each anything with ``infer(batch) -> {name: array}``
    (a :class:`facezoo.runtime.FaceModel`); ``facezoo.runtime.Detector`` also loads them from files.
    ``settings`` override the entry's decoding settings (score_threshold, nms_threshold, top_k, min_face).
    """

    def __init__(self, models: Mapping[str, object], architecture: DetectorArchitecture, **settings):
        missing = [part for part in architecture.parts if part not in models]
        if missing:
            raise images.ImageError(f"{architecture.name} needs its nets {', '.join(architecture.parts)}; "
                                    f"missing {', '.join(missing)}")
        self.models = dict(models)
        self.architecture = architecture
        self.settings = {**architecture.defaults, **{k: v for k, v in settings.items() if v is not None}}

    @property
    def score_threshold(self) -> float:
        return float(self.settings[self.architecture.score_setting])

    def run(self, part: str, batch: np.ndarray) -> Outputs:
        return self.models[part].infer(np.ascontiguousarray(batch, np.float32))

    def detect(self, image: np.ndarray, **settings) -> list[Face]:
        """Faces in one BGR uint8 photo (any size), best score first."""
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise images.ImageError(f"expected an H×W×3 uint8 BGR photo, got {image.dtype} {image.shape}")
        return self.architecture.detect(image, self.run, **{**self.settings, **settings})

    def __call__(self, image: np.ndarray) -> list[Face]:
        return self.detect(image)

    def close(self) -> None:
        for model in self.models.values():
            close = getattr(model, "close", None)
            if close is not None:
                close()


class Detection(Task):
    name: ClassVar[str] = "face_detection"
    serving_routes: ClassVar[tuple[str, ...]] = ("detect",)
    convert_columns: ClassVar[tuple[Column, ...]] = (
        Column("file", "{file}"),
        Column("min cos", "{min_cosine:.7f}"),
        Column("max rel err", "{max_relative_error:.2e}"),
        Column("batch cos", "{batch_min_cosine:.7f}"),
        Column("faces", "{matched}/{faces}"),
        Column("min IoU", "{min_iou:.4f}"),
        Column("lmk px", "{max_landmark_px:.3f}"),
    )
    check_columns: ClassVar[tuple[Column, ...]] = (
        Column("file", "{file}"),
        Column("min cos", "{min_cosine:.7f}"),
        Column("max rel err", "{max_relative_error:.2e}"),
        Column("faces", "{matched}/{faces}"),
        Column("missing", "{missing}"),
        Column("extra", "{extra}"),
        Column("min IoU", "{min_iou:.4f}"),
        Column("lmk px", "{max_landmark_px:.3f}"),
        Column("Δscore", "{max_score_diff:.1e}"),
    )

    def check_entry(self, spec) -> list[tuple[str, str]]:
        if spec.architecture not in ARCHITECTURES:
            return [("architecture", f"no detector architecture {spec.architecture!r}; known: {', '.join(ARCHITECTURES)}")]
        wanted = ARCHITECTURES[spec.architecture].parts
        if tuple(p.name for p in spec.parts) != wanted:
            return [("parts", f"{spec.architecture} has the nets {', '.join(wanted)}: one part each, in that order")]
        return []

    def architecture(self, spec) -> DetectorArchitecture:
        return architecture_named(spec.architecture)

    def parts(self, spec) -> tuple[str, ...]:
        return tuple(p.name for p in spec.parts)

    def outputs(self, spec) -> tuple[TensorDecl, ...]:
        many = len(spec.parts) > 1
        return tuple(TensorDecl(head, (-1,), "float32", {"part": part.name} if many else {})
                     for part in spec.parts for head in part.outputs)

    def size_policy(self, spec) -> str:
        return self.architecture(spec).size_policy

    def part_outputs(self, spec, part: str) -> tuple[str, ...]:
        return tuple(spec.part(part).outputs)

    def probe_images(self, spec, part: str = "") -> np.ndarray:
        from facezoo.photos import probe_photos

        arch = self.architecture(spec)
        return probe_photos(arch.probe_sizes[part or arch.parts[0]])

    def settings(self, spec) -> dict:
        """The entry's decoding settings over the architecture's defaults."""
        arch = self.architecture(spec)
        given = {k: getattr(spec.detection, k) for k in ("score_threshold", "nms_threshold", "top_k", "min_face")}
        return {**arch.defaults, **{k: v for k, v in given.items() if v is not None}}

    def decode(self, spec, image: np.ndarray, run, **settings) -> list[Face]:
        chosen = {**self.settings(spec), **{k: v for k, v in settings.items() if v is not None}}
        return self.architecture(spec).detect(image, run, **chosen)

    def photos(self, spec, images_dir: Path | None = None, count: int = 8) -> list[tuple[str, np.ndarray]]:
        """The photos decoded detections are judged on: the user's first, then facezoo's."""
        from facezoo.photos import gate_photos

        chosen = []
        if images_dir is not None:
            files = images.list_images(images_dir)
            if not files:
                raise images.ImageError(f"{images_dir}: no .jpg/.jpeg/.png/.bmp images found")
            chosen = [(str(path), images.read_image(path)) for path in files[: max(count - 1, 1)]]
        return chosen + gate_photos()

    def samples(self, size: tuple[int, int], images_dir: Path | None = None, count: int = 8) -> Samples:
        """Generated and real photo probes at one net's size (the raw heads' check)."""
        from facezoo.photos import probe_photos

        probes = probe_photos(size)
        names = ["astronaut-face", "astronaut", "composite", "generated"]
        return Samples(probes, names, [f"photo:{n}" for n in names], real=2)

    def decision_rule(self, spec, reference: Outputs, samples: Samples, allowed_flips: int = 0,
                      from_registry: bool = True) -> DecisionRule:
        threshold = float(self.settings(spec)[self.architecture(spec).score_setting])
        return DecisionRule(threshold, "the entry's score threshold", float("nan"), allowed_flips)

    def gate(self, precision: str, overrides: dict | None = None) -> DetectionGate:
        try:
            gate = DETECTION_GATES[precision]
        except KeyError:
            raise KeyError(f"no detection gate for precision {precision!r}; known: {', '.join(DETECTION_GATES)}") from None
        cosine = (overrides or {}).get(precision)
        if cosine is None:
            return gate
        return DetectionGate(gates.Gate(cosine, gate.heads.max_relative_error), gate.min_iou, gate.max_landmark_px,
                             gate.tie_margin, gate.score_margin)

    def compare(self, reference: Outputs, outputs: Outputs, singles: Outputs, gate: DetectionGate,
                rule: DecisionRule | None) -> Comparison:
        """Each raw head against the original's (the worst head is reported)."""
        rows = len(next(iter(reference.values())))
        worst = {"min_cosine": 1.0, "mean_cosine": 1.0, "max_abs_error": 0.0, "max_relative_error": 0.0}
        batch_worst = dict(worst)
        reasons = []
        for name, expected in reference.items():
            if name not in outputs:
                return self.unmeasured(gate, rule, rows, f"no output named {name!r} (the artifact has "
                                                        f"{', '.join(outputs) or 'none'})")
            got = np.asarray(outputs[name], np.float32)
            if got.size != np.asarray(expected).size:
                return self.unmeasured(gate, rule, rows, f"{name}: shape {got.shape} != original {np.shape(expected)}")
            if not np.all(np.isfinite(got)):
                return self.unmeasured(gate, rule, rows, f"{name}: non-finite outputs")
            measured = closeness(expected, got.reshape(np.shape(expected)))
            reasons += gate_reasons(measured, gate.heads, against=f"on {name}")
            _keep_worst(worst, measured)
            single = singles.get(name)
            if single is not None:
                count = len(single)
                batch = closeness(np.asarray(single, np.float32).reshape(count, -1), got.reshape(len(got), -1)[:count])
                reasons += [r.replace(f"on {name}", f"on {name} between a batch and its single runs")
                            for r in gate_reasons(batch, gate.heads, against=f"on {name}")]
                _keep_worst(batch_worst, batch)
        metrics = {**worst, "batch_min_cosine": batch_worst["min_cosine"],
                   "batch_relative_diff": batch_worst["max_relative_error"]}
        return Comparison(metrics, _face_bounds(gate), reasons)

    def compare_faces(self, reference, found, gate: DetectionGate, rule: DecisionRule | None,
                      names: Sequence[str] = ()) -> Comparison:
        threshold = rule.threshold if rule is not None else 0.0
        return compare_detections(reference, found, threshold, gate, names)

    def unmeasured(self, gate: DetectionGate, rule: DecisionRule | None, samples: int, reason: str = "") -> Comparison:
        nan = float("nan")
        metrics = {key: nan for key in (*HEAD_METRICS, "batch_min_cosine", "batch_relative_diff")}
        return Comparison(metrics, _face_bounds(gate), [reason] if reason else ["not measured"])

    def rank(self, metrics: dict, passed: bool) -> tuple:
        """Passing first, then fewer faces lost or added, then the higher IoU and head cosine."""
        def finite(key, default):
            value = metrics.get(key, default)
            return value if isinstance(value, (int, float)) and math.isfinite(value) else default

        lost = finite("missing", 0) + finite("extra", 0)
        return (passed, -lost, finite("min_iou", -1.0), finite("min_cosine", -2.0))

    def wrapper(self, model, **options) -> FaceDetector:
        """``model``: the nets by part name, or one net (a one-net detector); options: the
        ``architecture`` (a name, else the model's card says) and decoding settings."""
        architecture = options.pop("architecture", None)
        models = model if isinstance(model, Mapping) else None
        if architecture is None:
            card = getattr(getattr(next(iter(models.values())) if models else model, "artifact", None), "card", None)
            architecture = card.architecture if card is not None else None
        if architecture is None:
            raise images.ImageError("a detector needs its architecture (the model card's, or architecture=...)")
        arch = architecture_named(architecture) if isinstance(architecture, str) else architecture
        if models is None:
            models = {arch.parts[0]: model}
        return FaceDetector(models, arch, **options)


def _keep_worst(worst: dict, measured: dict) -> None:
    worst["min_cosine"] = min(worst["min_cosine"], measured["min_cosine"])
    worst["mean_cosine"] = min(worst["mean_cosine"], measured["mean_cosine"])
    worst["max_abs_error"] = max(worst["max_abs_error"], measured["max_abs_error"])
    worst["max_relative_error"] = max(worst["max_relative_error"], measured["max_relative_error"])


TASK = Detection()

__all__ = ["DETECTION_GATES", "Detection", "DetectionGate", "FaceDetector", "FaceMatch", "SAME_FACE_IOU", "TASK",
           "box_iou", "compare_detections", "match_faces"]
