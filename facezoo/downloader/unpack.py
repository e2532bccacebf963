"""Extracting a verified zip archive into the model folder, refusing unsafe members.

A member is refused when its path is absolute, contains '..', or is a symlink whose target
leaves the folder. Extraction goes to a temporary folder first; its top-level entries are then
renamed into place, and the registry's `members` must all be there.
"""

from __future__ import annotations

import os
import posixpath
import re
import shutil
import stat
import zipfile
from pathlib import Path

from facezoo.downloader.staging import temp_name
from facezoo.errors import DownloadError

_DRIVE = re.compile(r"^[A-Za-z]:")


def _refuse(archive: Path, member: str, reason: str) -> DownloadError:
    return DownloadError(f"{archive.name}: refusing archive member {member!r}: {reason}")


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    return info.create_system == 3 and stat.S_ISLNK(info.external_attr >> 16)


def safe_relative(archive: Path, member: str) -> str:
    """The member's path, checked: relative, no '..'; returns it with '/' separators."""
    name = member.replace("\\", "/")
    if name.startswith("/") or _DRIVE.match(name):
        raise _refuse(archive, member, "absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise _refuse(archive, member, "path contains '..'")
    return "/".join(parts)


def _check_link(archive: Path, member: str, relative: str, target: str) -> None:
    target = target.replace("\\", "/")
    if target.startswith("/") or _DRIVE.match(target):
        raise _refuse(archive, member, f"symlink to absolute path {target!r}")
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(relative), target))
    if resolved == ".." or resolved.startswith("../"):
        raise _refuse(archive, member, f"symlink {target!r} escapes the folder")


def extract_zip(archive: Path, folder: Path, members: list[str] | tuple[str, ...] = ()) -> list[Path]:
    """Unpack `archive` into `folder`; returns the paths of the registry's `members` there."""
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            plan = []
            for info in infos:
                relative = safe_relative(archive, info.filename)
                if not relative:
                    continue
                if relative.split("/")[0] == archive.name:
                    raise _refuse(archive, info.filename, "would replace the archive itself")
                link = None
                if _is_symlink(info):
                    link = zf.read(info).decode("utf-8", "surrogateescape")
                    _check_link(archive, info.filename, relative, link)
                plan.append((info, relative, link))
            staging = temp_name(folder, archive.name, "unpack")
            staging.mkdir(parents=True)
            try:
                for info, relative, link in plan:
                    target = staging / relative
                    if info.is_dir():
                        target.mkdir(parents=True, exist_ok=True)
                        continue
                    target.parent.mkdir(parents=True, exist_ok=True)
                    if link is not None:
                        os.symlink(link, target)
                        continue
                    with zf.open(info) as source, open(target, "wb") as sink:
                        shutil.copyfileobj(source, sink, 1 << 20)
                missing = [m for m in members if not (staging / m).exists()]
                if missing:
                    raise DownloadError(
                        f"{archive.name}: archive member {missing[0]!r} is missing "
                        f"(the registry lists {', '.join(members)})"
                    )
                for child in sorted(staging.iterdir()):
                    _replace(child, folder / child.name)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    except zipfile.BadZipFile as exc:
        raise DownloadError(f"{archive.name}: not a valid zip archive ({exc})") from None
    except OSError as exc:
        raise DownloadError(f"{archive.name}: cannot unpack into {folder}: {exc.strerror or exc}") from None
    return [folder / m for m in members]


def _replace(source: Path, dest: Path) -> None:
    if dest.is_dir() and not dest.is_symlink():
        old = temp_name(dest.parent, dest.name, "old")
        os.replace(dest, old)
        os.replace(source, dest)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(source, dest)  # a file or symlink is replaced atomically
