"""A face detector as the server holds it: each of its nets a served model (KServe raw heads,
dynamically batched), and the task's decoder running photos through them.

The nets are served under the detector's name (a one-net detector, ``/v2/models/yunet/infer``) or
``NAME-PART`` (``/v2/models/mtcnn-pnet/infer``); ``/v1/models/NAME/detect`` takes photos.
"""

from __future__ import annotations

import numpy as np

from facezoo.errors import FacezooError
from facezoo.runtime import load, resolve_artifact
from facezoo.runtime.backends import backend_for
from facezoo.runtime.detector import detector_design, is_detector
from facezoo.serving.batcher import BatchingOptions
from facezoo.serving.errors import Unavailable
from facezoo.serving.models import ModelChoice, ServedModel
from facezoo.tasks.detection import TASK as DETECTION_TASK
from facezoo.tasks.detection import FaceDetector
from facezoo.tasks.detectors import DetectorArchitecture, Face

class ServedDetector:
    """The detector behind ``/detect`` (and the photo path of ``/embed`` and ``/verify``)."""

    routes = ("detect",)

    def __init__(self, name: str, nets: dict[str, ServedModel], architecture: DetectorArchitecture, settings: dict,
                 timeout_s: float):
        self.name = name
        self.nets = nets  # by part
        self.timeout_s = timeout_s
        self.task = DETECTION_TASK
        # the task's decoder, its nets called through the served models' batchers
        self.detector = FaceDetector({part: _Net(self, part) for part in nets}, architecture, **settings)

    @property
    def served_nets(self) -> dict[str, ServedModel]:
        """The nets by the name KServe serves them under."""
        return {served.name: served for served in self.nets.values()}

    def detect(self, image: np.ndarray) -> list[Face]:
        """Faces in one BGR photo; runs on a worker thread, its nets' batches shared with other requests."""
        return self.detector.detect(image)

    def _run(self, part: str, batch: np.ndarray) -> dict[str, np.ndarray]:
        served = self.nets[part]
        future = served.batcher.submit(served.model.prepare(batch))
        try:
            return future.result(self.timeout_s)
        except TimeoutError:
            future.cancel()
            raise Unavailable(f"detector {self.name!r}: no result within {self.timeout_s:g} s (--timeout-s); "
                              "the server is busy, retry later") from None

    def metadata(self) -> dict:
        return {"name": self.name, "task": DETECTION_TASK.name, "nets": [served.name for served in self.nets.values()],
                "score_threshold": self.detector.score_threshold}

    def close(self) -> None:
        for served in self.nets.values():
            served.close()


class _Net:
    """One net as the FaceDetector sees it: ``infer`` goes through the served model's batcher."""

    def __init__(self, owner: ServedDetector, part: str):
        self.owner, self.part = owner, part

    def infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        return self.owner._run(self.part, batch)


def is_detector_choice(choice: ModelChoice) -> bool:
    """Whether a zoo name or file names a converted face detector (by its model card)."""
    return is_detector(resolve_artifact(choice.model, choice.converted_dir, choice.format, choice.precision))


def open_detector(choice: ModelChoice, batching: BatchingOptions, timeout_s: float, on_batch=None) -> ServedDetector:
    """Load every net of a converted detector (zoo name or file) for serving."""
    artifact = resolve_artifact(choice.model, choice.converted_dir, choice.format, choice.precision)
    arch, settings = detector_design(artifact)
    name = artifact.card.model
    hint = "THROUGHPUT" if backend_for(artifact.path, choice.backend) == "openvino" else None
    nets: dict[str, ServedModel] = {}
    try:
        for part, path in artifact.files.items():
            part = part or arch.parts[0]
            model = load(path, device=choice.device, backend=choice.backend, performance_hint=hint)
            net_name = name if len(artifact.files) == 1 else f"{name}-{part}"
            try:
                nets[part] = ServedModel(net_name, model, batching, on_batch=on_batch)
            except FacezooError:
                model.close()
                raise
    except BaseException:
        for served in nets.values():
            served.close()
        raise
    return ServedDetector(name, nets, arch, settings, timeout_s)


__all__ = ["ServedDetector", "is_detector_choice", "open_detector"]
