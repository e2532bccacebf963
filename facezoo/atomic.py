"""Results written whole or not at all: a temporary name beside the target, renamed when complete.

What is published gets the permissions the user's umask gives any new file: mkstemp makes 0600
files, mkdtemp 0700 folders and MindSpore's export 0400 files, which a server running as another
user (Triton or OVMS in a container, a shared model store) could not read.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

_DEFAULT_UMASK = 0o022


def current_umask() -> int:
    """The process's umask, read without setting it (os.umask can only swap, racing other threads)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return _DEFAULT_UMASK


def make_publishable(path: str | Path) -> None:
    """Give a finished file, or a folder and all it holds, the modes a plain new one would have."""
    path, umask = Path(path), current_umask()
    file_mode, folder_mode = 0o666 & ~umask, 0o777 & ~umask
    if not path.is_dir():
        os.chmod(path, file_mode)
        return
    os.chmod(path, folder_mode)
    for root, folders, files in os.walk(path):
        for names, mode in ((folders, folder_mode), (files, file_mode)):
            for name in names:
                entry = os.path.join(root, name)
                if not os.path.islink(entry):  # a link's mode is its target's, which may lie elsewhere
                    os.chmod(entry, mode)


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
        make_publishable(temporary)
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
    make_publishable(staging)
    retired = None
    if target.exists():
        retired = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent)) / target.name
        os.replace(target, retired)
    os.replace(staging, target)
    if retired is not None:
        shutil.rmtree(retired.parent, ignore_errors=True)
    return target
