"""Calibration and tuning faces, in the converted contract, with a record of where they came from.

Quantization ranges are measured on calibration faces; accuracy control and the sensitivity
ranking tune on a second set of faces; the gate judges on a third. None may share faces, or a
bad INT8 model could pass by having seen its judges. The synthetic identity ranges:

    1000+ (and 7)  the converter's probes       (facezoo.faces.PROBE_IDENTITY, COLOUR_ASYMMETRIC_IDENTITY)
    3000+          `facezoo check`'s faces      (facezoo.tasks.recognition.SYNTHETIC_IDENTITY)
    20000+         calibration                  (CALIBRATION_IDENTITY, at most MAX_CALIBRATION_SIZE)
    30000+         tuning                       (TUNING_IDENTITY, at most MAX_TUNING_SIZE)

Generated faces alone overrate INT8 on real ones (flat shading, no skin texture, hair or lens blur),
so every default set also holds crops of the one real face facezoo ships (the astronaut photo,
:func:`facezoo.photos.real_face_crops`), each set drawn from its own seed (REAL_CROP_SEEDS), so that
no set shares a crop with another.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from facezoo.quantization.errors import QuantizationError

CALIBRATION_IDENTITY = 20000
MAX_CALIBRATION_SIZE = 10000
TUNING_IDENTITY = 30000
MAX_TUNING_SIZE = 1000
DEFAULT_CALIBRATION_SIZE = 300  # NNCF's own default subset_size
DEFAULT_TUNING_SIZE = 16
CALIBRATION_VARIATIONS = 3  # synthetic calibration faces cycle through poses/lighting 0, 1, 2
REAL_CROP_SHARE = 0.2  # of a default calibration or tuning set: crops of the real photo
#: the seed of each default set's real-photo crops (the gate's are facezoo.quantization.build's)
REAL_CROP_SEEDS = {"calibration": 20, "tuning": 30, "gate": 40}
#: what the card and the CLI say of a default set, and what they recommend
DEFAULT_SET_NOTE = ("judged on generated faces (and crops of one real photo): give --calibration-images, aligned "
                    "crops of the faces you deploy on, for ranges and a verdict that stand for them")


def synthetic_ranges() -> dict[str, tuple[int, int]]:
    """Every synthetic identity range facezoo uses, [first, last], by purpose."""
    from facezoo.faces import COLOUR_ASYMMETRIC_IDENTITY, PROBE_IDENTITY
    from facezoo.tasks.recognition import SYNTHETIC_IDENTITY

    return {
        "probes": (PROBE_IDENTITY, PROBE_IDENTITY + 999),
        "colour-asymmetric probe": (COLOUR_ASYMMETRIC_IDENTITY, COLOUR_ASYMMETRIC_IDENTITY),
        "check": (SYNTHETIC_IDENTITY, SYNTHETIC_IDENTITY + 999),
        "calibration": (CALIBRATION_IDENTITY, CALIBRATION_IDENTITY + MAX_CALIBRATION_SIZE - 1),
        "tuning": (TUNING_IDENTITY, TUNING_IDENTITY + MAX_TUNING_SIZE - 1),
    }


@dataclass(frozen=True)
class CalibrationSet:
    """Calibration inputs (N×C×H×W float32, raw BGR or GRAY 0..255) and their provenance."""

    inputs: np.ndarray = field(repr=False)
    kind: str  # "user" or "synthetic"
    description: str
    folder: str | None = None
    files: tuple[str, ...] = ()
    identities: tuple[int, int] | None = None

    @property
    def count(self) -> int:
        return len(self.inputs)

    def record(self) -> dict:
        """What a model card says about the calibration."""
        record = {"kind": self.kind, "count": self.count, "description": self.description}
        if self.folder:
            record["folder"] = self.folder
        if self.identities:
            record["identities"] = list(self.identities)
        return record


@dataclass(frozen=True)
class TuningSet:
    """Held-out faces with the ORIGINAL model's outputs: what accuracy control and ranking aim at."""

    inputs: np.ndarray = field(repr=False)  # N×C×H×W float32, converted contract
    reference: np.ndarray = field(repr=False)  # N×D, the original network's outputs
    description: str

    def __post_init__(self) -> None:
        if len(self.inputs) != len(self.reference) or len(self.inputs) < 2:
            raise QuantizationError(
                f"tuning set: {len(self.inputs)} inputs and {len(self.reference)} reference outputs; "
                "need the same number, at least 2"
            )


def calibration_inputs(
    size: tuple[int, int],
    channel_order: str,
    count: int = DEFAULT_CALIBRATION_SIZE,
    images_dir: str | Path | None = None,
) -> CalibrationSet:
    """``count`` calibration faces for a model of ``size`` (H, W) in its converted ``channel_order``.

    With ``images_dir``: the first ``count`` images (sorted) of the user's folder, read with
    OpenCV; each must already be an aligned crop of the model's size (a raw photo is refused with
    an ImageError naming the file, as everywhere else in facezoo). Without: synthetic faces of
    identities CALIBRATION_IDENTITY.., disjoint from every face used to validate.
    """
    from facezoo.faces import face_batch
    from facezoo.photos import real_face_crops
    from facezoo.preprocessing import to_model_input

    if not isinstance(count, int) or count < 1:
        raise QuantizationError(f"--calibration-size {count!r}: must be a positive number of images")
    if images_dir is None:
        if count > MAX_CALIBRATION_SIZE:
            raise QuantizationError(
                f"--calibration-size {count}: at most {MAX_CALIBRATION_SIZE} synthetic calibration faces; "
                "give --calibration-images for more"
            )
        real = real_share(count)
        identities = np.arange(CALIBRATION_IDENTITY, CALIBRATION_IDENTITY + count - real)
        images = face_batch(identities, identities % CALIBRATION_VARIATIONS, size)
        images = np.concatenate([images, real_face_crops(size, real, REAL_CROP_SEEDS["calibration"])])
        last = CALIBRATION_IDENTITY + count - real - 1
        return CalibrationSet(
            inputs=to_model_input(images, channel_order),
            kind="synthetic",
            description=f"{count - real} synthetic faces, identities {CALIBRATION_IDENTITY}..{last}, and {real} "
            f"augmented crops of the astronaut photo (seed {REAL_CROP_SEEDS['calibration']}); {DEFAULT_SET_NOTE}",
            identities=(CALIBRATION_IDENTITY, last),
        )
    crops, files = read_crops(Path(images_dir), size, count)
    return CalibrationSet(
        inputs=to_model_input(crops, channel_order),
        kind="user",
        description=f"{len(files)} aligned crops from {images_dir}",
        folder=str(images_dir),
        files=tuple(str(f) for f in files),
    )


def read_crops(folder: Path, size: tuple[int, int], count: int) -> tuple[np.ndarray, list[Path]]:
    """The first ``count`` images of ``folder`` as BGR uint8 aligned crops of ``size``."""
    import cv2

    from facezoo.images import IMAGE_SUFFIXES
    from facezoo.preprocessing import fit_crop

    if not folder.is_dir():
        raise QuantizationError(f"--calibration-images {folder}: not a folder")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)[:count]
    if not files:
        raise QuantizationError(
            f"--calibration-images {folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found"
        )
    crops = []
    for path in files:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise QuantizationError(f"{path}: cannot read image (not a format OpenCV decodes)")
        crops.append(fit_crop(image, size, resize=False, label=str(path)))
    return np.stack(crops), files


def real_share(count: int) -> int:
    """How many of a default set of ``count`` faces are real-photo crops (none in a set of 2)."""
    return int(count * REAL_CROP_SHARE) if count > 2 else 0


def tuning_faces(size: tuple[int, int], count: int = DEFAULT_TUNING_SIZE) -> np.ndarray:
    """``count`` held-out faces (BGR uint8): one colour-asymmetric face (strong red, dark blue: INT8
    ranges must hold for it too), two variations per identity from TUNING_IDENTITY, and a share of
    real-photo crops."""
    from facezoo.faces import colour_asymmetric_face, face_batch
    from facezoo.photos import real_face_crops

    if not 2 <= count <= MAX_TUNING_SIZE:
        raise QuantizationError(f"tuning faces: count {count} must be between 2 and {MAX_TUNING_SIZE}")
    real = real_share(count)
    k = np.arange(count - 1 - real)
    faces = face_batch(TUNING_IDENTITY + 1 + k // 2, k % 2, size)
    return np.concatenate([colour_asymmetric_face(size, identity=TUNING_IDENTITY)[None], faces,
                           real_face_crops(size, real, REAL_CROP_SEEDS["tuning"])])


def tuning_set(
    size: tuple[int, int],
    channel_order: str,
    original: Callable[[np.ndarray], np.ndarray],
    count: int = DEFAULT_TUNING_SIZE,
) -> TuningSet:
    """Tuning faces with ``original(bgr_images)`` (e.g. MindSporeSource.reference) as the target."""
    from facezoo.preprocessing import to_model_input

    images = tuning_faces(size, count)
    reference = np.asarray(original(images), np.float32)
    real = real_share(count)
    last = TUNING_IDENTITY + 1 + (count - 2 - real) // 2
    return TuningSet(
        inputs=to_model_input(images, channel_order),
        reference=reference.reshape(len(reference), -1),
        description=f"{count - real} synthetic faces, identities {TUNING_IDENTITY}..{last}: one colour-asymmetric, "
        f"then two variations each; {real} crops of the astronaut photo (seed {REAL_CROP_SEEDS['tuning']})",
    )


def ensure_disjoint(calibration: CalibrationSet, validation_files: list[str | Path]) -> None:
    """Refuse user calibration images that are also validation images (same resolved path)."""
    if not calibration.files:
        return
    seen = {Path(f).resolve() for f in calibration.files}
    shared = sorted(str(f) for f in validation_files if Path(f).resolve() in seen)
    if shared:
        raise QuantizationError(
            f"--calibration-images {calibration.folder}: {len(shared)} image(s) are also validation images "
            f"(first: {shared[0]}); calibration faces must be held out from the faces that judge the INT8 model"
        )
