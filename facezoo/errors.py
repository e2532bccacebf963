"""Errors facezoo reports to a user: each names the file, model or field at fault."""


class FacezooError(Exception):
    """Base of every error facezoo reports to a user."""


class RegistryError(FacezooError):
    """A registry file (model_zoo.yml) is malformed or names an unknown model."""


class DownloadError(FacezooError):
    """A file could not be fetched or failed verification."""


class CheckpointError(FacezooError):
    """A checkpoint cannot be read or does not fit the network."""


class ConversionError(FacezooError):
    """Exporting or validating a converted artifact failed."""
