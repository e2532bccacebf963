"""Faces drawn on a photo: box, five landmarks (ArcFace order, one colour each) and the score."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from facezoo.tasks.detectors import Face

BOX = (0, 220, 0)  # BGR
#: left eye, right eye, nose, left mouth corner, right mouth corner (the image's left and right)
LANDMARK_COLOURS = ((255, 0, 0), (0, 0, 255), (0, 255, 255), (255, 0, 255), (255, 255, 0))


def draw_faces(image: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
    """A copy of the BGR photo with ``faces`` drawn on it, lines scaled to the photo's size."""
    import cv2

    canvas = np.ascontiguousarray(image).copy()
    thickness = max(1, round(max(canvas.shape[:2]) / 400))
    for face in faces:
        x1, y1, x2, y2 = (int(round(v)) for v in face.box)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), BOX, thickness, cv2.LINE_AA)
        for (x, y), colour in zip(np.asarray(face.landmarks).reshape(5, 2), LANDMARK_COLOURS):
            cv2.circle(canvas, (int(round(x)), int(round(y))), thickness + 1, colour, -1, cv2.LINE_AA)
        cv2.putText(canvas, f"{face.score:.2f}", (x1, max(y1 - 4, 10)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.4 * thickness, BOX, thickness, cv2.LINE_AA)
    return canvas


__all__ = ["LANDMARK_COLOURS", "draw_faces"]
