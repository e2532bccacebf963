"""`facezoo serve --gallery G`: galleries over HTTP.

    POST   /v1/galleries/G/identify           multipart images; query top_k, threshold
    POST   /v1/galleries/G/identities         multipart identity (text) and images: enroll
    DELETE /v1/galleries/G/identities/NAME    remove an identity
    GET    /v1/galleries/G                    the gallery's model, threshold and identities
    GET    /v1/galleries                      every gallery served

A gallery is served with the model whose embeddings it holds (checked at start: the same model
and weights). Images go through the same decoding limits as /embed; with the server's
``--detector``, images are photos: enrolling takes each photo's largest face, identifying every
face. Refusals are 4xx naming the field: unknown gallery or identity 404, a face enrolled before
409, an empty gallery 409, no face in a photo 422.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool

from facezoo.errors import FacezooError
from facezoo.gallery import Face, Gallery, GalleryError, ModelIdentity
from facezoo.gallery.gallery import check_identity_name
from facezoo.numerics import l2_normalize
from facezoo.serving.config import ServeConfig
from facezoo.serving.errors import BadRequest, ModelNotServed, Unprocessable
from facezoo.serving.faces import _DECODING, decode_image, form_files, read_blobs, read_threshold
from facezoo.serving.routes import _multipart

MAX_TOP_K = 100
LIST_LIMIT = 1000  # identities listed by GET /v1/galleries/G unless ?limit= says otherwise


@dataclass
class ServedGallery:
    """A gallery, the served model that embeds for it, and the server's detector (if any)."""

    name: str
    gallery: Gallery
    served: object  # facezoo.serving.models.ServedModel
    registry_threshold: float | None
    write_lock: threading.Lock = field(default_factory=threading.Lock)

    def close(self) -> None:
        try:
            self.gallery.checkpoint()
        finally:
            self.gallery.close()


def open_gallery(path: Path, models: dict) -> ServedGallery:
    """Open ``path`` and pair it with the served model of its embeddings (refused when none is, or
    when the served one is another model or other weights)."""
    gallery = Gallery.open(path)
    try:
        model = gallery.info.model
        served = models.get(model) or next((m for m in models.values() if m.artifact.model == model), None)
        if served is None:
            raise GalleryError(f"--gallery {path}: it holds embeddings of {model}, which this server does not serve; "
                               f"add {model} to the models")
        gallery.check_model(ModelIdentity.of_artifact(served.artifact, int(served.outputs[0].shape[-1])))
        return ServedGallery(Path(path).name, gallery, served, served.threshold)
    except BaseException:
        gallery.close()
        raise


def add_gallery_routes(app: FastAPI, galleries: dict[str, ServedGallery], config: ServeConfig) -> None:
    def lookup(name: str) -> ServedGallery:
        found = galleries.get(name)
        if found is None:
            raise ModelNotServed(f"unknown gallery {name!r}; this server has {', '.join(map(repr, galleries)) or 'none'}")
        return found

    @app.api_route("/v1/galleries", methods=["GET", "HEAD"])
    async def list_galleries():
        return {"galleries": [await run_in_threadpool(_summary, g, 0) for g in galleries.values()]}

    @app.api_route("/v1/galleries/{name}", methods=["GET", "HEAD"])
    async def describe(name: str, limit: int = LIST_LIMIT):
        if limit < 0:
            raise BadRequest(f"limit: expected 0 or more, got {limit}")
        return await run_in_threadpool(_summary, lookup(name), limit)

    @app.post("/v1/galleries/{name}/identify")
    async def identify(name: str, request: Request):
        target = lookup(name)
        top_k = _top_k(request.query_params.get("top_k"))
        async with _multipart(request) as form:
            files = form_files(form, "images")
            if not files:
                raise BadRequest("images: no image files; send multipart/form-data with one or more 'images' files")
            given = read_threshold(form, request.query_params.get("threshold"))
            blobs = await read_blobs([(f"images[{i}]", f) for i, f in enumerate(files)])
        records, batch = await run_in_threadpool(_query_faces, target, blobs, config.max_image_pixels)
        vectors = await _embed(target, batch, config)
        threshold, source = target.gallery.threshold(given, target.registry_threshold)
        answers = await run_in_threadpool(target.gallery.identify, vectors, threshold, top_k)
        return {"gallery": name, "model": target.gallery.info.model, "threshold": threshold,
                "threshold_source": source, "top_k": top_k,
                "results": [{**record, **answer.as_dict()} for record, answer in zip(records, answers)]}

    @app.post("/v1/galleries/{name}/identities")
    async def enroll(name: str, request: Request):
        target = lookup(name)
        async with _multipart(request) as form:
            identity = form.get("identity")
            if not isinstance(identity, str) or not identity:
                raise BadRequest("identity: expected a text field naming whose images these are")
            check_identity_name(identity)
            files = form_files(form, "images")
            if not files:
                raise BadRequest("images: no image files; send multipart/form-data with one or more 'images' files")
            blobs = await read_blobs([(f"images[{i}]", f) for i, f in enumerate(files)])
        faces, batch = await run_in_threadpool(_enrollment_faces, target, identity, blobs, config.max_image_pixels)
        vectors = await _embed(target, batch, config)

        def add() -> int:
            with target.write_lock:
                added = target.gallery.add(faces, vectors)
                target.gallery.checkpoint()
                return added

        added = await run_in_threadpool(add)
        return {"gallery": name, "identity": identity, "added": added,
                "faces": target.gallery.identities().get(identity, 0)}

    @app.delete("/v1/galleries/{name}/identities/{identity}")
    async def remove(name: str, identity: str):
        target = lookup(name)

        def drop() -> int:
            with target.write_lock:
                removed = target.gallery.remove(identity)
                target.gallery.checkpoint()
                return removed

        return {"gallery": name, "identity": identity, "removed": await run_in_threadpool(drop)}


def _summary(target: ServedGallery, limit: int) -> dict:
    info, identities = target.gallery.info, target.gallery.identities()
    listed = list(identities.items())[:limit]
    return {"name": target.name, "model": info.model, "dim": info.dim, "precision": info.precision,
            "precisions": info.precisions, "threshold": info.threshold, "store": info.store,
            "identities_total": len(identities), "faces_total": sum(identities.values()),
            "identities": [{"identity": name, "faces": n} for name, n in listed]}


def _top_k(raw: str | None) -> int:
    if raw is None or raw == "":
        return 5
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"top_k: expected an integer, got {raw[:40]!r}") from None
    if not 1 <= value <= MAX_TOP_K:
        raise BadRequest(f"top_k: {value} is not between 1 and {MAX_TOP_K}")
    return value


def _crop(target: ServedGallery, image: np.ndarray, label: str, landmarks=None) -> np.ndarray:
    try:
        return target.served.wrapper.prepare([image], landmarks)
    except FacezooError as exc:
        raise BadRequest(f"{label}: {str(exc).removeprefix('image 0: ')}") from None


def _query_faces(target: ServedGallery, blobs, max_pixels: int) -> tuple[list[dict], np.ndarray]:
    """Every face of each image (a crop: the image itself) and the model's prepared batch."""
    detector = target.served.detector
    records, crops = [], []
    for label, data in blobs:
        with _DECODING:
            image = decode_image(data, label, max_pixels)
            where = {"path": _file_name(label), "field": label.split(" (", 1)[0]}
            if detector is None:
                records.append({**where, "face": 0})
                crops.append(_crop(target, image, label))
                continue
            found = detector.detect(image)
            for index, face in enumerate(found):
                records.append({**where, "face": index, **face.as_dict()})
                crops.append(_crop(target, image, label, np.asarray(face.landmarks, np.float32)[None]))
            del image
    if not crops:
        raise Unprocessable("no face found in any of the images")
    return records, target.served.model.prepare(np.concatenate(crops))


def _file_name(label: str) -> str:
    """The client's file name of an upload labelled "images[0] ('a.png')" (else the field)."""
    field_name, _, rest = label.partition(" (")
    return rest[1:-2] if rest.startswith("'") and rest.endswith("')") else field_name


def _enrollment_faces(target: ServedGallery, identity: str, blobs, max_pixels: int) -> tuple[list[Face], np.ndarray]:
    """One face per image: the largest with a detector, else the image as an aligned crop."""
    detector = target.served.detector
    faces, crops, seen = [], [], {}
    for label, data in blobs:
        sha = hashlib.sha256(data).hexdigest()
        if sha in seen:
            raise GalleryError(f"{label}: the same image as {seen[sha]}; nothing was added")
        seen[sha] = label
        with _DECODING:
            image = decode_image(data, label, max_pixels)
            if detector is None:
                faces.append(Face(identity, sha, 0, f"upload {label}"))
                crops.append(_crop(target, image, label))
                continue
            found = detector.detect(image)
            if not found:
                raise Unprocessable(f"no face found in {label}")
            index = max(range(len(found)), key=lambda k: found[k].area)  # the person the photo is of
            face = found[index]
            faces.append(Face(identity, sha, index, f"upload {label}"))
            crops.append(_crop(target, image, label, np.asarray(face.landmarks, np.float32)[None]))
            del image
    return faces, target.served.model.prepare(np.concatenate(crops))


async def _embed(target: ServedGallery, batch: np.ndarray, config: ServeConfig) -> np.ndarray:
    return l2_normalize(target.served.wrapper.pick(await target.served.infer(batch, config.timeout_s)))


__all__ = ["ServedGallery", "add_gallery_routes", "open_gallery"]
