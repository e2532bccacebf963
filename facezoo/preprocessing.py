"""The preprocessing contract every part of facezoo shares: the 5-point template, alignment,
crop checks and the BGR pixels → model tensor step.

The published accuracies were measured on 5-point aligned crops: insightface's ``norm_crop``
fits a similarity transform to all five landmarks by least squares (Umeyama) and warps the image
onto the template. Without alignment, verification collapses, so a raw photo is an error here
unless the caller asks for a plain resize on purpose. OpenCV is imported where it is used, so that
commands which never touch an image (``facezoo list``) start without it.
"""

from __future__ import annotations

import numpy as np

from facezoo.errors import FacezooError

#: The standard 5-point template of a 112x112 crop (x, y): eyes, nose tip, mouth corners.
TEMPLATE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)
#: The crop the template is defined for; a 112x96 model takes its centre (8 columns off each side).
TEMPLATE_SIZE = (112, 112)


class ImageError(FacezooError):
    """An image cannot be read, is not an aligned face crop, or its landmarks do not fit it."""


def template_frame(size: tuple[int, int]) -> tuple[float, float]:
    """Scale and x offset that map 112x112 template coordinates into a crop of ``size`` = (H, W):
    scaled by H/112 and centred in x, so 112x96 subtracts 8 from x, as sphereface's crops are made."""
    height, width = size
    scale = height / 112.0
    return scale, (width - 112.0 * scale) / 2.0


def template(size: tuple[int, int] = TEMPLATE_SIZE) -> np.ndarray:
    """The 5 points (x, y) for a crop of ``size`` = (H, W)."""
    scale, dx = template_frame(size)
    return TEMPLATE_112 * scale + np.array([dx, 0.0])


def similarity_transform(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The 2x3 similarity (rotation, uniform scale, translation) that maps ``source`` points onto
    ``target`` with the least squared error over all points (Umeyama 1991; no reflection)."""
    src = np.asarray(source, np.float64).reshape(-1, 2)
    dst = np.asarray(target, np.float64).reshape(-1, 2)
    if src.shape != dst.shape or len(src) < 2:
        raise ImageError(f"need matching point sets of at least 2 points, got {src.shape} and {dst.shape}")
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    src_var = float((src_c**2).sum(axis=1).mean())
    if src_var < 1e-12:
        raise ImageError("landmarks are degenerate: all points coincide")
    covariance = dst_c.T @ src_c / len(src)
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1.0
    rotation = u @ sign @ vt
    scale = float(np.trace(np.diag(singular) @ sign)) / src_var
    translation = dst_mean - scale * rotation @ src_mean
    return np.hstack([scale * rotation, translation[:, None]])


def align_face(image: np.ndarray, landmarks: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Warp ``image`` so that its 5 landmarks land on the template of ``size`` (H, W)."""
    import cv2

    points = np.asarray(landmarks, np.float64)
    if points.shape != (5, 2):
        raise ImageError(f"expected 5 (x, y) landmarks, got shape {points.shape}")
    if not np.all(np.isfinite(points)):
        raise ImageError("landmarks contain NaN or infinity")
    matrix = similarity_transform(points, template(size))
    return cv2.warpAffine(image, matrix, (size[1], size[0]), borderValue=0.0)


def accepts_as_crop(image_size: tuple[int, int], size: tuple[int, int]) -> bool:
    """Whether an image of ``image_size`` (H, W) is an aligned crop for a model of ``size``."""
    return tuple(image_size) == tuple(size) or (tuple(size) == (112, 96) and tuple(image_size) == TEMPLATE_SIZE)


def fit_crop(image: np.ndarray, size: tuple[int, int], *, resize: bool = False, label: str = "image") -> np.ndarray:
    """An aligned crop brought to the model's ``size`` (H, W).

    A crop of the model's size is taken as is; a 112x112 crop for a 112x96 model loses 8 columns
    on each side. Anything else is not an aligned face crop: an error, unless ``resize`` asks
    for a plain resize on purpose.
    """
    import cv2

    height, width = size
    shape = tuple(image.shape[:2])
    if shape == (height, width):
        return image
    if accepts_as_crop(shape, size):
        return image[:, 8:104]
    if not resize:
        allowed = f"{height}×{width}" + (" (or 112×112)" if (height, width) == (112, 96) else "")
        raise ImageError(
            f"{label}: {shape[0]}×{shape[1]} is not an aligned face crop for this model, which takes {allowed} "
            "5-point aligned crops. Give the 5 landmarks of each face (--landmarks, or landmarks=N×5×2) "
            "to align it, or --resize (resize=True) to resize the whole image anyway"
        )
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


def to_model_input(images_bgr_uint8: np.ndarray, channel_order: str) -> np.ndarray:
    """BGR uint8 images (H x W x 3 or N x H x W x 3) -> float32 NCHW in ``channel_order``, values 0..255.

    GRAY is OpenCV's BGR -> gray conversion (what cv2.imread(..., IMREAD_GRAYSCALE) gives for a
    losslessly stored image), one channel.
    """
    import cv2

    images = np.asarray(images_bgr_uint8)
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected H x W x 3 or N x H x W x 3 BGR images, got shape {images.shape}")
    order = channel_order.upper()
    if order == "BGR":
        out = images
    elif order == "RGB":
        out = images[..., ::-1]
    elif order == "GRAY":
        out = np.stack([cv2.cvtColor(np.ascontiguousarray(im, dtype=np.uint8), cv2.COLOR_BGR2GRAY)
                        for im in images])[..., None]
    else:
        raise ValueError(f"unknown channel order {channel_order!r}; expected BGR, RGB or GRAY")
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2), dtype=np.float32)


__all__ = [
    "ImageError",
    "TEMPLATE_112",
    "TEMPLATE_SIZE",
    "accepts_as_crop",
    "align_face",
    "fit_crop",
    "similarity_transform",
    "template",
    "template_frame",
    "to_model_input",
]
