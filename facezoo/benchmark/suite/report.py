"""The suite's files: one JSON with every figure, a markdown summary, and three charts."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from facezoo.atomic import write_bytes_atomic
from facezoo.quantization.precisions import BF16_GATE_FIELD
from facezoo.benchmark.report import new_figure, plot_latency, plot_throughput, save_figure, to_document, write_json
from facezoo.benchmark.suite.ratios import (
    check_low_precision_targets,
    check_targets,
    compare_backends,
    compare_low_precision,
    compare_precisions,
    efficiencies,
    low_precision_efficiencies,
)

STANDIN_NOTE = (
    "Timed on stand-in checkpoints: the real architectures and parameter shapes with deterministic "
    "weights. Speed does not depend on weight values; no accuracy figure here is a published model's."
)


def write_report(run) -> dict[str, Path]:
    out = Path(run.options.results_dir)
    name = run.machine.name
    comparisons = compare_backends(run.results)
    precisions = compare_precisions(run.results)
    efficiency = efficiencies(run.results, run.peak.gflops)
    architectures = {spec.name: spec.architecture for spec in run.specs}
    targets = check_targets(run.overhead, efficiency, run.conversions, architectures, run.gpu)
    low = compare_low_precision(run.results)
    low_efficiency = low_precision_efficiencies(run.results, run.peaks)
    targets += check_low_precision_targets(low, low_efficiency, run.quantization, architectures, run.peaks,
                                           run.machine.isa)
    deployment = getattr(run, "deployment", None)
    if deployment is not None:
        from facezoo.benchmark.suite.deploy_report import deployment_targets

        targets += deployment_targets(deployment)
    document = to_document(
        run.results,
        run.machine,
        {
            "seconds_per_case": run.options.seconds,
            "warmup": run.options.warmup,
            "inputs": "distinct synthetic aligned face crops (64 faces, batches cut at shifting offsets)",
            "weights": "stand-ins",
            "light_batch": run.options.light_batch,
            "heavy_batch": run.options.heavy_batch,
            "heavy_gflops": run.options.heavy_gflops,
        },
        note=STANDIN_NOTE,
        peak=asdict(run.peak),
        conversions=[asdict(c) for c in run.conversions],
        flops=run.flops,
        overhead=[{**asdict(o), "ratio": o.ratio, "wrapper_share": o.wrapper_share} for o in run.overhead],
        backends=[asdict(c) for c in comparisons],
        precisions=[{**asdict(p), "ratio": p.ratio} for p in precisions],
        efficiency=[{**asdict(e), "fraction": e.fraction} for e in efficiency],
        bf16_agreement=run.bf16_agreement,
        gpu=run.gpu,
        deployment=_deployment_document(deployment),
        targets=[asdict(t) for t in targets],
        peaks={k: asdict(v) for k, v in run.peaks.items()},
        quantization=run.quantization,
        low_precision=[{**asdict(c), "ratio": c.ratio} for c in low],
        low_precision_efficiency=[{**asdict(e), "fraction": e.fraction} for e in low_efficiency],
    )
    paths = {"json": write_json(document, out / f"{name}.json")}
    title = f"{run.machine.cpu_model}, {run.machine.usable_cpus} cores · {run.machine.date} · stand-in weights"
    throughput = [r for r in run.results if r.case.mode == "throughput"]
    if any(r.ok for r in throughput):
        paths["throughput"] = plot_throughput(throughput, out / f"{name}-throughput.png", f"throughput mode · {title}")
    if any(r.ok and r.latency for r in run.results):
        paths["latency"] = plot_latency(run.results, out / f"{name}-latency.png", f"latency mode, p50 / p90 / p99 · {title}")
    if run.conversions:
        paths["conversion"] = plot_conversion(run.conversions, out / f"{name}-conversion.png", f"conversion · {title}")
    markdown = render_markdown(run, document, comparisons, precisions, efficiency, targets, paths)
    markdown += render_low_precision(run, low, low_efficiency)
    paths["markdown"] = write_bytes_atomic(out / f"{name}.md", markdown.encode())
    return paths


def _deployment_document(deployment) -> dict | None:
    if deployment is None:
        return None
    from facezoo.benchmark.suite.deploy_report import deployment_document

    return deployment_document(deployment)


def plot_conversion(conversions, path: Path, title: str) -> Path:
    figure = new_figure(len(conversions), width=10.0)
    left, right = figure.subplots(1, 2, sharey=True)
    names = [c.model for c in conversions]
    positions = range(len(conversions))
    left.barh(positions, [c.seconds for c in conversions], color="tab:purple")
    right.barh(positions, [c.peak_rss_mib * 2**20 / 1e9 for c in conversions], color="tab:gray")
    left.set_yticks(list(positions), names, fontsize=7)
    left.set_ylim(len(conversions) - 0.5, -0.5)
    left.set_xlabel("seconds (all formats and precisions, validated)")
    right.set_xlabel("peak resident memory, GB")
    for axes in (left, right):
        axes.grid(True, axis="x", alpha=0.3)
    figure.suptitle(title, fontsize=8)
    figure.tight_layout(rect=(0, 0, 1, 1 - 0.35 / figure.get_figheight()))  # room for the title
    return save_figure(figure, path)


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _met(value: bool | None) -> str:
    return {True: "met", False: "**missed**", None: "not measured"}[value]


def render_markdown(run, document, comparisons, precisions, efficiency, targets, paths) -> str:
    machine = run.machine
    libraries = ", ".join(f"{k} {v}" for k, v in machine.libraries.items())
    parts = [
        f"# facezoo benchmarks: {machine.name}",
        "",
        f"Measured {machine.date} by `python benchmarks/run.py`. {STANDIN_NOTE}",
        "",
        f"- CPU: {machine.cpu_model}, {machine.usable_cpus} usable of {machine.logical_cpus} logical cores"
        f"{' (virtual machine)' if machine.virtualized else ''}, {machine.memory_gib} GiB; ISA: {', '.join(machine.isa)}",
        f"- GPU: {', '.join(machine.gpus) if machine.gpus else 'none'}",
        f"- {machine.os}, Python {machine.python}; {libraries}",
        f"- MindSpore's oneDNN: {machine.environment.get('mindspore_onednn', '?')}",
        f"- FP32 peak: **{run.peak.gflops:.0f} GFLOP/s**, measured as the {run.peak.method} "
        f"({', '.join(f'{k} {v:.0f}' for k, v in run.peak.by_method.items())} GFLOP/s).",
        *[f"- {precision} peak: **{peak.gflops:.0f} G(FL)OP/s**, {peak.method}." for precision, peak in run.peaks.items()],
        f"- Each case: load, first inference, {run.options.warmup} untimed warm-up batch, then at least 3 batches and "
        f"{run.options.seconds:g} s of timed runs. Latency mode: one request at a time; throughput mode: the "
        "device's optimal number of requests in flight (OpenVINO THROUGHPUT hint; ONNX Runtime and MindSpore run "
        "one batch after another on all cores). Inputs: distinct aligned face crops; preprocessing excluded unless "
        "marked `+pre` (then JPEG decode of 250×250 photos, 5-point alignment, channel order and L2 norm are included).",
        "",
        "## Targets",
        "",
        _table(["target", "measured", "result", "why / by how much"],
               [[t.target, t.measured, _met(t.met), t.note] for t in targets]),
        "",
    ]
    if run.conversions:
        parts += [
            "## Conversion (stand-ins → MINDIR, ONNX, OpenVINO IR × FP32, FP16, each validated)",
            "",
            _table(["model", "seconds", "peak memory (GB)", "files", "result"],
                   [[c.model, f"{c.seconds:.1f}", f"{c.peak_rss_mib * 2**20 / 1e9:.2f}", str(c.artifacts),
                     "ok" if c.passed else f"failed: {c.error}"] for c in run.conversions]),
            "",
            f"Total: {sum(c.seconds for c in run.conversions):.0f} s, one process per model, one after another.",
            "",
        ]
    if run.flops:
        parts += [
            "## Arithmetic per image",
            "",
            _table(["model", "architecture", "GFLOPs (registry)", "GFLOPs (counted from ONNX)", "M params"],
                   [[f["model"], f["architecture"], f"{f['registry_gflops']}", f"{f['counted_gflops']:.3f}", f"{f['mparams']:.2f}"]
                    for f in run.flops]),
            "",
        ]
    parts += ["## Every case", "", _results_markdown(run.results), ""]
    if run.overhead:
        parts += [
            "## Runtime overhead: facezoo against the library called directly (same file, same settings)",
            "",
            _table(["model", "file", "backend", "batch", "mode", "facezoo img/s", "direct img/s",
                    "facezoo / direct (median of rounds)", "rounds", "facezoo's own µs per batch"],
                   [[o.model, o.file, o.backend, str(o.batch), o.mode, f"{o.facezoo_throughput:.1f}",
                     f"{o.direct_throughput:.1f}", f"{100 * o.ratio:.1f} %" if o.ratio else f"error: {o.error}", str(o.rounds),
                     f"{o.wrapper_us:.1f} ({100 * o.wrapper_share:.3f} %)" if o.wrapper_share is not None else "-"]
                    for o in run.overhead]),
            "",
            "Both runners load the same file with the same settings and take turns; the ratio is the median of "
            "the per-round ratios. facezoo's own work per batch (input checks, layout) is timed alone beside it.",
            "",
        ]
    if comparisons:
        rows = []
        for c in comparisons:
            for path, value in sorted(c.throughput.items(), key=lambda item: -item[1]):
                rows.append([c.model, f"{c.mode} b{c.batch}", path, f"{value:.1f}", f"{c.relative(path):.2f}"])
        parts += ["## OpenVINO against ONNX Runtime against MindSpore (FP32)", "",
                  _table(["model", "setting", "file · backend", "img/s", "× fastest"], rows), ""]
    if precisions:
        parts += ["## FP16 against FP32 (same format and backend)", "",
                  _table(["model", "format · backend", "setting", "FP32 img/s", "FP16 img/s", "FP16 / FP32"],
                         [[p.model, p.path, f"{p.mode} b{p.batch}", f"{p.fp32:.1f}", f"{p.fp16:.1f}", f"{p.ratio:.2f}"]
                          for p in precisions]),
                  "",
                  "OpenVINO is asked for f32 inference (INFERENCE_PRECISION_HINT=f32), so an FP16 IR's weights are widened "
                  "when it is compiled and it runs like the FP32 one. The slower FP16 rows of ONNX Runtime and MindSpore are "
                  "what their CPU kernels gave here for FP16 graphs; on a CPU, FP16 files save disk and memory, not time.",
                  ""]
    if efficiency:
        parts += ["## Achieved GFLOP/s against the measured peak (best FP32 case per model)", "",
                  _table(["model", "case", "GFLOP/s", "% of peak"],
                         [[e.model, e.case, f"{e.achieved_gflops:.0f}", f"{100 * e.fraction:.1f} %"] for e in efficiency]),
                  ""]
    if run.bf16_agreement:
        bf16 = {r.case.model: r for r in run.results if r.ok and r.case.precision_hint == "bf16"}
        fp32 = {r.case.model: r for r in run.results if r.ok and r.case.format == "openvino" and r.case.precision == "FP32"
                and r.case.mode == "throughput" and not r.case.precision_hint and r.case.runner == "facezoo"}
        parts += ["## OpenVINO bf16 (AMX / AVX-512 BF16) on the FP32 IR", "",
                  _table(["model", "bf16 img/s", "f32 img/s", "speed-up", "worst cosine bf16 vs f32 (16 faces)"],
                         [[m, f"{bf16[m].throughput:.1f}", f"{fp32[m].throughput:.1f}" if m in fp32 else "-",
                           f"{bf16[m].throughput / fp32[m].throughput:.2f}×" if m in fp32 else "-", f"{cos:.5f}"]
                          for m, cos in run.bf16_agreement.items() if m in bf16]),
                  "",
                  "bf16 is a deployment option (`facezoo benchmark --precision-hint bf16`, `load(..., precision_hint=\"bf16\")`), "
                  "not a converted precision: `facezoo check` does not validate it.",
                  ""]
    if getattr(run, "deployment", None) is not None:
        from facezoo.benchmark.suite.deploy_report import deployment_markdown

        parts += deployment_markdown(run.deployment)
    parts += ["## GPU", ""]
    if run.gpu.get("measured"):
        parts += [f"Measured on {', '.join(run.gpu.get('gpus') or ['an NVIDIA GPU'])}: see the GPU rows above.", ""]
    else:
        parts += [f"Not measured: {run.gpu.get('reason', 'no GPU')}.", ""]
    figures = [f"![{key}]({path.name})" for key, path in paths.items() if key in ("throughput", "latency", "conversion")]
    if figures:
        parts += ["## Figures", "", *figures, ""]
    return "\n".join(parts)


def _results_markdown(results) -> str:
    rows = []
    for r in results:
        case = r.case
        head = [case.model, case.file_kind + (f" {case.precision_hint}" if case.precision_hint else ""), case.backend,
                case.device, str(case.batch), case.mode + (" +pre" if case.preprocessing else "")]
        if not r.ok:
            rows.append(head + [r.status, "", "", "", "", "", r.error[:120]])
            continue
        lat = r.latency
        rows.append(head + [
            str(r.requests),
            f"{r.first_inference_ms:.1f}",
            f"{lat.p50:.2f}" if lat else "-",
            f"{lat.p90:.2f}" if lat else "-",
            f"{lat.p99:.2f}" if lat else "-",
            f"{r.throughput:.1f}",
            f"{r.achieved_gflops:.0f}" if r.achieved_gflops is not None else "-",
        ])
    return _table(["model", "file", "backend", "device", "batch", "mode", "requests", "first ms", "p50 ms", "p90 ms",
                   "p99 ms", "img/s", "GFLOP/s"], rows)


def _cosine(value: float | None) -> str:
    """A gate's min cosine; None where the candidate was never built or run."""
    return "not measured" if value is None else f"{value:.5f}"


def _measured_cosine(candidate: dict) -> float:
    """A ladder candidate's min cosine for ranking; one never measured (None) ranks last."""
    cosine = candidate["verdict"]["min_cosine"]
    return -2.0 if cosine is None else cosine


def render_low_precision(run, low, low_efficiency) -> str:
    """INT8 and BF16 sections: how each folder was made and gated, and what it gains over FP32."""
    parts = []
    if run.quantization:
        rows = []
        for record in run.quantization:
            if "error" in record:
                rows.append([record.get("model", "?"), "error", record["error"][:150], "", "", "", ""])
                continue
            for ladder in record.get("int8", {}).get("ladders", []):
                passing = next((c for c in ladder["candidates"] if c["verdict"]["passed"]), None)
                shown = passing or max(ladder["candidates"], key=_measured_cosine)
                rows.append([record["model"], f"INT8 {ladder['format']}", ladder["step"] or "**none passed**",
                             _cosine(shown["verdict"]["min_cosine"]), str(shown["verdict"]["flips"]),
                             f"{shown['quantizers']}/{ladder['activation_quantizers_all_int8']}",
                             ladder["summary"][:160]])
            bf16 = record.get("bf16", {})
            if bf16.get(BF16_GATE_FIELD):
                verdict = bf16[BF16_GATE_FIELD]
                rows.append([record["model"], "BF16 IR", "gate" if bf16["passed"] else "**missed**",
                             _cosine(verdict["min_cosine"]), str(verdict["flips"]), "-",
                             f"cosine ≥ {verdict['threshold']}" + (f": {verdict['reason']}" if verdict.get("reason") else "")])
            elif bf16:
                rows.append([record["model"], "BF16 IR", "not built", "", "", "", bf16.get("reason", "")])
        calibration = next((q["int8"]["calibration"]["description"] for q in run.quantization if q.get("int8")), "")
        parts += ["## INT8 and BF16: how each folder was made and gated", "",
                  f"Calibration: {calibration}. Gate: every backend that runs the file, against the original "
                  "model on `facezoo check`'s held-out faces (colour-asymmetric face plus pairs); INT8 needs min cosine "
                  "≥ the registry's check_thresholds.INT8 (0.99) and no flipped same/different decision, BF16 the "
                  "FP16 threshold. The ladder: plain PTQ → accuracy control → ignored scope → advanced options → "
                  "mixed precision; the first candidate that passes is published.", "",
                  _table(["model", "folder", "step that passed", "min cosine", "flips", "INT8 quantizers", "summary"], rows),
                  ""]
    if low:
        parts += ["## INT8 and BF16 against FP32 (same format, backend and setting)", "",
                  _table(["model", "precision", "format · backend", "setting", "FP32 img/s", "img/s", "× FP32", "p50 ms"],
                         [[c.model, c.precision, c.path, f"{c.mode} b{c.batch}", f"{c.fp32:.1f}", f"{c.value:.1f}",
                           f"{c.ratio:.2f}", f"{c.p50_ms:.2f}" if c.p50_ms else "-"] for c in low]),
                  ""]
    if low_efficiency:
        parts += ["## INT8 and BF16 against their measured MatMul peaks (best case per model)", "",
                  _table(["model", "case", "G(FL)OP/s", "peak", "% of peak"],
                         [[e.model, e.case, f"{e.achieved_gflops:.0f}", f"{e.peak_gflops:.0f}", f"{100 * e.fraction:.1f} %"]
                          for e in low_efficiency]),
                  "", "INT8 throughput counts the same multiply-adds as FP32 (2 per MAC), as integer operations.", ""]
    return "\n".join(parts) + ("\n" if parts else "")
