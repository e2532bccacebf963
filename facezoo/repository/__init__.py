"""`facezoo export`: converted artifacts laid out as a Triton or OpenVINO Model Server repository.

    from facezoo.repository import ExportOptions, export_model
    export_model(resolve_artifact("arcface", fmt="onnx"), ExportOptions("triton", Path("repo")))

Each model folder is built beside the repository and moved into place whole; an OVMS
config.json keeps the other models it lists.
"""

from facezoo.repository.export import TARGETS, export_model
from facezoo.repository.layout import ExportError, ExportOptions, ExportResult

__all__ = ["ExportError", "ExportOptions", "ExportResult", "TARGETS", "export_model"]
