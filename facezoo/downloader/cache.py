"""The content-addressed download cache, shared safely between processes.

Layout under the cache root:

    sha256/<ab>/<full hash>          verified file contents, named by their sha256
    locks/<full hash>.lock           one filelock per hash, held while a file is fetched or stored
    names/<model>/<file>.sha256      hashes of files whose registry entry has none (imported by hand)

Entries are written under a temporary name in their folder and renamed into place, so a reader
sees either nothing or a complete file; every hit is re-hashed before use anyway.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path
from typing import Callable, Iterator

import filelock
import platformdirs

from facezoo.downloader import staging
from facezoo.downloader.verify import file_matches
from facezoo.errors import DownloadError

CACHE_ENV = "FACEZOO_CACHE"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def default_cache_dir() -> Path:
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_cache_dir("facezoo")) / "downloads"


class Cache:
    def __init__(self, root: Path | str | None = None):
        self.root = Path(root).expanduser() if root else default_cache_dir()
        try:
            for sub in ("sha256", "locks", "names"):
                (self.root / sub).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DownloadError(f"cannot use cache folder {self.root}: {exc.strerror or exc}") from None

    def entry(self, sha256: str) -> Path:
        if not _SHA256.match(sha256):
            raise ValueError(f"not a sha256: {sha256!r}")
        return self.root / "sha256" / sha256[:2] / sha256

    @contextlib.contextmanager
    def lock(self, sha256: str, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
        """Hold the per-hash lock (other processes and threads wait) for the duration."""
        lock = filelock.FileLock(self.root / "locks" / f"{sha256}.lock")
        try:
            lock.acquire(timeout=0.2)
        except filelock.Timeout:
            if on_wait:
                on_wait()
            lock.acquire()
        try:
            yield
        finally:
            lock.release()

    def lookup(self, sha256: str, size: int | None, on_corrupt: Callable[[Path], None] | None = None) -> Path | None:
        """The verified entry for `sha256`, or None. A corrupted entry is deleted. Hold the lock."""
        path = self.entry(sha256)
        if not path.exists():
            return None
        if file_matches(path, sha256, size):
            return path
        if on_corrupt:
            on_corrupt(path)
        path.unlink(missing_ok=True)
        return None

    def store(self, source: Path, sha256: str) -> Path:
        """Add verified contents (hardlink when possible). Hold the lock."""
        path = self.entry(sha256)
        if path.exists() and file_matches(path, sha256, source.stat().st_size):
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        staging.place(source, path)
        return path

    # Files whose registry entry has no sha256 (mindface): remember what the user imported.

    def _name_record(self, model: str, file: str) -> Path:
        return self.root / "names" / model / f"{file}.sha256"

    def remember(self, model: str, file: str, sha256: str) -> None:
        record = self._name_record(model, file)
        record.parent.mkdir(parents=True, exist_ok=True)
        tmp = staging.temp_name(record.parent, record.name, "tmp")
        try:
            tmp.write_text(sha256 + "\n", encoding="ascii")
            os.replace(tmp, record)
        finally:
            tmp.unlink(missing_ok=True)

    def recall(self, model: str, file: str) -> str | None:
        try:
            text = self._name_record(model, file).read_text(encoding="ascii").strip()
        except OSError:
            return None
        return text if _SHA256.match(text) else None
