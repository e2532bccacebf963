"""Run converted models through OpenVINO, ONNX Runtime or MindSpore, on CPU, GPU or Ascend.

    from facezoo.runtime import load, Embedder
    model = load("converted/arcface/FP32/arcface.xml")          # OpenVINO on CPU
    embeddings = Embedder(model)([face_a, face_b])              # L2-normalized
    faces = Detector("converted/yunet/FP32/yunet.xml").detect(photo)  # boxes, scores, landmarks
"""

from facezoo.runtime.backends import BackendOptions, open_backend
from facezoo.runtime.errors import BackendError, DeviceUnavailableError, InputError, ModelNotFoundError, NoFaceError
from facezoo.runtime.devices import available_devices
from facezoo.preprocessing import ImageError, align_face
from facezoo.numerics import cosine_similarity, l2_normalize
from facezoo.runtime.detector import Detector, Face
from facezoo.runtime.embedder import Embedder, read_image
from facezoo.runtime.model import FaceModel, TensorSpec, load
from facezoo.runtime.pipeline import FacePipeline, PhotoFaces, largest
from facezoo.runtime.resolve import Artifact, find_artifacts, resolve_artifact

__all__ = [
    "Artifact",
    "BackendError",
    "BackendOptions",
    "Detector",
    "DeviceUnavailableError",
    "Embedder",
    "Face",
    "FaceModel",
    "FacePipeline",
    "ImageError",
    "InputError",
    "ModelNotFoundError",
    "NoFaceError",
    "PhotoFaces",
    "TensorSpec",
    "align_face",
    "available_devices",
    "cosine_similarity",
    "find_artifacts",
    "l2_normalize",
    "largest",
    "load",
    "open_backend",
    "read_image",
    "resolve_artifact",
]
