"""`facezoo gallery create|add|remove|list|reindex` and `facezoo identify`: enrolled identities
and 1:N identification (facezoo.gallery)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer
from rich.table import Table

from facezoo.accuracy.agreement import write_json_atomic
from facezoo.cli.common import console, err_console, reports_errors
from facezoo.errors import FacezooError
from facezoo.gallery import Gallery, GalleryError, ModelIdentity
from facezoo.runtime.resolve import DEFAULT_CONVERTED_DIR

gallery_app = typer.Typer(help="Galleries of enrolled identities (a folder, or a Milvus collection).",
                          no_args_is_help=True)

GalleryArgument = Annotated[Path, typer.Argument(help="The gallery: a folder (it holds the index, or where "
                                                 "the --store of its creation keeps it).")]
ConvertedDir = Annotated[Path, typer.Option("-c", "--converted-dir", help="Where zoo names are looked up.")]
FormatOption = Annotated[Optional[str], typer.Option("--format", help="openvino, onnx or mindir.")]
PrecisionOption = Annotated[Optional[str], typer.Option("--precision", help="FP32, FP16, INT8 or BF16 (the same "
                                                        "weights at another precision are allowed and noted).")]
DeviceOption = Annotated[str, typer.Option("--device", help="CPU, GPU, Ascend or AUTO.")]
BackendOption = Annotated[Optional[str], typer.Option("--backend", help="openvino, onnxruntime or mindspore.")]
DetectorOption = Annotated[Optional[str], typer.Option(
    "--detector", help="A converted face detector: photos in (enrolling: the largest face of each; identifying: "
    "every face), each aligned by its landmarks.")]


def register(app: typer.Typer) -> None:
    app.add_typer(gallery_app, name="gallery")
    app.command("identify")(identify)


# ----------------------------------------------------------------------------------- helpers --

def _embedder(model: str, converted_dir, fmt, precision, device, backend):
    from facezoo.runtime import Embedder

    return Embedder(model, converted_dir=converted_dir, format=fmt, precision=precision, device=device,
                    backend=backend)


def _pipeline(embedder, detector: str | None, converted_dir, device, backend):
    if detector is None:
        return None
    from facezoo.runtime import Detector, FacePipeline

    return FacePipeline(Detector(detector, converted_dir=converted_dir, device=device, backend=backend), embedder)


def _note(note: str | None) -> None:
    if note:
        err_console.print(f"note: {note}", highlight=False)


def _registry_threshold(gallery: Gallery, embedder=None) -> float | None:
    """The registry's verification_threshold for the gallery's model: its card's entry, else the zoo's."""
    card = embedder.artifact.card if embedder is not None else None
    spec = card.spec() if card is not None else None
    if spec is None:
        from facezoo.registry import load_zoo

        try:
            spec = load_zoo().get(gallery.info.model)
        except FacezooError:
            return None
    return spec.verification_threshold


# ------------------------------------------------------------------------------------ create --

@gallery_app.command("create")
@reports_errors
def create(
    gallery: GalleryArgument,
    model: Annotated[str, typer.Option("--model", help="The converted model whose embeddings it holds (zoo name "
                                       "under -c, or a file).")],
    converted_dir: ConvertedDir = DEFAULT_CONVERTED_DIR,
    store: Annotated[Optional[str], typer.Option("--store", help="Where the faces live: none (the folder itself: "
                                                 "SQLite + a sign-bit and float16 index), milvus:FILE.db (Milvus Lite) or "
                                                 "milvus:http://HOST:19530 (a Milvus server or cluster).")] = None,
    threshold: Annotated[Optional[float], typer.Option("--threshold", help="The gallery's own open-set cosine "
                                                       "threshold (else the registry's verification_threshold).")] = None,
    fmt: FormatOption = None,
    precision: PrecisionOption = None,
) -> None:
    """Create an empty gallery for one model's embeddings."""
    from facezoo.runtime import resolve_artifact

    artifact = resolve_artifact(model, converted_dir, fmt, precision)
    identity = ModelIdentity.of_artifact(artifact) if artifact.card is not None else _loaded_identity(artifact)
    with Gallery.create(gallery, identity, store=store, threshold=threshold) as made:
        info = made.info
    where = "in the folder" if info.store == "folder" else f"in {info.store}"
    console.print(f"gallery {gallery}: {info.model} ({info.precision}, {info.dim}-d), {where}", highlight=False)


def _loaded_identity(artifact) -> ModelIdentity:
    from facezoo.runtime import Embedder

    embedder = Embedder(str(artifact.path))
    try:
        return ModelIdentity.of_embedder(embedder)
    finally:
        embedder.close()


# --------------------------------------------------------------------------------------- add --

@gallery_app.command("add")
@reports_errors
def add(
    gallery: GalleryArgument,
    images: Annotated[Optional[list[Path]], typer.Argument(help="The identity's images (aligned crops, or "
                                                           "photos with --detector).")] = None,
    identity: Annotated[Optional[str], typer.Option("--identity", help="Whose images these are.")] = None,
    from_folder: Annotated[Optional[Path], typer.Option("--from-folder", help="DIR/<identity>/*.jpg|png: every "
                                                        "identity of the folder.")] = None,
    from_parquet: Annotated[Optional[Path], typer.Option("--from-parquet", help="The Parquet of `facezoo "
                                                         "embed-dataset`; the identity is the parent folder of "
                                                         "each row's path.")] = None,
    images_root: Annotated[Optional[Path], typer.Option("--images", help="With --from-parquet: the folder "
                                                        "embed-dataset read, to key each row by its image's sha256 "
                                                        "(else by its path).")] = None,
    detector: DetectorOption = None,
    converted_dir: ConvertedDir = DEFAULT_CONVERTED_DIR,
    fmt: FormatOption = None,
    precision: PrecisionOption = None,
    device: DeviceOption = "CPU",
    backend: BackendOption = None,
) -> None:
    """Enroll an identity's images, every identity of a folder, or an embed-dataset Parquet.

    Each identity is committed on its own: if the command stops half-way, the identities already
    added stay and nothing of the one being added does. An image enrolled before is refused."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from facezoo.gallery.enroll import enrollment_faces, identity_folders, parquet_faces

    sources = [from_folder is not None, from_parquet is not None, bool(images)]
    if sum(sources) != 1:
        raise FacezooError("give one of: --identity NAME IMAGE..., --from-folder DIR, --from-parquet FILE")
    if images and identity is None:
        raise FacezooError("--identity NAME: whose images these are")
    if identity is not None and not images:
        raise FacezooError(f"--identity {identity}: give the images to enroll")
    if images_root is not None and from_parquet is None:
        raise FacezooError("--images goes with --from-parquet")
    opened = Gallery.open(gallery)
    try:
        added, people = 0, 0
        if from_parquet is not None:
            if detector is not None:
                raise FacezooError("--detector: a Parquet holds embeddings already")
            groups = parquet_faces(from_parquet, images_root)
            _note("the Parquet does not say which model made it: only the embedding length is checked")
            for name, (faces, vectors) in groups.items():
                added += opened.add(faces, vectors)
                people += 1
        else:
            embedder = _embedder(opened.info.model, converted_dir, fmt, precision, device, backend)
            model = ModelIdentity.of_embedder(embedder)
            _note(opened.check_model(model))
            pipeline = _pipeline(embedder, detector, converted_dir, device, backend)
            work = identity_folders(from_folder) if from_folder is not None else {identity: list(images)}
            columns = (TextColumn("enrolling {task.description}"), BarColumn(), MofNCompleteColumn(),
                       TimeElapsedColumn())
            with Progress(*columns, console=err_console, transient=True, disable=len(work) < 2) as progress:
                task = progress.add_task("", total=len(work))
                for name, paths in work.items():
                    progress.update(task, description=name)
                    faces, vectors = enrollment_faces(name, paths, embedder, pipeline)
                    added += opened.add(faces, vectors, model)
                    people += 1
                    progress.advance(task)
        opened.checkpoint()
        console.print(f"added {added} faces of {people} identit{'y' if people == 1 else 'ies'} to {gallery} "
                      f"(now {len(opened.identities())} identities, {opened.count()} faces)", highlight=False)
    finally:
        opened.close()


@gallery_app.command("remove")
@reports_errors
def remove(
    gallery: GalleryArgument,
    identity: Annotated[str, typer.Option("--identity", help="The identity to remove, with all its faces.")],
) -> None:
    """Remove an identity and all its faces."""
    with Gallery.open(gallery) as opened:
        removed = opened.remove(identity)
        opened.checkpoint()
    console.print(f"removed {identity} ({removed} faces) from {gallery}", highlight=False)


@gallery_app.command("list")
@reports_errors
def list_identities(
    gallery: GalleryArgument,
    as_json: Annotated[bool, typer.Option("--json", help="Print the gallery as JSON.")] = False,
) -> None:
    """The gallery's model and identities."""
    with Gallery.open(gallery) as opened:
        info, identities = opened.info, opened.identities()
    if as_json:
        document = {"gallery": str(gallery), "model": info.model, "dim": info.dim, "precision": info.precision,
                    "precisions": info.precisions, "weights": info.weights, "card_sha256": info.card_sha256,
                    "threshold": info.threshold, "store": info.store, "created": info.created,
                    "identities": [{"identity": name, "faces": n} for name, n in identities.items()]}
        typer.echo(json.dumps(document, indent=1))
        return
    table = Table(title=f"{gallery}: {info.model} ({', '.join(info.precisions)}; {info.dim}-d; {info.store}; "
                        f"threshold {info.threshold if info.threshold is not None else 'from the registry'})")
    table.add_column("identity")
    table.add_column("faces", justify="right")
    for name, n in identities.items():
        table.add_row(name, str(n))
    console.print(table)
    console.print(f"{len(identities)} identities, {sum(identities.values())} faces", highlight=False)


@gallery_app.command("reindex")
@reports_errors
def reindex(gallery: GalleryArgument) -> None:
    """Rebuild the folder gallery's index from its database (after a damaged index file)."""
    with Gallery.open(gallery, load_index=False) as opened:
        rebuild = getattr(opened.store, "reindex", None)
        if rebuild is None:
            raise GalleryError(f"{gallery}: kept in {opened.info.store}, which indexes by itself")
        count = rebuild()
    console.print(f"{gallery}: index rebuilt from its database ({count} faces)", highlight=False)


# ---------------------------------------------------------------------------------- identify --

@reports_errors
def identify(
    gallery: GalleryArgument,
    images: Annotated[Optional[list[Path]], typer.Argument(help="Faces to identify (aligned crops, or photos "
                                                           "with --detector: every face).")] = None,
    embeddings: Annotated[Optional[Path], typer.Option("--embeddings", help="Queries that are embeddings already "
                                                       "(.npy, N×D).")] = None,
    detector: DetectorOption = None,
    top_k: Annotated[int, typer.Option("--top-k", min=1, max=1000, help="Candidates per face.")] = 5,
    threshold: Annotated[Optional[float], typer.Option("--threshold", help="Cosine at or above which the best "
                                                       "candidate is the answer (default: the gallery's, else the "
                                                       "registry's verification_threshold).")] = None,
    json_path: Annotated[Optional[Path], typer.Option("--json", help="Write one record per face here.")] = None,
    converted_dir: ConvertedDir = DEFAULT_CONVERTED_DIR,
    fmt: FormatOption = None,
    precision: PrecisionOption = None,
    device: DeviceOption = "CPU",
    backend: BackendOption = None,
) -> None:
    """Who is this? Each face's nearest enrolled identities, and the answer or nobody (open set)."""
    from facezoo.gallery.enroll import query_faces

    if (embeddings is None) == (not images):
        raise FacezooError("give the images to identify, or --embeddings Q.npy (not both)")
    with Gallery.open(gallery) as opened:
        embedder = None
        if embeddings is not None:
            if detector is not None:
                raise FacezooError("--detector: --embeddings are vectors already")
            try:
                vectors = np.load(embeddings, allow_pickle=False)
            except (OSError, ValueError) as exc:
                raise FacezooError(f"--embeddings {embeddings}: cannot read a .npy array ({exc})") from None
            if vectors.ndim != 2:
                raise FacezooError(f"--embeddings {embeddings}: expected N×{opened.info.dim}, got {vectors.shape}")
            records = [{"path": str(embeddings), "face": row} for row in range(len(vectors))]
            model = None
        else:
            embedder = _embedder(opened.info.model, converted_dir, fmt, precision, device, backend)
            model = ModelIdentity.of_embedder(embedder)
            _note(opened.check_model(model))
            found, vectors = query_faces(list(images), embedder, _pipeline(embedder, detector, converted_dir, device,
                                                                          backend))
            records = [{"path": q.path, "face": q.face, **(q.found.as_dict() if q.found else {})}
                       for q in found]
        cut, source = opened.threshold(threshold, _registry_threshold(opened, embedder))
        answers = opened.identify(vectors, cut, top_k=top_k, model=model)
    results = [{**record, **answer.as_dict()} for record, answer in zip(records, answers)]
    table = Table(title=f"{gallery}: threshold {cut:g} ({source}), top {top_k}")
    for column in ("image", "face", "identity", "cosine", "next"):
        table.add_column(column)
    for result in results:
        others = ", ".join(f"{c['identity']} {c['cosine']:.3f}" for c in result["candidates"][1:3])
        table.add_row(result["path"], str(result["face"]), result["identity"] or "[dim]nobody[/dim]",
                      f"{result['cosine']:.4f}" if result["cosine"] is not None else "", others)
    console.print(table)
    if json_path is not None:
        write_json_atomic(json_path, {"gallery": str(gallery), "model": opened.info.model, "threshold": cut,
                                      "threshold_source": source, "top_k": top_k, "results": results})
