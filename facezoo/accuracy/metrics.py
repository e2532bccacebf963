"""Verification metrics: k-fold accuracy (insightface and LFW-cosine protocols), ROC, TAR@FAR, EER, AUC.

Everything works on pairs: two embedding matrices (row i of each is pair i) and a boolean
``issame`` vector. Scores follow one convention: higher means "more likely the same person"
(cosine similarity; for the insightface protocol the squared distance is negated where a score
is needed).

Protocols, from the upstream evaluation code's published description:

- insightface: L2-normalize, squared Euclidean distance, thresholds 0..4 step 0.01, "same" when
  distance < threshold; 10 contiguous folds (KFold without shuffling); on each fold the threshold
  that maximizes accuracy on the other 9 folds is applied to it; mean ± std over the folds.
- lfw-cosine (SphereFace): cosine of raw embeddings, thresholds in [-1, 1) step 0.005, "same" when
  cosine > threshold, the same 10-fold scheme.
- roc: the ROC of cosine scores, TAR at fixed FARs, equal error rate and area under the curve.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from facezoo.numerics import best_separation, cosine_rows
from facezoo.numerics import l2_normalize as _l2_normalize

DEFAULT_FOLDS = 10
INSIGHTFACE_THRESHOLDS = np.arange(0.0, 4.0, 0.01)
LFW_COSINE_THRESHOLDS = np.arange(-1.0, 1.0, 0.005)
FAR_TARGETS = (1e-1, 1e-2, 1e-3, 1e-4)


# ----------------------------------------------------------------------------- basics


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """facezoo.numerics.l2_normalize in float64, as the protocols compute."""
    return _l2_normalize(np.asarray(x, np.float64))


cosine_scores = cosine_rows  # cosine of row i of a with row i of b


def squared_l2_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared Euclidean distance between the L2-normalized rows (0 .. 4)."""
    return np.sum(np.square(l2_normalize(a) - l2_normalize(b)), axis=1)


def kfold_indices(n: int, folds: int = DEFAULT_FOLDS) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) index arrays of `folds` contiguous folds; the first n % folds are one longer."""
    if folds < 2:
        raise ValueError("need at least 2 folds")
    if n < folds:
        raise ValueError(f"{n} pairs cannot be split into {folds} folds")
    sizes = np.full(folds, n // folds, dtype=int)
    sizes[: n % folds] += 1
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    everything = np.arange(n)
    splits = []
    for k in range(folds):
        test = everything[bounds[k] : bounds[k + 1]]
        train = np.concatenate([everything[: bounds[k]], everything[bounds[k + 1] :]])
        splits.append((train, test))
    return splits


# ----------------------------------------------------------------------------- k-fold accuracy


@dataclass(frozen=True)
class KFoldAccuracy:
    """Accuracy of a thresholded decision, threshold chosen on the other folds."""

    protocol: str
    mean: float
    std: float
    fold_accuracies: list[float]
    fold_thresholds: list[float]
    pairs: int

    def as_dict(self) -> dict:
        return asdict(self)


def _accuracy_table(same_predicted: np.ndarray, issame: np.ndarray) -> np.ndarray:
    """Accuracy per threshold column: same_predicted is (pairs, thresholds) bool."""
    return np.mean(same_predicted == issame[:, None], axis=0)


def kfold_accuracy(
    values: np.ndarray,
    issame: np.ndarray,
    thresholds: np.ndarray,
    *,
    same_when: str,
    folds: int = DEFAULT_FOLDS,
    protocol: str = "",
) -> KFoldAccuracy:
    """Generic k-fold threshold accuracy.

    values: one number per pair; same_when: "below" (distance < t) or "above" (similarity > t).
    On ties in training accuracy the first (smallest) threshold wins.
    """
    values = np.asarray(values, np.float64)
    issame = np.asarray(issame, bool)
    if values.shape != issame.shape:
        raise ValueError(f"{values.shape[0]} scores for {issame.shape[0]} labels")
    thresholds = np.asarray(thresholds, np.float64)
    if same_when == "below":
        predicted = values[:, None] < thresholds[None, :]
    elif same_when == "above":
        predicted = values[:, None] > thresholds[None, :]
    else:
        raise ValueError("same_when must be 'below' or 'above'")
    accuracies, chosen = [], []
    for train, test in kfold_indices(len(values), folds):
        best = int(np.argmax(_accuracy_table(predicted[train], issame[train])))
        chosen.append(float(thresholds[best]))
        accuracies.append(float(np.mean(predicted[test, best] == issame[test])))
    return KFoldAccuracy(
        protocol=protocol,
        mean=float(np.mean(accuracies)),
        std=float(np.std(accuracies)),
        fold_accuracies=accuracies,
        fold_thresholds=chosen,
        pairs=len(values),
    )


def insightface_accuracy(emb1: np.ndarray, emb2: np.ndarray, issame, folds: int = DEFAULT_FOLDS) -> KFoldAccuracy:
    """The insightface verification protocol (embeddings are L2-normalized here)."""
    return kfold_accuracy(
        squared_l2_distances(emb1, emb2), issame, INSIGHTFACE_THRESHOLDS, same_when="below", folds=folds,
        protocol="insightface",
    )


def lfw_cosine_accuracy(emb1: np.ndarray, emb2: np.ndarray, issame, folds: int = DEFAULT_FOLDS) -> KFoldAccuracy:
    """The SphereFace LFW protocol: cosine of raw embeddings, thresholds [-1, 1) step 0.005."""
    return kfold_accuracy(
        cosine_scores(emb1, emb2), issame, LFW_COSINE_THRESHOLDS, same_when="above", folds=folds,
        protocol="lfw-cosine",
    )


# ----------------------------------------------------------------------------- ROC


@dataclass(frozen=True)
class Roc:
    """ROC of scores (higher = same): one point per distinct score, from (0, 0) to (1, 1)."""

    far: np.ndarray  # false accept rate (FPR)
    tar: np.ndarray  # true accept rate (TPR)
    thresholds: np.ndarray  # accept when score >= threshold; +inf for the first point
    positives: int
    negatives: int


def roc_curve(scores: np.ndarray, issame) -> Roc:
    scores = np.asarray(scores, np.float64)
    issame = np.asarray(issame, bool)
    positives = int(issame.sum())
    negatives = int((~issame).sum())
    if positives == 0 or negatives == 0:
        raise ValueError(f"an ROC needs both same and different pairs (have {positives} same, {negatives} different)")
    order = np.argsort(-scores, kind="mergesort")
    sorted_scores = scores[order]
    sorted_same = issame[order]
    true_accepts = np.cumsum(sorted_same)
    false_accepts = np.cumsum(~sorted_same)
    # keep only the last index of each run of equal scores: ties are accepted together
    last_of_run = np.r_[np.diff(sorted_scores) != 0, True]
    tar = np.r_[0.0, true_accepts[last_of_run] / positives]
    far = np.r_[0.0, false_accepts[last_of_run] / negatives]
    thresholds = np.r_[np.inf, sorted_scores[last_of_run]]
    return Roc(far=far, tar=tar, thresholds=thresholds, positives=positives, negatives=negatives)


def auc(roc: Roc) -> float:
    """Area under the ROC (trapezoids; ties count one half, as in the Mann-Whitney statistic)."""
    return float(np.sum(np.diff(roc.far) * (roc.tar[1:] + roc.tar[:-1]) / 2.0))


def eer(roc: Roc) -> float:
    """Equal error rate: where FAR equals the false reject rate 1 - TAR, linearly interpolated."""
    frr = 1.0 - roc.tar
    gap = frr - roc.far  # starts at 1 (far 0, tar 0), ends at -1 (far 1, tar 1), never increases
    crossing = int(np.argmax(gap <= 0))
    if gap[crossing] == 0:
        return float(roc.far[crossing])
    i = crossing - 1
    # on the segment i -> i+1, gap goes from > 0 to < 0; solve for gap = 0
    t = gap[i] / (gap[i] - gap[crossing])
    far = roc.far[i] + t * (roc.far[crossing] - roc.far[i])
    return float(far)


def tar_at_far(roc: Roc, far_target: float) -> float | None:
    """Best TAR with FAR <= far_target; None when there are too few different pairs (< 1/far)."""
    if roc.negatives * far_target < 1.0:
        return None
    allowed = roc.far <= far_target + 1e-12
    return float(np.max(roc.tar[allowed]))


def far_label(far: float) -> str:
    return f"TAR@FAR={far:.0e}".replace("e-0", "e-")


@dataclass(frozen=True)
class RocMetrics:
    auc: float
    eer: float
    tar_at_far: dict[str, float | None]  # "TAR@FAR=1e-3": value or None (n/a)
    positives: int
    negatives: int
    best_threshold: float  # score threshold with the best accuracy on all pairs (not k-fold)
    best_accuracy: float

    def as_dict(self) -> dict:
        out = asdict(self)
        out["one_minus_eer"] = 1.0 - self.eer
        return out


def roc_metrics(scores: np.ndarray, issame, far_targets=FAR_TARGETS) -> RocMetrics:
    roc = roc_curve(scores, issame)
    threshold, accuracy = best_separation(scores, issame)
    return RocMetrics(
        auc=auc(roc),
        eer=eer(roc),
        tar_at_far={far_label(f): tar_at_far(roc, f) for f in far_targets},
        positives=roc.positives,
        negatives=roc.negatives,
        best_threshold=threshold,
        best_accuracy=accuracy,
    )


# ----------------------------------------------------------------------------- protocols

PROTOCOLS = ("insightface", "lfw-cosine", "roc")


@dataclass
class Evaluation:
    """What one protocol measured on one set of pairs."""

    protocol: str
    flip: bool
    roc: RocMetrics
    curve: Roc
    accuracy: KFoldAccuracy | None = None  # k-fold accuracy of the image embeddings alone
    accuracy_flip: KFoldAccuracy | None = None  # of image + horizontal flip, summed (with flip)

    def measured(self) -> dict[str, float | None]:
        """Flat metric name -> value, in the registry's metric names where it has them."""
        out: dict[str, float | None] = {}
        if self.accuracy is not None:
            out["accuracy"] = self.accuracy.mean
        if self.accuracy_flip is not None:
            out["accuracy_flip"] = self.accuracy_flip.mean
        out["1-EER"] = 1.0 - self.roc.eer
        out["EER"] = self.roc.eer
        out["AUC"] = self.roc.auc
        out.update(self.roc.tar_at_far)
        return out

    def as_dict(self) -> dict:
        return {
            "protocol": self.protocol,
            "flip": self.flip,
            "accuracy": self.accuracy.as_dict() if self.accuracy else None,
            "accuracy_flip": self.accuracy_flip.as_dict() if self.accuracy_flip else None,
            "roc": self.roc.as_dict(),
        }


def evaluate_pairs(
    emb1: np.ndarray,
    emb2: np.ndarray,
    issame,
    protocol: str,
    *,
    flip1: np.ndarray | None = None,
    flip2: np.ndarray | None = None,
    folds: int = DEFAULT_FOLDS,
) -> Evaluation:
    """Run `protocol` on pair embeddings; flip1/flip2 are the embeddings of the flipped images.

    With flips, "accuracy_flip" uses image + flip embeddings summed before normalizing (insightface's
    Accuracy-Flip) and the ROC uses those sums; "accuracy" always uses the images alone.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; expected {', '.join(PROTOCOLS)}")
    issame = np.asarray(issame, bool)
    flip = flip1 is not None and flip2 is not None
    sum1 = np.asarray(emb1, np.float64) + (flip1 if flip else 0)
    sum2 = np.asarray(emb2, np.float64) + (flip2 if flip else 0)
    accuracy = accuracy_flip = None
    if protocol == "insightface":
        accuracy = insightface_accuracy(emb1, emb2, issame, folds)
        accuracy_flip = insightface_accuracy(sum1, sum2, issame, folds) if flip else None
    elif protocol == "lfw-cosine":
        accuracy = lfw_cosine_accuracy(emb1, emb2, issame, folds)
        accuracy_flip = lfw_cosine_accuracy(sum1, sum2, issame, folds) if flip else None
    scores = cosine_scores(sum1, sum2)
    return Evaluation(
        protocol=protocol,
        flip=flip,
        roc=roc_metrics(scores, issame),
        curve=roc_curve(scores, issame),
        accuracy=accuracy,
        accuracy_flip=accuracy_flip,
    )


__all__ = [
    "Evaluation",
    "PROTOCOLS",
    "evaluate_pairs",
    "DEFAULT_FOLDS",
    "FAR_TARGETS",
    "INSIGHTFACE_THRESHOLDS",
    "LFW_COSINE_THRESHOLDS",
    "KFoldAccuracy",
    "Roc",
    "RocMetrics",
    "auc",
    "best_separation",
    "cosine_scores",
    "eer",
    "far_label",
    "insightface_accuracy",
    "kfold_accuracy",
    "kfold_indices",
    "l2_normalize",
    "lfw_cosine_accuracy",
    "roc_curve",
    "roc_metrics",
    "squared_l2_distances",
    "tar_at_far",
]
