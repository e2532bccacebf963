"""What a download run produced, file by file."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Status = Literal["downloaded", "cached", "imported", "failed"]


@dataclass(frozen=True)
class FileResult:
    model: str
    file: str
    path: Path  # OUTPUT_DIR/<model>/<file> (absent when failed)
    status: Status
    bytes: int = 0
    error: str | None = None  # one line naming model, file and source; None unless failed
    source: str | None = None  # URL, mirror path or cache entry it came from
    sha256: str | None = None
    unpacked: tuple[Path, ...] = ()  # the registry's archive members, extracted

    @property
    def ok(self) -> bool:
        return self.status != "failed"


@dataclass(frozen=True)
class DownloadSummary:
    files: list[FileResult] = field(default_factory=list)
    output_dir: Path = Path(".")
    cache_dir: Path | None = None

    @property
    def failed(self) -> list[FileResult]:
        return [f for f in self.files if not f.ok]

    @property
    def ok(self) -> bool:
        return not self.failed

    def for_model(self, model: str) -> list[FileResult]:
        return [f for f in self.files if f.model == model]

    def count(self, status: Status) -> int:
        return sum(1 for f in self.files if f.status == status)
