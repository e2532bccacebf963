"""Results written whole or not at all: a temporary name beside the target, renamed when complete."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary path in the target's folder; it replaces `path` if the block succeeds.

    `suffix` matters to writers that pick the format from the name (matplotlib, np.save).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(handle)
    try:
        yield Path(temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    with atomic_path(path) as temporary:
        temporary.write_bytes(data)
    return Path(path)


def replace_tree(staging: str | Path, target: str | Path) -> Path:
    """Put a finished file or folder in place with renames only: readers see the old one or the new one.

    ``staging`` must be on the target's file system (beside it); an old target is moved aside,
    then removed.
    """
    staging, target = Path(staging), Path(target)
    retired = None
    if target.exists():
        retired = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent)) / target.name
        os.replace(target, retired)
    os.replace(staging, target)
    if retired is not None:
        shutil.rmtree(retired.parent, ignore_errors=True)
    return target
