"""Extracting a verified archive (zip or tar) into the model folder, refusing unsafe members.

The same rules for both formats, stricter than Python's tarfile ``data`` filter (which, in the
Python releases facezoo supports, could be led outside the folder through chains of links):

- a member path must be relative, without '..', and not replace the archive itself;
- only regular files, folders and symbolic links are taken: hard links, devices and FIFOs are
  refused, as are two members with one path;
- nothing is ever written through a link: every file and folder is written first, into a fresh
  staging folder that holds no link yet, opened with O_NOFOLLOW; links come last, each only after
  every parent of its path has been checked on disk not to be a link, and only when its target,
  resolved on disk (through the links made before it), stays inside the folder;
- the bytes written may not exceed MAX_EXPANSION times the archive's size (a bomb is refused);
- the registry's ``members`` must be there, inside the folder.

A refused archive leaves nothing behind: the staging folder is removed, and only when every
member is in it are its top-level entries renamed into the model folder.
"""

from __future__ import annotations

import errno
import os
import posixpath
import re
import shutil
import stat
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

from facezoo.downloader.staging import temp_name
from facezoo.errors import DownloadError
from facezoo.registry import ARCHIVE_KINDS

_DRIVE = re.compile(r"^[A-Za-z]:")
MAX_EXPANSION = 200  # extracted bytes per archive byte; real model archives are far below
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
CHUNK = 1 << 20


@dataclass(frozen=True)
class Member:
    """One archive member as facezoo will write it."""

    name: str  # as the archive spells it (for messages)
    relative: str  # checked, '/'-separated
    kind: str  # "file", "dir" or "link"
    link: str | None = None  # a link's target
    open: Callable[[], BinaryIO] | None = None  # a file's bytes


def _refuse(archive: Path, member: str, reason: str) -> DownloadError:
    return DownloadError(f"{archive.name}: refusing archive member {member!r}: {reason}")


def safe_relative(archive: Path, member: str) -> str:
    """The member's path, checked: relative, no '..'; returns it with '/' separators."""
    name = member.replace("\\", "/")
    if name.startswith("/") or _DRIVE.match(name):
        raise _refuse(archive, member, "absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise _refuse(archive, member, "path contains '..'")
    return "/".join(parts)


def _check_link_text(archive: Path, member: str, relative: str, target: str) -> None:
    target = target.replace("\\", "/")
    if target.startswith("/") or _DRIVE.match(target):
        raise _refuse(archive, member, f"symlink to absolute path {target!r}")
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(relative), target))
    if resolved == ".." or resolved.startswith("../"):
        raise _refuse(archive, member, f"symlink {target!r} escapes the folder")


# ----------------------------------------------------------------------------- reading the archives


def _zip_members(archive: Path, zf: zipfile.ZipFile) -> Iterator[Member]:
    for info in zf.infolist():
        relative = safe_relative(archive, info.filename)
        mode = info.external_attr >> 16 if info.create_system == 3 else 0
        if stat.S_ISLNK(mode):
            yield Member(info.filename, relative, "link", zf.read(info).decode("utf-8", "surrogateescape"))
        elif info.is_dir():
            yield Member(info.filename, relative, "dir")
        elif stat.S_IFMT(mode) not in (0, stat.S_IFREG):  # 0: a writer that records permissions only
            raise _refuse(archive, info.filename, "not a regular file, folder or link")
        else:
            yield Member(info.filename, relative, "file", open=lambda info=info: zf.open(info))


def _tar_members(archive: Path, tf: tarfile.TarFile) -> Iterator[Member]:
    for info in tf:
        relative = safe_relative(archive, info.name)
        if info.issym():
            yield Member(info.name, relative, "link", info.linkname)
        elif info.isdir():
            yield Member(info.name, relative, "dir")
        elif info.isreg():
            yield Member(info.name, relative, "file", open=lambda info=info: tf.extractfile(info))
        else:
            kind = "hard link" if info.islnk() else "device or FIFO" if (info.isdev() or info.isfifo()) else "special"
            raise _refuse(archive, info.name, f"a {kind}: only regular files, folders and symlinks are extracted")


# ----------------------------------------------------------------------------- writing them


def _parents_are_real(staging: Path, relative: str) -> bool:
    """No parent of ``relative`` inside ``staging`` is a link (checked on disk, not by name)."""
    current = staging
    for part in relative.split("/")[:-1]:
        current = current / part
        if current.is_symlink():
            return False
    return True


def _inside(staging: Path, path: str) -> bool:
    root = os.path.realpath(staging)
    return os.path.commonpath([root, os.path.realpath(path)]) == root


class _Writer:
    """Writes members into a fresh staging folder under the rules above."""

    def __init__(self, archive: Path, staging: Path):
        self.archive, self.staging = archive, staging
        self.budget = MAX_EXPANSION * max(archive.stat().st_size, 1)
        self.written = 0
        self.seen: set[str] = set()
        self.links: list[Member] = []

    def add(self, member: Member) -> None:
        if not member.relative:
            return
        if member.relative.split("/")[0] == self.archive.name:
            raise _refuse(self.archive, member.name, "would replace the archive itself")
        if member.relative in self.seen and member.kind != "dir":
            raise _refuse(self.archive, member.name, "a second member with the same path")
        self.seen.add(member.relative)
        if member.kind == "link":
            _check_link_text(self.archive, member.name, member.relative, member.link)
            self.links.append(member)  # made after every file and folder
        elif member.kind == "dir":
            (self.staging / member.relative).mkdir(parents=True, exist_ok=True)
        else:
            self._file(member)

    def _file(self, member: Member) -> None:
        target = self.staging / member.relative
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            handle = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o644)
        except FileExistsError:
            raise _refuse(self.archive, member.name, "its path is taken by another member") from None
        with os.fdopen(handle, "wb") as sink, member.open() as source:
            while chunk := source.read(CHUNK):
                self.written += len(chunk)
                if self.written > self.budget:
                    raise DownloadError(f"{self.archive.name}: refusing the archive: it expands past "
                                        f"{MAX_EXPANSION}× its size (a decompression bomb, or not a model archive)")
                sink.write(chunk)

    def finish_links(self) -> None:
        for member in self.links:
            target = self.staging / member.relative
            if not _parents_are_real(self.staging, member.relative):
                raise _refuse(self.archive, member.name, "a folder on its path is itself a link")
            if not _inside(self.staging, os.path.join(target.parent, member.link)):
                raise _refuse(self.archive, member.name, f"symlink {member.link!r} leads outside the folder "
                              "through the links before it")
            if os.path.lexists(target):
                raise _refuse(self.archive, member.name, "its path is taken by another member")
            target.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(member.link, target)
            try:
                os.stat(target)
            except OSError as exc:
                if exc.errno == errno.ELOOP:  # a link that leads back to itself: no file at the end
                    raise _refuse(self.archive, member.name, f"symlink {member.link!r} is a loop of links") from None


def _extract(archive: Path, folder: Path, members: list[str] | tuple[str, ...], entries: Iterator[Member]) -> list[Path]:
    staging = temp_name(folder, archive.name, "unpack")
    staging.mkdir(parents=True)
    try:
        writer = _Writer(archive, staging)
        for member in entries:
            writer.add(member)
        writer.finish_links()
        for name in members:
            path = staging / name
            if not path.exists() or not _inside(staging, str(path)):
                raise DownloadError(f"{archive.name}: archive member {name!r} is missing "
                                    f"(the registry lists {', '.join(members)})")
        for child in sorted(staging.iterdir()):
            _replace(child, folder / child.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [folder / m for m in members]


def extract_zip(archive: Path, folder: Path, members: list[str] | tuple[str, ...] = ()) -> list[Path]:
    """Unpack `archive` into `folder`; returns the paths of the registry's `members` there."""
    try:
        with zipfile.ZipFile(archive) as zf:
            return _extract(archive, folder, members, _zip_members(archive, zf))
    except zipfile.BadZipFile as exc:
        raise DownloadError(f"{archive.name}: not a valid zip archive ({exc})") from None
    except OSError as exc:
        raise DownloadError(f"{archive.name}: cannot unpack into {folder}: {exc.strerror or exc}") from None


def extract_tar(archive: Path, folder: Path, members: list[str] | tuple[str, ...] = ()) -> list[Path]:
    """Unpack a tar archive (plain, gzip, bzip2 or xz) into `folder`, by the same rules as zip."""
    try:
        with tarfile.open(archive, "r:*") as tf:
            return _extract(archive, folder, members, _tar_members(archive, tf))
    except (tarfile.TarError, EOFError) as exc:
        raise DownloadError(f"{archive.name}: not a valid tar archive ({exc})") from None
    except OSError as exc:
        raise DownloadError(f"{archive.name}: cannot unpack into {folder}: {exc.strerror or exc}") from None


#: How each registry ``unpack`` value (facezoo.registry.ARCHIVE_KINDS) is extracted.
UNPACKERS: dict[str, Callable[..., list[Path]]] = {kind: extract_zip if kind == "zip" else extract_tar
                                                   for kind in ARCHIVE_KINDS}


def unpack(kind: str, archive: Path, folder: Path, members: list[str] | tuple[str, ...] = ()) -> list[Path]:
    return UNPACKERS[kind](archive, folder, members)


def member_names(kind: str, archive: Path) -> set[str]:
    """The member paths an archive holds (for a stand-in writer's check), without extracting."""
    if kind == "zip":
        with zipfile.ZipFile(archive) as zf:
            return set(zf.namelist())
    with tarfile.open(archive, "r:*") as tf:
        return set(tf.getnames())


def _replace(source: Path, dest: Path) -> None:
    if dest.is_dir() and not dest.is_symlink():
        old = temp_name(dest.parent, dest.name, "old")
        os.replace(dest, old)
        os.replace(source, dest)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(source, dest)  # a file or symlink is replaced atomically


__all__ = ["MAX_EXPANSION", "UNPACKERS", "extract_tar", "extract_zip", "member_names", "safe_relative", "unpack"]
