"""Checking bytes against what the registry promises: size and sha256."""

from __future__ import annotations

import hashlib
from pathlib import Path

from facezoo.registry import ModelFile

CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    hasher = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            hasher.update(chunk)
    return hasher.hexdigest()


def mismatch(expected: ModelFile, size: int, sha256: str) -> str | None:
    """None when `size`/`sha256` satisfy the entry; else a message with expected and actual."""
    size_ok = expected.size is None or expected.size == size
    sha_ok = expected.sha256 is None or expected.sha256 == sha256
    if size_ok and sha_ok:
        return None
    what = "size and sha256" if not size_ok and not sha_ok else "size" if not size_ok else "sha256"
    want_size = f"{expected.size} bytes" if expected.size is not None else "size not pinned"
    want_sha = expected.sha256 or "not pinned"
    return (
        f"{what} mismatch: expected sha256 {want_sha} ({want_size}), "
        f"got sha256 {sha256} ({size} bytes)"
    )


def too_long(expected: ModelFile, size_so_far: int) -> str | None:
    """A message when more bytes arrived than the entry's size allows (stop reading early)."""
    if expected.size is not None and size_so_far > expected.size:
        return f"size mismatch: expected {expected.size} bytes, got more ({size_so_far} bytes so far)"
    return None


def file_matches(path: Path, expected_sha256: str, expected_size: int | None) -> bool:
    try:
        if expected_size is not None and path.stat().st_size != expected_size:
            return False
        return sha256_file(path) == expected_sha256
    except OSError:
        return False
