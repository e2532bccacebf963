"""Temporary files next to their destination: written, hashed as they grow, then renamed.

Nothing ever appears under a final name before it is complete and verified: data goes to
`.<name>.part-<random>` in the destination folder and reaches `<name>` with one atomic rename.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
from pathlib import Path
from typing import BinaryIO

CHUNK = 1 << 20


def temp_name(folder: Path, name: str, kind: str = "part") -> Path:
    return folder / f".{name}.{kind}-{secrets.token_hex(4)}"


class StagedFile:
    """A `.part` file plus a running sha256 of exactly the bytes it holds."""

    def __init__(self, folder: Path, name: str):
        folder.mkdir(parents=True, exist_ok=True)
        self.path = temp_name(folder, name)
        self._handle: BinaryIO | None = open(self.path, "xb")
        self._hasher = hashlib.sha256()
        self.size = 0

    def write(self, chunk: bytes) -> None:
        assert self._handle is not None, "staged file already closed"
        self._handle.write(chunk)
        self._hasher.update(chunk)
        self.size += len(chunk)

    def reset(self) -> None:
        """Forget everything written so far (a restart from byte 0)."""
        assert self._handle is not None, "staged file already closed"
        self._handle.seek(0)
        self._handle.truncate()
        self._hasher = hashlib.sha256()
        self.size = 0

    @property
    def sha256(self) -> str:
        return self._hasher.hexdigest()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()
            self._handle = None

    def publish(self, dest: Path) -> Path:
        """Close and atomically rename onto `dest` (replacing what was there)."""
        self.close()
        os.replace(self.path, dest)
        return dest

    def discard(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> StagedFile:
        return self

    def __exit__(self, *exc) -> None:
        # Publishing renames the file away; whatever is still under the temp name is junk.
        self.discard()


def copy_stream(source: BinaryIO, staged: StagedFile, on_progress=None) -> None:
    while chunk := source.read(CHUNK):
        staged.write(chunk)
        if on_progress:
            on_progress(staged.size)


def place(source: Path, dest: Path, *, link: bool = True) -> str:
    """Put a copy of `source` at `dest` atomically: a hardlink where possible, else a copy.

    Returns "link" or "copy".
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(dest.parent, dest.name)
    how = "copy"
    try:
        if link:
            try:
                os.link(source, tmp)
                how = "link"
            except OSError:
                pass
        if how == "copy":
            shutil.copyfile(source, tmp)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return how
