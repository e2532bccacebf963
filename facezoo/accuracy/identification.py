"""1:N identification accuracy: a folder of identities split into a gallery and probes, exact search.

The folder is ``DIR/<identity>/<image>`` (aligned face crops, or photos when a detector finds the
faces). The split is deterministic (sorted identity names, sorted file names):

- a share of the identities (``unknown_share``; by default 0.5 from ``MIN_OPEN_SET_IDENTITIES``
  identities on, else 0) is left out of the gallery: sorted identity ``i`` (from 0) is left out
  when ``floor((i + 1) * share) > floor(i * share)``, which spreads the ``floor(n * share)`` left-out
  identities evenly over the alphabet. All their images are *non-mated* probes (open set);
- every other (enrolled) identity's first image is its gallery entry and its other images are
  its *mated* probes.

Search is exact: the cosine of every L2-normalised probe with every gallery entry (one matrix
product), so that the figures judge the model, never an approximate index. Reported:

- closed set, over the mated probes: rank-1 identification rate and the CMC curve (rank 1 ..
  min(20, gallery size)). A probe's rank is the number of gallery entries scoring at least as high
  as its own identity's (ties count against the probe);
- open set: DIR (detection and identification rate) at FAR 1 % and 0.1 %. The threshold at a FAR
  is the smallest one at which at most that fraction of the non-mated probes have a best cosine
  ``>= threshold``; DIR is the fraction of mated probes whose top-1 is their identity *and* whose
  cosine is ``>= threshold``. With fewer than ``1 / FAR`` non-mated probes the FAR cannot be
  resolved: the figure is None, with the reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Sequence

import numpy as np

from facezoo.accuracy.datasets import DatasetError
from facezoo.atomic import atomic_path
from facezoo.images import IMAGE_SUFFIXES
from facezoo.numerics import l2_normalize

PROTOCOL = "identification"
DEFAULT_UNKNOWN_SHARE = 0.5
MIN_OPEN_SET_IDENTITIES = 4  # below this the default share is 0: a gallery of 1 identity measures nothing
MAX_CMC_RANK = 20
FAR_TARGETS = (1e-2, 1e-3)
_EPS = 1e-9  # n * far products that are whole numbers in decimal are not always whole in binary


class IdentificationSetError(DatasetError):
    """A folder of identities cannot give an identification test (no identities, no mated probe, ...)."""


# ----------------------------------------------------------------------------- the split


@dataclass(frozen=True)
class IdentificationSplit:
    """Gallery and probes of a folder of identities; gallery row ``i`` is identity ``enrolled[i]``."""

    root: Path
    enrolled: tuple[str, ...]  # identities in the gallery, sorted
    gallery: tuple[Path, ...]  # one image per enrolled identity (its first)
    unknown: tuple[str, ...]  # identities left out of the gallery, sorted
    probes: tuple[Path, ...]
    probe_truth: tuple[int, ...]  # gallery row of each probe's identity; -1: non-mated
    unknown_share: float

    @property
    def identities(self) -> int:
        return len(self.enrolled) + len(self.unknown)

    @property
    def mated_probes(self) -> int:
        return sum(1 for row in self.probe_truth if row >= 0)

    @property
    def non_mated_probes(self) -> int:
        return sum(1 for row in self.probe_truth if row < 0)

    @property
    def images(self) -> int:
        return len(self.gallery) + len(self.probes)

    def as_dict(self) -> dict:
        return {"identities": self.identities, "enrolled": len(self.enrolled), "unknown": len(self.unknown),
                "images": self.images, "gallery": len(self.gallery), "mated_probes": self.mated_probes,
                "non_mated_probes": self.non_mated_probes, "unknown_share": self.unknown_share,
                "unknown_identities": list(self.unknown)}


def default_unknown_share(identities: int) -> float:
    """0.5 (an open set) when there are enough identities for both a gallery and strangers, else 0."""
    return DEFAULT_UNKNOWN_SHARE if identities >= MIN_OPEN_SET_IDENTITIES else 0.0


def left_out(count: int, share: float) -> list[bool]:
    """Which of ``count`` sorted identities stay out of the gallery: floor(count * share) of them, evenly spread.

    Exact fractions: 0.29 * 100 is 28.999… in binary, and a share must not lose an identity to that.
    """
    exact = Fraction(share).limit_denominator(10**6)
    return [math.floor((i + 1) * exact) > math.floor(i * exact) for i in range(count)]


def identity_images(root: str | Path) -> dict[str, list[Path]]:
    """identity → its sorted image files, from ``root/<identity>/*``; errors name the folder or file at fault."""
    root = Path(root)
    if not root.is_dir():
        raise IdentificationSetError(f"{root}: not a folder of identities (expected {root}/<identity>/<image>.jpg)")
    found: dict[str, list[Path]] = {}
    for entry in sorted(root.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_file() and entry.suffix.lower() in IMAGE_SUFFIXES:
            raise IdentificationSetError(
                f"{entry}: an image directly in the dataset folder; each identity's images go in their own "
                f"sub-folder ({root}/<identity>/{entry.name})"
            )
        if entry.is_dir():
            files = sorted(p for p in entry.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if files:
                found[entry.name] = files
    if not found:
        raise IdentificationSetError(
            f"{root}: no identity sub-folders with images ({'/'.join(IMAGE_SUFFIXES)}); "
            f"expected {root}/<identity>/<image>.jpg"
        )
    return found


def split_identities(root: str | Path, unknown_share: float | None = None) -> IdentificationSplit:
    """The deterministic gallery/probe split of a folder of identities (see the module's docstring)."""
    root = Path(root)
    found = identity_images(root)
    names = sorted(found)
    share = default_unknown_share(len(names)) if unknown_share is None else float(unknown_share)
    if not 0.0 <= share < 1.0:
        raise IdentificationSetError(f"unknown share {share:g}: must be at least 0 and below 1 "
                                     "(the share of identities left out of the gallery)")
    out = left_out(len(names), share)
    enrolled = [name for name, gone in zip(names, out) if not gone]
    unknown = [name for name, gone in zip(names, out) if gone]
    if not enrolled:
        raise IdentificationSetError(f"{root}: unknown share {share:g} leaves none of the {len(names)} identities "
                                     "in the gallery")
    probes: list[Path] = []
    truth: list[int] = []
    for row, name in enumerate(enrolled):
        probes.extend(found[name][1:])
        truth.extend([row] * (len(found[name]) - 1))
    if not probes:
        raise IdentificationSetError(
            f"{root}: no mated probe: none of the {len(enrolled)} identities in the gallery has a second image "
            f"(each one's first image is its gallery entry, the others are its probes; {len(unknown)} of "
            f"{len(names)} identities left out at unknown share {share:g})"
        )
    for name in unknown:
        probes.extend(found[name])
        truth.extend([-1] * len(found[name]))
    return IdentificationSplit(root, tuple(enrolled), tuple(found[name][0] for name in enrolled), tuple(unknown),
                               tuple(probes), tuple(truth), share)


# ----------------------------------------------------------------------------- the metrics


def similarity(probes: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    """Exact search: cosine of every probe with every gallery entry (P×G, float64)."""
    return l2_normalize(np.asarray(probes, np.float64)) @ l2_normalize(np.asarray(gallery, np.float64)).T


def true_ranks(scores: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Rank (from 1) of each mated probe's own gallery entry: entries scoring at least as high, itself included."""
    scores, truth = np.asarray(scores), np.asarray(truth)
    mated = truth >= 0
    rows = scores[mated]
    own = rows[np.arange(len(rows)), truth[mated]]
    return (rows >= own[:, None]).sum(axis=1)


def cmc_curve(ranks: np.ndarray, gallery_size: int, max_rank: int = MAX_CMC_RANK) -> np.ndarray:
    """Identification rate at ranks 1 .. min(max_rank, gallery_size): the share of ranks <= r."""
    ranks = np.asarray(ranks)
    if ranks.size == 0:
        raise ValueError("the CMC curve needs at least one mated probe")
    return np.array([(ranks <= r).mean() for r in range(1, min(max_rank, gallery_size) + 1)])


def far_key(far: float) -> str:
    return f"DIR@FAR={far:.0e}".replace("e-0", "e-")


def threshold_at_far(non_mated_best: np.ndarray, far: float) -> tuple[float | None, str | None]:
    """(smallest threshold at which at most ``far`` of the non-mated best scores are >= it, None) or
    (None, why not): a FAR needs at least 1 / FAR non-mated probes to be resolved."""
    if not 0.0 < far < 1.0:
        raise ValueError(f"FAR {far!r}: must be between 0 and 1")
    best = np.sort(np.asarray(non_mated_best, np.float64))[::-1]
    if best.size == 0:
        return None, "no non-mated probes (every identity is in the gallery): the open set is not measured"
    allowed = math.floor(best.size * far + _EPS)
    if allowed < 1:
        return None, (f"FAR {far:g} needs at least {math.ceil(1 / far - _EPS)} non-mated probes to be resolved; "
                      f"there are {best.size}")
    return float(np.nextafter(best[allowed], np.inf)), None  # just above the first score that must be rejected


@dataclass(frozen=True)
class OpenSetPoint:
    """DIR at one FAR target, or None with the reason it cannot be resolved."""

    far: float
    dir: float | None
    threshold: float | None
    false_alarms: int | None  # non-mated probes whose best cosine is >= threshold
    reason: str | None

    def as_dict(self) -> dict:
        return {"far": self.far, "dir": self.dir, "threshold": self.threshold, "false_alarms": self.false_alarms,
                "reason": self.reason}


@dataclass(frozen=True)
class IdentificationResult:
    gallery_size: int
    mated_probes: int
    non_mated_probes: int
    ranks: np.ndarray  # of each mated probe's own identity
    cmc: np.ndarray  # identification rate at ranks 1 .. len(cmc)
    open_set: tuple[OpenSetPoint, ...]
    curve_far: np.ndarray  # DIR against FAR, every threshold between two non-mated best scores
    curve_dir: np.ndarray

    @property
    def rank1(self) -> float:
        return float(self.cmc[0])

    def measured(self) -> dict[str, float | None]:
        """The headline figures, flat: rank-1 and DIR at each FAR (None: not resolvable)."""
        return {"rank-1": self.rank1, **{far_key(p.far): p.dir for p in self.open_set}}

    def as_dict(self) -> dict:
        return {
            "gallery_size": self.gallery_size, "mated_probes": self.mated_probes,
            "non_mated_probes": self.non_mated_probes, "rank1": self.rank1,
            "cmc": [{"rank": r, "rate": float(v)} for r, v in enumerate(self.cmc, start=1)],
            "open_set": {far_key(p.far): p.as_dict() for p in self.open_set},
        }


def dir_far_curve(correct_scores: np.ndarray, mated: int, non_mated_best: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(FAR, DIR) at a threshold just above each distinct non-mated best score, and at -inf (FAR 1)."""
    best = np.sort(np.asarray(non_mated_best, np.float64))
    if best.size == 0:
        return np.zeros(0), np.zeros(0)
    correct = np.sort(np.asarray(correct_scores, np.float64))
    thresholds = np.concatenate([np.nextafter(np.unique(best), np.inf)[::-1], [-np.inf]])
    far = (best.size - np.searchsorted(best, thresholds, side="left")) / best.size
    rate = (correct.size - np.searchsorted(correct, thresholds, side="left")) / mated
    return far, rate


def evaluate_identification(gallery: np.ndarray, probes: np.ndarray, probe_truth: Sequence[int],
                            fars: Sequence[float] = FAR_TARGETS, max_rank: int = MAX_CMC_RANK) -> IdentificationResult:
    """Closed- and open-set figures of probes searched exactly against a gallery of one entry per identity.

    ``probe_truth``: the gallery row of each probe's identity, -1 for a non-mated probe.
    """
    gallery, probes = np.asarray(gallery), np.asarray(probes)
    truth = np.asarray(probe_truth, np.int64)
    if gallery.ndim != 2 or probes.ndim != 2 or gallery.shape[1] != probes.shape[1]:
        raise ValueError(f"gallery {gallery.shape} and probes {probes.shape} are not embeddings of one dimension")
    if truth.shape != (len(probes),) or np.any(truth >= len(gallery)) or np.any(truth < -1):
        raise ValueError(f"probe_truth must give a gallery row (or -1) for each of the {len(probes)} probes")
    if len(gallery) == 0 or not np.any(truth >= 0):
        raise ValueError("identification needs a gallery and at least one mated probe")
    if not (np.all(np.isfinite(gallery)) and np.all(np.isfinite(probes))):
        raise IdentificationSetError("the model gave embeddings with NaN or infinity: nothing can be measured")
    scores = similarity(probes, gallery)
    mated = truth >= 0
    ranks = true_ranks(scores, truth)
    cmc = cmc_curve(ranks, len(gallery), max_rank)
    own = scores[mated][np.arange(int(mated.sum())), truth[mated]]
    correct = own[ranks == 1]  # cosines of the mated probes whose top-1 is their identity
    non_mated_best = scores[~mated].max(axis=1)
    points = []
    for far in fars:
        threshold, reason = threshold_at_far(non_mated_best, far)
        if threshold is None:
            points.append(OpenSetPoint(far, None, None, None, reason))
            continue
        points.append(OpenSetPoint(far, float(np.sum(correct >= threshold)) / int(mated.sum()), threshold,
                                   int(np.sum(non_mated_best >= threshold)), None))
    curve_far, curve_dir = dir_far_curve(correct, int(mated.sum()), non_mated_best)
    return IdentificationResult(len(gallery), int(mated.sum()), int((~mated).sum()), ranks, cmc, tuple(points),
                                curve_far, curve_dir)


# ----------------------------------------------------------------------------- the plot


def plot_identification(result: IdentificationResult, path: str | Path, *, title: str, note: str = "") -> Path:
    """CMC curve beside DIR against FAR (log scale, FAR targets marked), as facezoo.accuracy.plot draws ROCs;
    written atomically."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure = Figure(figsize=(10.0, 4.6), dpi=100)
    cmc_axes, dir_axes = figure.subplots(1, 2)
    ranks = np.arange(1, len(result.cmc) + 1)
    cmc_axes.plot(ranks, result.cmc, "o-", color="tab:blue", linewidth=1.6, markersize=3,
                  label=f"rank-1 {100 * result.rank1:.2f}%")
    cmc_axes.set_xlim(0.5, max(len(result.cmc), 1) + 0.5)
    cmc_axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    cmc_axes.set_ylim(0.0, 1.01)
    cmc_axes.set_xlabel("rank")
    cmc_axes.set_ylabel("identification rate")
    cmc_axes.set_title(f"CMC ({result.mated_probes} mated probes, gallery {result.gallery_size})", fontsize=9)
    cmc_axes.grid(True, alpha=0.3)
    cmc_axes.legend(loc="lower right", fontsize=8)
    if result.non_mated_probes:
        floor = 0.5 / result.non_mated_probes  # FAR 0 drawn at half the smallest measurable FAR
        dir_axes.step(np.maximum(result.curve_far, floor), result.curve_dir, where="post", color="tab:blue",
                      linewidth=1.6, label="DIR (top-1 right and cosine >= threshold)")
        for point in result.open_set:
            if point.dir is not None:
                dir_axes.plot([point.far], [point.dir], "s", color="tab:green", markersize=4)
                dir_axes.annotate(f"{100 * point.dir:.1f}%", (point.far, point.dir), textcoords="offset points",
                                  xytext=(4, -10), fontsize=7)
        dir_axes.set_xscale("log")
        dir_axes.set_xlim(floor, 1.0)
        dir_axes.legend(loc="lower right", fontsize=8)
    else:
        dir_axes.text(0.5, 0.5, "no non-mated probes:\nthe open set is not measured", ha="center", va="center",
                      transform=dir_axes.transAxes, fontsize=9)
    dir_axes.set_ylim(0.0, 1.01)
    dir_axes.set_xlabel("false alarm rate (FAR, non-mated probes)")
    dir_axes.set_ylabel("detection and identification rate (DIR)")
    dir_axes.set_title(f"open set ({result.non_mated_probes} non-mated probes)", fontsize=9)
    dir_axes.grid(True, which="both", alpha=0.3)
    figure.suptitle(title, fontsize=10)
    if note:
        figure.text(0.5, 0.01, note, ha="center", va="bottom", fontsize=7, color="tab:red", wrap=True)
    figure.tight_layout(rect=(0, 0.04 if note else 0, 1, 1))
    with atomic_path(path, suffix=".png") as temporary:
        figure.savefig(temporary, format="png")
    return path


__all__ = [
    "DEFAULT_UNKNOWN_SHARE", "FAR_TARGETS", "IdentificationResult", "IdentificationSetError", "IdentificationSplit",
    "MAX_CMC_RANK", "MIN_OPEN_SET_IDENTITIES", "OpenSetPoint", "PROTOCOL", "cmc_curve", "default_unknown_share",
    "dir_far_curve", "evaluate_identification", "far_key", "identity_images", "left_out", "plot_identification",
    "similarity", "split_identities", "threshold_at_far", "true_ranks",
]
