"""How far OpenVINO's bf16 inference strays from f32 on the same faces."""

from __future__ import annotations

import numpy as np


def bf16_agreement(path: str, faces: int = 16) -> float:
    """Worst cosine between OpenVINO bf16 and f32 embeddings of the same faces."""
    from facezoo.faces import probe_images
    from facezoo.preprocessing import to_model_input
    from facezoo.runtime import l2_normalize, load

    embeddings = []
    for hint in ("f32", "bf16"):
        with load(path, precision_hint=hint) as model:
            _, _, height, width = model.input_spec.shape
            batch = to_model_input(probe_images(faces, (height, width)), model.input_spec.channel_order)
            embeddings.append(l2_normalize(model.wrap().pick(model.infer(batch))))
    return float(np.min(np.sum(embeddings[0] * embeddings[1], axis=1)))
