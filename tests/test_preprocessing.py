"""The shared preprocessing contract: template, least-squares alignment, crop checks."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from facezoo import faces, preprocessing
from facezoo.preprocessing import (
    TEMPLATE_112,
    ImageError,
    accepts_as_crop,
    align_face,
    fit_crop,
    similarity_transform,
    template,
)


def _similarity(angle_deg: float, scale: float, shift: tuple[float, float]) -> np.ndarray:
    theta = np.deg2rad(angle_deg)
    rotation = scale * np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    return np.hstack([rotation, np.array(shift)[:, None]])


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:, :2].T + matrix[:, 2]


@pytest.mark.parametrize("angle, scale, shift", [(0.0, 1.0, (0.0, 0.0)), (17.0, 2.3, (120.0, -40.0)),
                                                 (-75.0, 0.4, (3.5, 9.25)), (178.0, 5.0, (-300.0, 410.0))])
def test_similarity_transform_recovers_a_known_transform(angle, scale, shift):
    truth = _similarity(angle, scale, shift)
    photo_points = _apply(np.linalg.inv(np.vstack([truth, [0, 0, 1]]))[:2], TEMPLATE_112)
    estimated = similarity_transform(photo_points, TEMPLATE_112)
    np.testing.assert_allclose(estimated, truth, atol=1e-9, rtol=1e-9)


def test_similarity_transform_is_least_squares_over_all_five_points():
    """With noisy points the fit minimises the summed squared error: no point is dropped
    (RANSAC/LMEDS would fit a subset), and no other similarity does better."""
    rng = np.random.default_rng(3)
    truth = _similarity(10.0, 1.3, (5.0, -2.0))
    source = rng.uniform(0, 200, (5, 2))
    target = _apply(truth, source) + rng.normal(0, 2.0, (5, 2))
    best = similarity_transform(source, target)

    def error(matrix):
        return float(((_apply(matrix, source) - target) ** 2).sum())

    for _ in range(200):
        nudged = _similarity(10.0 + rng.normal(0, 1), 1.3 * (1 + rng.normal(0, 0.01)),
                             tuple(best[:, 2] + rng.normal(0, 0.5, 2)))
        assert error(best) <= error(nudged) + 1e-9
    # an outlier moves the fit: every point counts
    moved = target.copy()
    moved[4] += 40
    assert not np.allclose(similarity_transform(source, moved), best, atol=1e-3)


def test_similarity_transform_never_reflects_and_refuses_degenerate_points():
    mirrored = TEMPLATE_112 * np.array([-1.0, 1.0])
    matrix = similarity_transform(mirrored, TEMPLATE_112)
    assert np.linalg.det(matrix[:, :2]) > 0
    with pytest.raises(ImageError, match="degenerate"):
        similarity_transform(np.ones((5, 2)), TEMPLATE_112)


def test_align_face_puts_landmarks_on_the_template():
    face = faces.synthetic_face(4, 0, (112, 112))
    truth = _similarity(-20.0, 2.5, (300.0, 80.0))
    photo = cv2.warpAffine(face, truth, (700, 560))
    landmarks = _apply(truth, TEMPLATE_112)
    aligned = align_face(photo, landmarks, (112, 112))
    assert np.abs(aligned[16:104, 16:96].astype(int) - face[16:104, 16:96]).mean() < 4
    with pytest.raises(ImageError, match="5 \\(x, y\\) landmarks"):
        align_face(photo, landmarks[:4], (112, 112))


def test_one_template_rule_for_every_crop_size():
    np.testing.assert_allclose(template((112, 96)), TEMPLATE_112 - [8, 0])
    np.testing.assert_allclose(template((224, 224)), TEMPLATE_112 * 2)
    np.testing.assert_allclose(template((128, 128)), TEMPLATE_112 * 128 / 112)
    assert preprocessing.template is template  # the synthetic faces are drawn on the same template


def test_only_aligned_crops_pass_without_resize():
    crop = faces.synthetic_face(1, 0, (112, 112))
    assert accepts_as_crop((112, 112), (112, 96)) and not accepts_as_crop((112, 96), (112, 112))
    assert fit_crop(crop, (112, 112)) is crop
    np.testing.assert_array_equal(fit_crop(crop, (112, 96)), crop[:, 8:104])
    photo = cv2.resize(crop, (640, 480))
    with pytest.raises(ImageError, match=r"photo.jpg: 480×640 is not an aligned face crop.*112×96 \(or 112×112\)"):
        fit_crop(photo, (112, 96), label="photo.jpg")
    assert fit_crop(photo, (112, 96), resize=True).shape == (112, 96, 3)
