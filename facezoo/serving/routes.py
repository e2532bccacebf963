"""The task routes: ``POST /v1/models/NAME/<route>``, answered for every model whose task lists the
route in its ``serving_routes`` (facezoo.tasks). One table, by route name: a new task's route is one
entry here (face detection: ``detect``); nothing here asks which task a model has.
"""

from __future__ import annotations

import contextlib
from typing import Awaitable, Callable

import numpy as np
from fastapi import Request
from starlette.concurrency import run_in_threadpool

from facezoo.numerics import l2_normalize
from facezoo.serving.config import ServeConfig
from facezoo.serving.errors import BadRequest
from facezoo.serving.faces import (MAX_FILES, detect_photos, form_files, prepare_faces, read_blobs, read_landmarks,
                                   read_threshold)
from facezoo.serving.models import ServedModel

Route = Callable[[ServedModel, Request, ServeConfig], Awaitable[dict]]


async def embed(served: ServedModel, request: Request, config: ServeConfig) -> dict:
    """Multipart ``images`` (aligned crops, or photos with ``landmarks``) → L2-normalized embeddings."""
    async with _multipart(request) as form:
        files = form_files(form, "images")
        if not files:
            raise BadRequest("images: no image files; send multipart/form-data with one or more 'images' files")
        landmarks = read_landmarks(form, len(files))
        blobs = await read_blobs([(f"images[{i}]", f) for i, f in enumerate(files)])
    faces = await run_in_threadpool(prepare_faces, served.wrapper, blobs, landmarks, config.max_image_pixels,
                                    served.detector)
    embeddings = l2_normalize(served.wrapper.pick(await served.infer(faces.batch, config.timeout_s)))
    answer = {"model": served.name, "dimension": int(embeddings.shape[1]), "embeddings": embeddings.tolist()}
    if faces.faces:
        answer["faces"] = [face.as_dict() for face in faces.faces]
    return answer


async def verify(served: ServedModel, request: Request, config: ServeConfig) -> dict:
    """Multipart ``image1`` and ``image2`` → their cosine and same/different at the threshold."""
    async with _multipart(request) as form:
        files = []
        for field_name in ("image1", "image2"):
            found = form_files(form, field_name)
            if len(found) != 1:
                raise BadRequest(f"{field_name}: expected exactly one image file, got {len(found)}")
            files.append((field_name, found[0]))
        threshold, source = read_threshold(form, request.query_params.get("threshold")), "request"
        if threshold is None:
            threshold, source = served.threshold, served.threshold_source
        if threshold is None:
            raise BadRequest(f"threshold: model {served.name!r} has no verification threshold (no "
                             "verification_threshold in the registry, no facezoo serve --threshold); "
                             "give one: ?threshold=0.36 or a 'threshold' form field")
        landmarks = read_landmarks(form, 2)
        blobs = await read_blobs(files)
    faces = await run_in_threadpool(prepare_faces, served.wrapper, blobs, landmarks, config.max_image_pixels,
                                    served.detector)
    first, second = l2_normalize(served.wrapper.pick(await served.infer(faces.batch, config.timeout_s)))
    cosine = float(np.dot(first.astype(np.float64), second.astype(np.float64)))
    answer = {"model": served.name, "cosine": cosine, "threshold": threshold, "threshold_source": source,
              "same_person": cosine >= threshold}
    if faces.faces:
        answer["faces"] = {label: face.as_dict() for label, face in zip(("image1", "image2"), faces.faces)}
    return answer


async def detect(served, request: Request, config: ServeConfig) -> dict:
    """Multipart ``images`` (photos) → each photo's faces: box, score, five landmarks."""
    async with _multipart(request) as form:
        files = form_files(form, "images")
        if not files:
            raise BadRequest("images: no image files; send multipart/form-data with one or more 'images' files")
        blobs = await read_blobs([(f"images[{i}]", f) for i, f in enumerate(files)])
    photos = await run_in_threadpool(detect_photos, served, blobs, config.max_image_pixels)
    return {"detector": served.name, "images": photos}


ROUTES: dict[str, Route] = {"embed": embed, "verify": verify, "detect": detect}


@contextlib.asynccontextmanager
async def _multipart(request: Request):
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise BadRequest(f"Content-Type: expected multipart/form-data with image files, got {content_type or 'none'!r}")
    form = await request.form(max_files=MAX_FILES, max_fields=16)
    try:
        yield form
    finally:
        await form.close()


__all__ = ["ROUTES", "Route", "detect", "embed", "verify"]
