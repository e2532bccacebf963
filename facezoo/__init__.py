"""facezoo: face-recognition checkpoints turned into deployable, verified models."""



__version__ = "0.1.0"
