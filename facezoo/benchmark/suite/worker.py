"""Suite jobs in child processes, a library at a time.

Three inference libraries, each with its own thread pools and allocators, loaded side by side
for a hundred cases in one process, both disturb each other's timings and, here, once ended in
heap corruption after 108 cases. So the suite runs each (model, backend) group, each overhead
pair and each bf16 check in a fresh child: the parent only plans and collects, and a crash
costs the cases of its own group, which are reported as failed with the child's last words.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import asdict
from typing import Callable

from facezoo.benchmark.results import BenchmarkCase, BenchmarkResult

MARK = "FACEZOO-RESULT "  # libraries print to stdout too: only marked lines are results


def run_job(job: dict, on_line: Callable[[dict], None] | None = None, timeout: float = 3600) -> tuple[list[dict], str]:
    """Run `job` in a child; returns its result lines and, if it failed, why."""
    # stderr goes to a file, not a pipe: a chatty library could fill a pipe nobody reads yet.
    with tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace") as errors:
        process = subprocess.Popen(
            [sys.executable, "-m", "facezoo.benchmark.suite.worker"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors, text=True,
        )
        process.stdin.write(json.dumps(job))
        process.stdin.close()
        lines = []
        for raw in process.stdout:
            if raw.startswith(MARK):
                lines.append(json.loads(raw[len(MARK):]))
                if on_line:
                    on_line(lines[-1])
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.returncode == 0:
            return lines, ""
        errors.seek(0)
        last = [line for line in errors.read().splitlines() if line.strip()][-1:] or ["no message"]
    return lines, f"benchmark worker exited with status {process.returncode}: {last[0][:300]}"


def run_cases(cases: list[BenchmarkCase], settings: dict, on_result: Callable[[BenchmarkResult], None] | None = None) -> list[BenchmarkResult]:
    """Each case's result; the cases a crashed child did not reach are failed results."""
    job = {"kind": "cases", "cases": [asdict(c) for c in cases], "settings": settings}
    results: list[BenchmarkResult] = []

    def collect(line: dict) -> None:
        results.append(BenchmarkResult.from_json(line))
        if on_result:
            on_result(results[-1])

    _, error = run_job(job, collect)
    for case in cases[len(results):]:
        results.append(BenchmarkResult(case, "failed", error=error or "benchmark worker returned no result"))
        if on_result:
            on_result(results[-1])
    return results


def _main() -> None:
    from facezoo.benchmark.timing import run_case

    job = json.loads(sys.stdin.read())
    kind = job["kind"]
    if kind == "cases":
        for case in job["cases"]:
            result = run_case(BenchmarkCase(**case), **job["settings"])
            _emit(result.to_json())
    elif kind == "overhead":
        from facezoo.benchmark.suite.overhead import measure_overhead

        figure = measure_overhead(BenchmarkCase(**job["case"]), **job["settings"])
        _emit({**asdict(figure)})
    elif kind == "quantize":
        from pathlib import Path

        from facezoo.conversion import QuantizationSettings, quantize_converted
        from facezoo.registry import load_zoo

        spec = load_zoo(Path(job["zoo"])).get(job["model"])
        done = quantize_converted(spec, Path(job["download_dir"]), Path(job["converted_dir"]),
                                  settings=QuantizationSettings(calibration_size=job["calibration_size"]),
                                  formats=tuple(job["formats"]),
                                  step=lambda text: print(text, file=sys.stderr, flush=True))
        _emit(json.loads(json.dumps(done.record(), default=str)))
    elif kind == "serving":
        from facezoo.benchmark.suite.deploy import measure_serving

        for row in measure_serving(job["path"], job["model"], job["workdir"], tuple(job["clients"]), job["seconds"],
                                   job["max_batch"], job["max_delay_ms"]):
            _emit(row)
    elif kind == "soak":
        from facezoo.benchmark.suite.soak import measure_soak

        _emit(measure_soak(job["path"], job["model"], job["workdir"], job["clients"], job["seconds"]))
    elif kind == "ray":
        from facezoo.benchmark.suite.deploy import measure_ray

        _emit(measure_ray(job["path"], job["model"], job["workdir"], tuple(job["sizes"])))
    elif kind == "detector":
        from facezoo.benchmark.suite.detectors import run_detector_job

        for line in run_detector_job(job):
            _emit(line)
    elif kind == "bf16":
        from facezoo.benchmark.suite.agreement import bf16_agreement

        _emit({"cosine": bf16_agreement(job["path"])})
    else:
        raise SystemExit(f"unknown job kind {kind!r}")


def _emit(data: dict) -> None:
    sys.stdout.write(MARK + json.dumps(data) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    _main()
