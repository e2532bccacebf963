"""One validation loop and one record for every converted artifact, at every precision.

The converter (FP32, FP16, INT8, BF16 while converting), `facezoo check` and the INT8/BF16 gate
all run an artifact through :func:`validate_artifact`: load it on one backend, run a batch and
its first rows one at a time, and let the model's task compare the outputs with the original's
(:meth:`facezoo.tasks.Task.compare`). Each gives one :class:`ArtifactCheck`.
"""

from facezoo.validation.loop import (SINGLE_RUNS, failed_check, run_batch_and_singles, validate_artifact, validate_decoded,
                                     validate_file)
from facezoo.validation.record import ArtifactCheck

__all__ = ["ArtifactCheck", "SINGLE_RUNS", "failed_check", "run_batch_and_singles", "validate_artifact",
           "validate_decoded", "validate_file"]
