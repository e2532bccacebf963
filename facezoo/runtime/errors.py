"""Errors of facezoo.runtime, in a module of their own so that every runtime module can raise them."""

from facezoo.errors import FacezooError


class BackendError(FacezooError):
    """A backend cannot load or run a file on the requested device."""


class DeviceUnavailableError(BackendError):
    """The device asked for is not on this machine, or not for this backend."""


class PrecisionUnavailableError(DeviceUnavailableError):
    """The model asks for an inference precision this machine's device cannot run."""


class InputError(BackendError):
    """A batch does not fit the model's input contract."""


class ModelNotFoundError(FacezooError):
    """No converted artifact matches what the user named."""





class NoFaceError(FacezooError):
    """A detector found no face in a photo that needed one (CLI: exit 1; HTTP: 422)."""


__all__ = ["BackendError", "DeviceUnavailableError", "InputError", "ModelNotFoundError", "NoFaceError",
           "PrecisionUnavailableError"]
