"""What can go wrong with a gallery, each error with the HTTP status `facezoo serve` answers with."""

from __future__ import annotations

from facezoo.errors import FacezooError


class GalleryError(FacezooError):
    """A gallery operation refused; the message names the gallery, identity, file or model at fault."""

    status = 400


class GalleryNotFound(GalleryError):
    status = 404


class IdentityNotFound(GalleryError):
    status = 404


class ModelMismatch(GalleryError):
    """Embeddings of another model (or other weights) than the gallery's: cosines between them mean nothing."""

    status = 400


class DuplicateFace(GalleryError):
    """The same image (sha256) and face were enrolled before, under this or another identity."""

    status = 409


class EmptyGallery(GalleryError):
    status = 409


class CorruptGallery(GalleryError):
    """A gallery file is damaged; the message says which and how to recover."""

    status = 500


__all__ = ["CorruptGallery", "DuplicateFace", "EmptyGallery", "GalleryError", "GalleryNotFound", "IdentityNotFound",
           "ModelMismatch"]
