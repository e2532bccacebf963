"""Accuracy checking at two levels.

- agreement (``facezoo check``): every converted artifact against the ORIGINAL model on the same
  faces: cosine, errors and same/different decision agreement; failing, not warning.
- evaluation (``facezoo evaluate``): a converted model on a verification set (insightface ``.bin``
  or LFW folder) with the upstream protocols, beside the authors' published numbers.
"""

from facezoo.accuracy.agreement import AgreementReport, check_model, check_models, show_agreement
from facezoo.accuracy.datasets import DatasetError, VerificationSet, load_dataset
from facezoo.accuracy.metrics import PROTOCOLS, Evaluation, evaluate_pairs

__all__ = [
    "AgreementReport",
    "DatasetError",
    "Evaluation",
    "PROTOCOLS",
    "VerificationSet",
    "check_model",
    "check_models",
    "evaluate_pairs",
    "load_dataset",
    "show_agreement",
]
