"""Where a file may come from: mirrors first, then the registry's sources."""

from __future__ import annotations

import os
import re
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from facezoo.registry import ModelFile, ModelSpec

MIRROR_ENV = "FACEZOO_MIRROR"
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*$")


@dataclass(frozen=True)
class Candidate:
    location: str  # URL or local path, as shown to the user
    local: bool
    kind: str  # "mirror" or "registry"

    @property
    def path(self) -> Path:
        return local_path(self.location)


def is_local(location: str) -> bool:
    scheme = urllib.parse.urlsplit(location).scheme.lower()
    return scheme in ("", "file") or (os.name == "nt" and len(scheme) == 1)


def local_path(location: str) -> Path:
    parts = urllib.parse.urlsplit(location)
    if parts.scheme.lower() == "file":
        return Path(urllib.request.url2pathname(parts.path))
    return Path(location).expanduser()


def mirror_location(mirror: str, model: str, file: str) -> str:
    if is_local(mirror):
        return str(local_path(mirror) / model / file)
    quote = urllib.parse.quote
    return f"{mirror.rstrip('/')}/{quote(model)}/{quote(file)}"


def candidates(spec: ModelSpec, model_file: ModelFile, mirrors: tuple[str, ...] | list[str], offline: bool) -> list[Candidate]:
    """Every place to try, in order; with `offline`, only local ones."""
    found = [Candidate(mirror_location(m, spec.name, model_file.name), is_local(m), "mirror") for m in mirrors]
    found += [Candidate(s, is_local(s), "registry") for s in model_file.sources]
    return [c for c in found if c.local or not offline]


def split_mirror_list(value: str) -> list[str]:
    """Split an os.pathsep-separated list, keeping URLs whole where pathsep is ':'."""
    pieces = [p for p in value.split(os.pathsep)]
    if os.pathsep != ":":
        return [p for p in pieces if p]
    joined: list[str] = []
    i = 0
    while i < len(pieces):
        token = pieces[i]
        i += 1
        if _SCHEME.match(token) and i < len(pieces) and pieces[i].startswith("//"):
            token += ":" + pieces[i]
            i += 1
            # scheme://host:port/...
            host = token.split("://", 1)[1]
            if "/" not in host and i < len(pieces) and re.match(r"^\d+(/|$)", pieces[i]):
                token += ":" + pieces[i]
                i += 1
        if token:
            joined.append(token)
    return joined


def mirrors_from_env() -> list[str]:
    return split_mirror_list(os.environ.get(MIRROR_ENV, ""))
