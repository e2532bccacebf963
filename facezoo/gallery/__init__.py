"""Galleries: enrolled identities' face embeddings in a vector store, and 1:N identification.

``Gallery.create(folder, ModelIdentity.of_embedder(embedder))``, ``Gallery.open(folder)``,
``gallery.add(faces, vectors)``, ``gallery.identify(vectors, threshold, top_k)``. The store is a
folder (SQLite + a sign-bit and float16 index, :mod:`facezoo.gallery.folder`) or Milvus
(:mod:`facezoo.gallery.milvus`), chosen by the store URI given at creation.
"""

from facezoo.gallery.errors import (CorruptGallery, DuplicateFace, EmptyGallery, GalleryError, GalleryNotFound,
                                    IdentityNotFound, ModelMismatch)
from facezoo.gallery.gallery import Candidate, Gallery, Identification
from facezoo.gallery.info import GalleryInfo, ModelIdentity
from facezoo.gallery.store import Face, Hit

__all__ = ["Candidate", "CorruptGallery", "DuplicateFace", "EmptyGallery", "Face", "Gallery", "GalleryError",
           "GalleryInfo", "GalleryNotFound", "Hit", "Identification", "IdentityNotFound", "ModelIdentity",
           "ModelMismatch"]
