"""Conversion time and peak memory per model: each conversion in its own process.

A fresh process per model makes the peak resident memory that model's alone (os.wait4
returns the child's own rusage) and keeps one model's caches from speeding up the next.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from facezoo.formats import FORMAT_FOR_SUFFIX


@dataclass(frozen=True)
class ConversionFigure:
    model: str
    seconds: float
    peak_rss_mib: float
    passed: bool
    artifacts: int  # converted files written (MINDIR, ONNX, IR × precisions)
    log: str  # where the converter's output went
    error: str = ""


def convert_in_subprocess(model: str, zoo_path: Path, download_dir: Path, converted_dir: Path, log_dir: Path) -> ConversionFigure:
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"convert-{model}.log"
    command = [
        sys.executable, "-m", "facezoo.cli.main", "convert", model,
        "--zoo", str(zoo_path), "-d", str(download_dir), "-o", str(converted_dir),
    ]
    env = {**os.environ, "COLUMNS": "160"}
    with open(log_path, "wb") as log:
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    written = [p for p in (converted_dir / model).glob("*/*") if p.suffix in FORMAT_FOR_SUFFIX]
    error = "" if process.returncode == 0 else _last_line(log_path)
    return ConversionFigure(model, seconds, usage.ru_maxrss / 1024, process.returncode == 0, len(written), str(log_path), error)


def _last_line(path: Path) -> str:
    lines = [line for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no output"
