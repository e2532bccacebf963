"""Verification metrics against scikit-learn and hand-computed answers."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.interpolate import interp1d
from scipy.optimize import brentq
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve
from sklearn.model_selection import KFold

from facezoo.accuracy import metrics as m


def _pairs(n_same, n_diff, dim=16, noise=0.3, seed=0):
    """Embeddings where same pairs are noisy copies and different pairs are independent."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n_same + n_diff, dim))
    second = np.where(np.arange(n_same + n_diff)[:, None] < n_same,
                      base + noise * rng.normal(size=base.shape), rng.normal(size=base.shape))
    issame = np.arange(n_same + n_diff) < n_same
    order = rng.permutation(n_same + n_diff)
    return base[order], second[order], issame[order]


@pytest.mark.parametrize("n", [10, 23, 60, 6000, 12001])
def test_folds_are_sklearn_kfold_without_shuffle(n):
    ours = m.kfold_indices(n, 10)
    theirs = list(KFold(n_splits=10, shuffle=False).split(np.arange(n)))
    assert len(ours) == len(theirs) == 10
    for (train, test), (sk_train, sk_test) in zip(ours, theirs):
        np.testing.assert_array_equal(train, sk_train)
        np.testing.assert_array_equal(test, sk_test)


def test_too_few_pairs_for_the_folds():
    with pytest.raises(ValueError, match="cannot be split"):
        m.kfold_indices(9, 10)


def _reference_kfold(values, issame, thresholds, same_when):
    """An independent k-fold threshold accuracy: sklearn KFold + accuracy_score, plain loops."""
    accuracies = []
    for train, test in KFold(n_splits=10, shuffle=False).split(values):
        def predict(idx, t):
            return values[idx] < t if same_when == "below" else values[idx] > t

        train_acc = [accuracy_score(issame[train], predict(train, t)) for t in thresholds]
        best = thresholds[int(np.argmax(train_acc))]
        accuracies.append(accuracy_score(issame[test], predict(test, best)))
    return float(np.mean(accuracies)), float(np.std(accuracies))


@pytest.mark.parametrize("noise", [0.3, 1.0, 2.0])
def test_insightface_accuracy_matches_an_independent_implementation(noise):
    a, b, issame = _pairs(150, 150, noise=noise, seed=1)
    ours = m.insightface_accuracy(a, b, issame)
    an = a / np.linalg.norm(a, axis=1, keepdims=True)
    bn = b / np.linalg.norm(b, axis=1, keepdims=True)
    dist = np.sum((an - bn) ** 2, axis=1)
    mean, std = _reference_kfold(dist, issame, np.arange(0, 4, 0.01), "below")
    assert ours.mean == pytest.approx(mean, abs=1e-12)
    assert ours.std == pytest.approx(std, abs=1e-12)
    assert len(ours.fold_accuracies) == 10 and ours.pairs == 300


def test_lfw_cosine_accuracy_matches_an_independent_implementation():
    a, b, issame = _pairs(120, 120, noise=1.2, seed=2)
    # raw (not normalized) embeddings: the cosine must not care about scale
    ours = m.lfw_cosine_accuracy(a * 7.0, b * 0.1, issame)
    cos = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    mean, std = _reference_kfold(cos, issame, np.arange(-1, 1, 0.005), "above")
    assert ours.mean == pytest.approx(mean, abs=1e-12)
    assert ours.std == pytest.approx(std, abs=1e-12)


def test_perfectly_separable_pairs():
    # same pairs: nearly identical embeddings; different pairs: nearly opposite ones
    rng = np.random.default_rng(3)
    a = rng.normal(size=(1000, 32))
    issame = rng.random(1000) < 0.5
    b = np.where(issame[:, None], a, -a) + 0.01 * rng.normal(size=a.shape)
    assert m.insightface_accuracy(a, b, issame).mean == 1.0
    assert m.lfw_cosine_accuracy(a, b, issame).mean == 1.0
    result = m.roc_metrics(m.cosine_scores(a, b), issame)
    assert result.eer == 0.0 and result.auc == 1.0 and result.best_accuracy == 1.0
    assert result.tar_at_far["TAR@FAR=1e-1"] == 1.0 and result.tar_at_far["TAR@FAR=1e-2"] == 1.0
    # 500 different pairs cannot measure a FAR of 1e-3 or 1e-4
    assert result.tar_at_far["TAR@FAR=1e-3"] is None and result.tar_at_far["TAR@FAR=1e-4"] is None


def test_identical_distributions_give_chance():
    rng = np.random.default_rng(4)
    scores = rng.normal(size=20000)
    issame = rng.random(20000) < 0.5
    result = m.roc_metrics(scores, issame)
    assert result.auc == pytest.approx(0.5, abs=0.02)
    assert result.eer == pytest.approx(0.5, abs=0.02)


def test_hand_computed_small_case():
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    issame = np.array([True, False, True, False])
    roc = m.roc_curve(scores, issame)
    np.testing.assert_allclose(roc.far, [0, 0, 0.5, 0.5, 1])
    np.testing.assert_allclose(roc.tar, [0, 0.5, 0.5, 1, 1])
    assert m.auc(roc) == pytest.approx(0.75)
    assert m.eer(roc) == pytest.approx(0.5)
    assert m.tar_at_far(roc, 0.5) == 1.0
    assert m.tar_at_far(roc, 0.1) is None  # 2 different pairs cannot measure FAR 0.1
    threshold, accuracy = m.best_separation(scores, issame)
    assert accuracy == 0.75


def test_eer_interpolates_between_roc_points():
    # ROC (0,0) -> (0, 1/3) -> (1/2, 1/3) -> (1/2, 1) ... : FRR - FAR crosses 0 inside a segment
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    issame = np.array([True, False, True, True, False])
    roc = m.roc_curve(scores, issame)
    fpr, tpr, _ = sk_roc_curve(issame, scores, drop_intermediate=False)
    reference = brentq(lambda x: 1.0 - x - interp1d(fpr, tpr)(x), 0.0, 1.0)
    assert m.eer(roc) == pytest.approx(reference, abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(-5, 5), st.booleans()), min_size=1, max_size=30))
def test_best_separation_is_the_best_cut(rows):
    scores = np.array([r[0] for r in rows], float) / 5
    issame = np.array([r[1] for r in rows])
    threshold, accuracy = m.best_separation(scores, issame)
    assert accuracy == pytest.approx(np.mean((scores >= threshold) == issame))
    brute = max(np.mean((scores >= t) == issame) for t in np.r_[scores, np.inf])
    assert accuracy == pytest.approx(brute)
    assert not np.any(np.isclose(scores, threshold))  # never on a score


def test_best_separation_takes_the_middle_of_the_widest_gap():
    threshold, accuracy = m.best_separation(np.array([0.1, 0.2, 0.8, 0.9]), np.array([False, False, True, True]))
    assert accuracy == 1.0 and threshold == pytest.approx(0.5)


@pytest.mark.parametrize("seed", range(5))
def test_roc_auc_eer_agree_with_sklearn(seed):
    a, b, issame = _pairs(300, 700, noise=1.5, seed=seed)
    scores = m.cosine_scores(a, b)
    roc = m.roc_curve(scores, issame)
    fpr, tpr, thresholds = sk_roc_curve(issame, scores, drop_intermediate=False)
    np.testing.assert_allclose(roc.far, fpr)
    np.testing.assert_allclose(roc.tar, tpr)
    np.testing.assert_allclose(roc.thresholds[1:], thresholds[1:])
    assert m.auc(roc) == pytest.approx(roc_auc_score(issame, scores), abs=1e-12)
    reference = brentq(lambda x: 1.0 - x - interp1d(fpr, tpr)(x), 0.0, 1.0)
    assert m.eer(roc) == pytest.approx(reference, abs=1e-9)
    for far in (1e-1, 1e-2):
        assert m.tar_at_far(roc, far) == pytest.approx(float(np.max(tpr[fpr <= far])))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.booleans()), min_size=2, max_size=40))
def test_auc_with_ties_matches_sklearn(rows):
    scores = np.array([r[0] for r in rows], float)
    issame = np.array([r[1] for r in rows])
    if issame.all() or not issame.any():
        with pytest.raises(ValueError, match="both same and different"):
            m.roc_curve(scores, issame)
        return
    roc = m.roc_curve(scores, issame)
    assert m.auc(roc) == pytest.approx(roc_auc_score(issame, scores), abs=1e-12)
    fpr, tpr, _ = sk_roc_curve(issame, scores, drop_intermediate=False)
    np.testing.assert_allclose(roc.far, fpr)
    np.testing.assert_allclose(roc.tar, tpr)
    assert 0.0 <= m.eer(roc) <= 1.0


def test_evaluate_pairs_flip_and_protocols():
    a, b, issame = _pairs(100, 100, noise=0.8, seed=7)
    plain = m.evaluate_pairs(a, b, issame, "insightface")
    assert plain.accuracy is not None and plain.accuracy_flip is None and not plain.flip
    # flipped embeddings identical to the originals: sums are 2x, same normalized result
    flipped = m.evaluate_pairs(a, b, issame, "insightface", flip1=a, flip2=b)
    assert flipped.flip and flipped.accuracy_flip.mean == pytest.approx(plain.accuracy.mean)
    cosine = m.evaluate_pairs(a, b, issame, "lfw-cosine")
    assert cosine.accuracy.protocol == "lfw-cosine"
    roc_only = m.evaluate_pairs(a, b, issame, "roc")
    assert roc_only.accuracy is None
    measured = roc_only.measured()
    assert set(measured) >= {"1-EER", "EER", "AUC", "TAR@FAR=1e-1", "TAR@FAR=1e-2", "TAR@FAR=1e-3", "TAR@FAR=1e-4"}
    assert measured["1-EER"] == pytest.approx(1 - measured["EER"])
    with pytest.raises(ValueError, match="unknown protocol"):
        m.evaluate_pairs(a, b, issame, "nope")
