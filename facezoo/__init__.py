"""facezoo: face-recognition checkpoints turned into deployable, verified models."""

from facezoo._onednn import MINDSPORE_ONEDNN  # before anything imports MindSpore; see the module

__version__ = "0.1.0"
