"""Small verification sets made of generated faces, in the real file layouts.

Same person = same ``identity`` of :func:`facezoo.faces.synthetic_face` with another
``variation``. Each set carries a marker file (``facezoo-synthetic.json``) so that every
number measured on it is labelled synthetic. These sets test the evaluation machinery; they
say nothing about a model's accuracy on real faces.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from facezoo.accuracy.datasets import SYNTHETIC_MARKER, write_insightface_bin
from facezoo.faces import synthetic_face

FIRST_IDENTITY = 5000  # away from the probe identities (1000+) used by the converters


@dataclass(frozen=True)
class PairSpec:
    identity1: int
    variation1: int
    identity2: int
    variation2: int

    @property
    def same(self) -> bool:
        return self.identity1 == self.identity2


def plan_pairs(folds: int, per_fold: int, seed: int = 0) -> list[PairSpec]:
    """LFW View 2 order: per fold, `per_fold` same pairs then `per_fold` different pairs.

    Identities of one fold appear in no other fold, as in LFW.
    """
    rng = np.random.default_rng(seed)
    pairs: list[PairSpec] = []
    next_identity = FIRST_IDENTITY + 1000 * seed
    for _ in range(folds):
        people = list(range(next_identity, next_identity + per_fold + 1))
        next_identity += per_fold + 1
        for k in range(per_fold):
            identity = people[k % len(people)]
            v1, v2 = rng.choice(np.arange(1, 6), size=2, replace=False)
            pairs.append(PairSpec(identity, int(v1), identity, int(v2)))
        for k in range(per_fold):
            a, b = rng.choice(people, size=2, replace=False)
            pairs.append(PairSpec(int(a), int(rng.integers(1, 6)), int(b), int(rng.integers(1, 6))))
    return pairs


def _marker(kind: str, folds: int, per_fold: int, seed: int, size: tuple[int, int]) -> dict:
    return {
        "synthetic": True,
        "generator": "facezoo.accuracy.synthetic",
        "kind": kind,
        "folds": folds,
        "pairs_per_fold": per_fold,
        "seed": seed,
        "image_size": list(size),
        "note": "generated faces: metrics measured on this set are not a model's accuracy",
    }


def write_synthetic_bin(
    path: str | Path, folds: int = 10, per_fold: int = 3, seed: int = 0, size: tuple[int, int] = (112, 112)
) -> Path:
    """An insightface-style .bin of generated faces (JPEG, like the real files) plus its marker."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images, issame = [], []
    for pair in plan_pairs(folds, per_fold, seed):
        for identity, variation in ((pair.identity1, pair.variation1), (pair.identity2, pair.variation2)):
            ok, encoded = cv2.imencode(".jpg", synthetic_face(identity, variation, size), [cv2.IMWRITE_JPEG_QUALITY, 95])
            assert ok
            images.append(encoded.tobytes())
        issame.append(pair.same)
    write_insightface_bin(path, images, issame)
    path.with_name(path.name + "." + SYNTHETIC_MARKER).write_text(
        json.dumps(_marker("insightface-bin", folds, per_fold, seed, size), indent=2) + "\n", encoding="utf-8"
    )
    return path


def person_name(identity: int) -> str:
    return f"Synthetic_Person_{identity:05d}"


def write_synthetic_lfw(
    root: str | Path, folds: int = 10, per_fold: int = 3, seed: int = 0, size: tuple[int, int] = (112, 112)
) -> Path:
    """An LFW-layout folder of generated faces: <root>/<person>/<person>_<NNNN>.jpg, pairs.txt, marker."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    lines = [f"{folds}\t{per_fold}"]
    written: set[tuple[int, int]] = set()
    for pair in plan_pairs(folds, per_fold, seed):
        for identity, variation in ((pair.identity1, pair.variation1), (pair.identity2, pair.variation2)):
            if (identity, variation) in written:
                continue
            folder = root / person_name(identity)
            folder.mkdir(exist_ok=True)
            cv2.imwrite(str(folder / f"{person_name(identity)}_{variation:04d}.jpg"), synthetic_face(identity, variation, size))
            written.add((identity, variation))
        if pair.same:
            lines.append(f"{person_name(pair.identity1)}\t{pair.variation1}\t{pair.variation2}")
        else:
            lines.append(
                f"{person_name(pair.identity1)}\t{pair.variation1}\t{person_name(pair.identity2)}\t{pair.variation2}"
            )
    (root / "pairs.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (root / SYNTHETIC_MARKER).write_text(
        json.dumps(_marker("lfw-folder", folds, per_fold, seed, size), indent=2) + "\n", encoding="utf-8"
    )
    return root


__all__ = ["PairSpec", "person_name", "plan_pairs", "write_synthetic_bin", "write_synthetic_lfw"]
