"""Errors a request can cause, each with the HTTP status the server answers with."""

from __future__ import annotations

from facezoo.errors import FacezooError


class ServingError(FacezooError):
    """A request the server refuses; `status` is the HTTP answer, the message names the field."""

    status = 500


class BadRequest(ServingError):
    status = 400


class Unprocessable(ServingError):
    """Well-formed, but nothing to work on: a photo in which the detector found no face."""

    status = 422


class ModelNotServed(ServingError):
    status = 404


class PayloadTooLarge(ServingError):
    status = 413


class Unavailable(ServingError):
    """Overloaded, timed out or shutting down: the client may retry later."""

    status = 503
