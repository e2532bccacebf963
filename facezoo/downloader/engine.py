"""Putting each model's files into OUTPUT_DIR/<model>/: cache, then mirrors, then the registry."""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import httpx

from facezoo.downloader import staging
from facezoo.downloader.cache import Cache
from facezoo.downloader.progress import Reporter, make_reporter
from facezoo.downloader.results import DownloadSummary, FileResult
from facezoo.downloader.sources import Candidate, candidates
from facezoo.downloader.staging import StagedFile
from facezoo.downloader.transfer import Listener, Settings, SourceFailed, fetch, make_client
from facezoo.downloader.unpack import unpack
from facezoo.downloader.verify import mismatch
from facezoo.errors import DownloadError, FacezooError
from facezoo.registry import ModelFile, ModelSpec

DEFAULT_TIMEOUT = 60.0


class _Cancelled(BaseException):
    """Another worker was interrupted: stop this transfer too."""


@dataclass
class _Run:
    output_dir: Path
    cache: Cache
    mirrors: tuple[str, ...]
    offline: bool
    settings: Settings
    reporter: Reporter
    cancel: threading.Event


def download_models(
    specs: Iterable[ModelSpec],
    *,
    output_dir: str | Path,
    cache_dir: str | Path | None = None,
    mirrors: Iterable[str] = (),
    offline: bool = False,
    num_attempts: int = 3,
    jobs: int = 1,
    progress: str | Reporter = "rich",
    timeout: float = DEFAULT_TIMEOUT,
    retry_delay: float = 1.0,
) -> DownloadSummary:
    """Fetch, verify and place every file of `specs`; failures are reported, not raised.

    `mirrors` are tried before the registry's sources, as `<mirror>/<model>/<file>`; with
    `offline`, only the cache and local mirrors/sources are used. `retry_delay` is the first
    back-off between attempts (doubling, capped).
    """
    specs = list(specs)
    run = _Run(
        output_dir=Path(output_dir),
        cache=Cache(cache_dir),
        mirrors=tuple(mirrors),
        offline=offline,
        settings=Settings(attempts=max(1, num_attempts), retry_delay=retry_delay, timeout=timeout),
        reporter=make_reporter(progress),
        cancel=threading.Event(),
    )
    try:
        if jobs <= 1 or len(specs) <= 1:
            per_model = [_download_model(run, spec) for spec in specs]
        else:
            pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="facezoo-download")
            try:
                futures = [pool.submit(_download_model, run, spec) for spec in specs]
                per_model = [future.result() for future in futures]
            except BaseException:
                run.cancel.set()
                pool.shutdown(wait=True, cancel_futures=True)
                raise
            pool.shutdown()
    finally:
        run.reporter.close()
    files = [result for results in per_model for result in results]
    return DownloadSummary(files=files, output_dir=run.output_dir, cache_dir=run.cache.root)


def import_file(
    spec: ModelSpec,
    file_name: str | None,
    source_path: str | Path,
    output_dir: str | Path,
    cache_dir: str | Path | None = None,
) -> FileResult:
    """Verify a file obtained by hand and put it where a download would, and into the cache.

    With no sha256 in the registry the file is accepted; its sha256 is in the result so the
    user can pin it. Raises DownloadError on a mismatch (nothing is left under the final name).
    """
    source = Path(source_path).expanduser()
    model_file = _import_target(spec, file_name, source)
    label = f"{spec.name}: {model_file.name}"
    if not source.is_file():
        raise DownloadError(f"{label}: cannot import {source}: no such file")
    cache = Cache(cache_dir)
    folder = Path(output_dir) / spec.name
    dest = folder / model_file.name
    with StagedFile(folder, model_file.name) as staged:
        try:
            with open(source, "rb") as handle:
                staging.copy_stream(handle, staged)
        except OSError as exc:
            raise DownloadError(f"{label}: cannot read {source}: {exc.strerror or exc}") from None
        problem = mismatch(model_file, staged.size, staged.sha256)
        if problem:
            raise DownloadError(f"{label}: {source}: {problem}")
        sha256, size = staged.sha256, staged.size
        with cache.lock(sha256):
            staged.publish(dest)
            _store(cache, dest, sha256)
        if model_file.sha256 is None:
            cache.remember(spec.name, model_file.name, sha256)
    unpacked = tuple(unpack(model_file.unpack, dest, folder, model_file.members)) if model_file.unpack else ()
    return FileResult(spec.name, model_file.name, dest, "imported", size, None, str(source), sha256, unpacked)


def _import_target(spec: ModelSpec, file_name: str | None, source: Path) -> ModelFile:
    if file_name:
        return spec.file(file_name)
    if len(spec.files) == 1:
        return spec.files[0]
    for model_file in spec.files:
        if model_file.name == source.name:
            return model_file
    names = ", ".join(f.name for f in spec.files)
    raise DownloadError(f"{spec.name} has several files ({names}); rename {source.name} to the one it is")


def _store(cache: Cache, path: Path, sha256: str) -> None:
    try:
        cache.store(path, sha256)
    except OSError:
        pass  # a cache that cannot take the file costs a later re-download, nothing more


def _download_model(run: _Run, spec: ModelSpec) -> list[FileResult]:
    client: httpx.Client | None = None

    def get_client() -> httpx.Client:
        nonlocal client
        if client is None:
            client = make_client(run.settings.timeout)
        return client

    results = []
    try:
        for model_file in spec.files:
            if run.cancel.is_set():
                raise _Cancelled()
            try:
                result = _download_file(run, spec, model_file, get_client)
            except FacezooError as exc:
                result = _failed(run, spec, model_file, str(exc))
            except OSError as exc:
                where = exc.filename or run.output_dir
                result = _failed(run, spec, model_file, f"{spec.name}: {model_file.name}: {where}: {exc.strerror or exc}")
            results.append(result)
    finally:
        if client is not None:
            client.close()
    return results


def _failed(run: _Run, spec: ModelSpec, model_file: ModelFile, message: str) -> FileResult:
    run.reporter.error(spec.name, model_file.name, message, final=True)
    dest = run.output_dir / spec.name / model_file.name
    return FileResult(spec.name, model_file.name, dest, "failed", error=message)


def _download_file(run: _Run, spec: ModelSpec, model_file: ModelFile, get_client) -> FileResult:
    folder = run.output_dir / spec.name
    dest = folder / model_file.name
    sha256 = model_file.sha256 or run.cache.recall(spec.name, model_file.name)
    report = run.reporter

    def waiting() -> None:
        report.note(spec.name, model_file.name, "waiting for another download of the same file to finish")

    def corrupt(path: Path) -> None:
        report.note(spec.name, model_file.name, f"cache entry {path} is corrupted; discarded")

    with run.cache.lock(sha256, on_wait=waiting) if sha256 else contextlib.nullcontext():
        result = None
        if sha256:
            # A recalled hash (no sha256 in the registry) has no pinned size.
            hit = run.cache.lookup(sha256, model_file.size, on_corrupt=corrupt)
            if hit:
                folder.mkdir(parents=True, exist_ok=True)
                staging.place(hit, dest)
                size = dest.stat().st_size
                report.start(spec.name, model_file.name, size, str(hit))
                report.done(spec.name, model_file.name, size, "cached", str(hit))
                result = FileResult(spec.name, model_file.name, dest, "cached", size, None, str(hit), sha256)
        if result is None:
            result = _fetch_from_sources(run, spec, model_file, dest, get_client)
    if result.ok and model_file.unpack:
        members = unpack(model_file.unpack, dest, folder, model_file.members)
        result = dataclasses.replace(result, unpacked=tuple(members))
    return result


def _fetch_from_sources(run: _Run, spec: ModelSpec, model_file: ModelFile, dest: Path, get_client) -> FileResult:
    report = run.reporter
    model, name = spec.name, model_file.name
    tried = candidates(spec, model_file, run.mirrors, run.offline)
    failures: list[tuple[Candidate, SourceFailed]] = []
    if not tried:
        return _failed(run, spec, model_file, _explain(run, spec, model_file, failures))
    dest.parent.mkdir(parents=True, exist_ok=True)
    with StagedFile(dest.parent, name) as staged:
        for index, candidate in enumerate(tried):
            listener = _listener(run, model, name, candidate)
            try:
                resumed = fetch(candidate, staged, model_file, client=get_client, settings=run.settings, listener=listener)
                problem = mismatch(model_file, staged.size, staged.sha256)
                if problem and resumed:
                    # The resumed prefix may be stale (the file changed on the server): once more from 0.
                    report.error(model, name, f"{model}: {name}: {candidate.location}: {problem}; fetching it again from the start", final=False)
                    fetch(candidate, staged, model_file, client=get_client, settings=run.settings, listener=listener, allow_resume=False)
                    problem = mismatch(model_file, staged.size, staged.sha256)
                if problem:
                    raise SourceFailed(problem)
            except SourceFailed as exc:
                failures.append((candidate, exc))
                if not exc.quiet and index + 1 < len(tried):
                    report.error(model, name, f"{model}: {name}: {candidate.location}: {exc}; trying the next source", final=False)
                continue
            sha256, size = staged.sha256, staged.size
            staged.publish(dest)
            _store(run.cache, dest, sha256)
            if model_file.sha256 is None:
                run.cache.remember(model, name, sha256)
            report.done(model, name, size, "downloaded", candidate.location)
            return FileResult(model, name, dest, "downloaded", size, None, candidate.location, sha256)
    return _failed(run, spec, model_file, _explain(run, spec, model_file, failures))


def _listener(run: _Run, model: str, name: str, candidate: Candidate) -> Listener:
    report = run.reporter

    def progress(done: int, total: int | None) -> None:
        if run.cancel.is_set():
            raise _Cancelled()
        report.progress(model, name, done, total)

    def retry(attempt: int, attempts: int, reason: str) -> None:
        report.error(model, name, f"{model}: {name}: {candidate.location}: {reason}; retrying ({attempt}/{attempts})", final=False)

    return Listener(start=lambda total: report.start(model, name, total, candidate.location), progress=progress, retry=retry)


def _explain(run: _Run, spec: ModelSpec, model_file: ModelFile, failures: list[tuple[Candidate, SourceFailed]]) -> str:
    """One line saying why a file could not be had: model, file, and each source tried."""
    label = f"{spec.name}: {model_file.name}"
    loud = [(c, e) for c, e in failures if not e.quiet]
    if len(loud) == 1:
        candidate, exc = loud[0]
        return f"{label}: {candidate.location}: {exc}"
    if loud:
        details = "; ".join(f"{c.location}: {e}" for c, e in loud)
        return f"{label}: every source failed: {details}"
    missed = [c.location for c, _ in failures]
    where = f"not in the cache ({run.cache.root})"
    if missed:
        where += f" nor in the mirrors ({', '.join(missed)})"
    if run.offline:
        remote = [c.location for c in candidates(spec, model_file, run.mirrors, False) if not c.local]
        if remote:
            return f"{label}: {where}, and --offline forbids the network (it would come from {remote[0]})"
    if not model_file.sources:
        how = " ".join(spec.how_to_obtain.split()) or "the registry gives no source for it"
        return f"{label}: {where}, and it has no download source: {how}"
    return f"{label}: {where}"
