"""INT8 with a gate: plain PTQ first, then what the field does when it misses, in order.

    ptq               nncf.quantize, symmetric, NNCF's defaults spelled out
    accuracy_control  nncf.quantize_with_accuracy_control; metric: min cosine to the ORIGINAL
                      model's outputs on held-out tuning faces; reverts at most a share of layers
    ignored_scope     first conv, the FC/BN layers after the last conv, PReLU (op and decomposed)
    advanced          on top of that scope: full bias correction; full 8-bit weights (overflow fix
                      off, on VNNI CPUs); SmoothQuant
    mixed_precision   the best candidate so far with its noisiest activation quantizers removed,
                      1, 2, 4, ... of them, up to a share of all (ranked in one pass on tuning faces)

Every candidate is written to the final file name in the caller's (scratch) folder and judged by
the caller's gate; the first that passes stops the ladder. Nothing is left on disk if none does.

A budget (``LadderOptions.budget_s``, ``facezoo convert --int8-budget-s``) bounds the ladder's wall
time: plain PTQ always runs; no later candidate starts once the budget is spent, accuracy control
(one candidate that can run for many minutes) stops at its next validation, and the record says
which were not tried. The default scales with the model's GFLOPs and the CPUs at hand
(:func:`default_budget_s`).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from facezoo.quantization.calibration import CalibrationSet, TuningSet
from facezoo.quantization.engines import engine_for
from facezoo.quantization.errors import QuantizationError
from facezoo.quantization.gate import Judge
from facezoo.quantization.recipes import Recipe
from facezoo.quantization.report import noise_ranking
from facezoo.quantization.scopes import field_scope
from facezoo.validation import ArtifactCheck

STEPS = ("ptq", "accuracy_control", "ignored_scope", "advanced", "mixed_precision")
#: the default budget: BUDGET_S for a model of BUDGET_GFLOPS (iresnet100) on BUDGET_CPUS cores,
#: scaled by GFLOPs and cores, never below MIN_BUDGET_S (a small model's fixed costs dominate)
BUDGET_S, BUDGET_GFLOPS, BUDGET_CPUS, MIN_BUDGET_S = 600.0, 24.179, 2, 120.0
_now = time.monotonic  # the budget's clock (a test turns it)


def default_budget_s(gflops: float | None, cpus: int | None = None) -> float:
    """The INT8 ladder's default wall-time budget for a model of ``gflops`` on ``cpus`` cores."""
    cpus = cpus or len(os.sched_getaffinity(0))
    scale = (gflops / BUDGET_GFLOPS if gflops else 1.0) * BUDGET_CPUS / max(cpus, 1)
    return round(max(MIN_BUDGET_S, BUDGET_S * scale), 1)


@dataclass(frozen=True)
class LadderOptions:
    subset_size: int = 300  # calibration images NNCF uses (at most the calibration set)
    target_cosine: float = 0.99  # the gate's threshold: accuracy control aims a margin above it
    tuning_margin: float = 0.002
    max_float_share: float = 0.5  # accuracy control / mixed precision keep at most this share of layers float
    ranking_subset_size: int = 8  # tuning faces accuracy control ranks layers on
    smooth_quant_alpha: float = 0.15
    steps: tuple[str, ...] = STEPS  # the ladder, in order; a caller may leave steps out, never reorder them
    budget_s: float | None = None  # wall time for every format's ladder together; None: no limit

    def __post_init__(self) -> None:
        if "ptq" not in self.steps or list(self.steps) != [s for s in STEPS if s in self.steps]:
            raise QuantizationError(
                f"ladder steps {list(self.steps)}: expected ptq and any of the others, in the order {', '.join(STEPS)}"
            )
        if self.budget_s is not None and not self.budget_s > 0:
            raise QuantizationError(f"INT8 budget {self.budget_s} s: expected a positive number of seconds")
        if not 0.0 < self.max_float_share < 1.0:
            raise QuantizationError(f"max_float_share {self.max_float_share}: expected a fraction between 0 and 1")


@dataclass(frozen=True)
class Candidate:
    """One model tried, how it was made, and the gate's record of it (its worst backend)."""

    step: str
    label: str
    settings: dict
    verdict: ArtifactCheck
    quantizers: int  # activation quantizers left in the model
    seconds: float
    error: str = ""

    def record(self) -> dict:
        return {"step": self.step, "label": self.label, "settings": self.settings, "verdict": self.verdict.verdict(),
                "quantizers": self.quantizers, "seconds": self.seconds, "error": self.error}


@dataclass
class LadderResult:
    format: str
    source: str
    path: str | None  # the passing file (in the caller's folder), None if none passed
    threshold: float
    rank: Callable[[ArtifactCheck], tuple] = field(repr=False, default=lambda check: (check.passed,))
    candidates: list[Candidate] = field(default_factory=list)
    fp32_quantizers: int = 0  # activation quantizers of plain PTQ: the "all INT8" count
    budget_s: float | None = None
    untried: list[str] = field(default_factory=list)  # candidates not started: the budget was spent
    error_by_quantizer: dict = field(default_factory=dict)  # the best candidate's noisiest quantizers

    @property
    def out_of_budget(self) -> bool:
        return bool(self.untried)

    @property
    def passed(self) -> bool:
        return self.path is not None

    @property
    def step(self) -> str | None:
        return next((c.step for c in self.candidates if c.verdict.passed), None)

    @property
    def best(self) -> Candidate | None:
        best = None
        for candidate in self.candidates:
            if best is None or self.rank(candidate.verdict) > self.rank(best.verdict):
                best = candidate
        return best

    @property
    def shortfall(self) -> tuple[float, int]:
        """(cosine below the threshold, flips) of the best candidate; (0, 0) when one passed."""
        best = self.best
        if best is None:
            return (math.inf, 0)
        if best.verdict.passed:
            return (0.0, 0)
        verdict = best.verdict.verdict()
        cosine = verdict["min_cosine"]
        return (self.threshold - cosine if cosine is not None else math.inf, verdict["flips"])

    def summary(self) -> str:
        if self.passed:
            c = next(c for c in self.candidates if c.verdict.passed)
            verdict = c.verdict.verdict()
            return (f"{self.format}: passed at step {c.step} ({c.label}): min cosine {verdict['min_cosine']:.5f}, "
                    f"{verdict['flips']} flips, {c.quantizers}/{self.fp32_quantizers} activation quantizers")
        best = self.best
        if best is None:
            return f"{self.format}: no candidate was built"
        cosine, flips = self.shortfall
        stopped = (f"the INT8 budget of {self.budget_s:.0f} s ran out after {len(self.candidates)} candidate(s), "
                   f"{len(self.untried)} not tried; " if self.out_of_budget else "")
        return (f"{self.format}: no step passed; {stopped}best ({best.step}, {best.label}) missed by {cosine:.5f} "
                f"cosine (min {best.verdict.metric('min_cosine'):.5f} < {self.threshold}) and {flips} flipped "
                f"decision(s)")

    def record(self) -> dict:
        cosine, flips = self.shortfall
        return {
            "format": self.format, "source": self.source, "passed": self.passed, "step": self.step,
            "threshold": self.threshold, "activation_quantizers_all_int8": self.fp32_quantizers,
            "missed_by": None if self.passed else {"cosine": cosine, "flips": flips},
            "budget": {"budget_s": self.budget_s, "spent_s": round(sum(c.seconds for c in self.candidates), 1),
                       "ran_out": self.out_of_budget, "untried": list(self.untried)},
            "summary": self.summary(), "candidates": [c.record() for c in self.candidates],
            "error_by_quantizer": self.error_by_quantizer,
        }


def run_ladder(
    source: Path,
    output: Path,
    calibration: CalibrationSet,
    tuning: TuningSet,
    gate: Judge,
    options: LadderOptions = LadderOptions(),
    step: Callable[[str], None] = lambda _: None,
    deadline: float | None = None,
) -> LadderResult:
    """Quantize ``source`` (FP32 .xml or .onnx) into ``output`` until ``gate`` passes a candidate,
    or until ``deadline`` (monotonic seconds; default: ``options.budget_s`` from now) has passed."""
    if deadline is None and options.budget_s is not None:
        deadline = _now() + options.budget_s
    engine = engine_for(source)
    output = Path(output)
    if output.suffix != engine.suffix:
        raise QuantizationError(f"{output}: an INT8 {engine.format} file must end in {engine.suffix}")
    subset = min(options.subset_size, calibration.count)
    model = engine.load(Path(source))
    result = LadderResult(engine.format, str(source), None, options.target_cosine, gate.rank,
                          budget_s=options.budget_s)
    kept = _Best()

    def attempt(step_name: str, label: str, settings: dict, build) -> bool:
        left = "" if deadline is None else f" · {max(0.0, deadline - _now()):.0f} s of the budget left"
        step(f"{engine.format} INT8 · {step_name}: {label}{left}")
        started = time.perf_counter()
        prior = result.best
        try:
            candidate_model = build()
            engine.save(candidate_model, output)
        except Exception as exc:  # NNCF and the libraries raise many types; a failed build is a failed step
            # never judged: ranks below every candidate that ran
            verdict = gate.unbuilt(f"could not build: {type(exc).__name__}: {exc}")
            result.candidates.append(Candidate(step_name, label, settings, verdict, 0, time.perf_counter() - started,
                                               f"{type(exc).__name__}: {exc}"))
            return False
        verdict = gate(output)
        quantizers = len(engine.quantizers(candidate_model))
        result.candidates.append(Candidate(step_name, label, settings, verdict, quantizers, time.perf_counter() - started))
        if prior is None or gate.rank(verdict) > gate.rank(prior.verdict):
            kept.model = candidate_model
        return verdict.passed

    try:
        plain = Recipe()
        passed = attempt("ptq", "plain NNCF PTQ", plain.record(), lambda: engine.quantize(model, calibration.inputs, plain, subset))
        result.fp32_quantizers = result.candidates[-1].quantizers
        if not passed:
            for step_name, label, settings, build in _ladder(engine, model, calibration, tuning, options, subset,
                                                             result.fp32_quantizers, kept, deadline):
                if deadline is not None and _now() >= deadline:
                    result.untried.append(f"{step_name}: {label}")
                    continue  # the rest are listed, not built
                if attempt(step_name, label, settings, build):
                    passed = True
                    break
        result.error_by_quantizer = _error_by_quantizer(engine, kept, tuning)
        if passed:
            result.path = str(output)
            return result
        _remove(output)
        return result
    except BaseException:
        _remove(output)
        raise


class _Best:
    """The best candidate model so far (the mixed-precision step starts from it)."""

    model = None


RANKING_FACES = 8  # tuning faces the noise of each activation quantizer is measured on


def _error_by_quantizer(engine, kept: _Best, tuning: TuningSet) -> dict:
    """Where the best candidate's error comes from, for the card (one pass on tuning faces)."""
    if kept.model is None:
        return {}
    faces = tuning.inputs[:RANKING_FACES]
    try:
        rows, by_type = noise_ranking(engine, kept.model, faces)
    except Exception as exc:  # a report must not cost the folder: say why it is missing
        return {"error": f"{type(exc).__name__}: {exc}"}
    return {"faces": f"{len(faces)} tuning faces", "measure": "relative noise |q(x) - x|^2 / |x|^2 where each sits",
            "noisiest": [row.record() for row in rows], "by_consumer_type": by_type}


def _remove(output: Path) -> None:
    output.unlink(missing_ok=True)
    if output.suffix == ".xml":
        output.with_suffix(".bin").unlink(missing_ok=True)


def _ladder(engine, model, calibration, tuning, options, subset, quantizers, kept, deadline=None):
    """(step, label, settings, build) of every candidate after plain PTQ, in the issue's order."""
    cap = max(1, int(options.max_float_share * max(quantizers, 1)))
    target = min(options.target_cosine + options.tuning_margin, 0.99999)
    plain = Recipe()
    scope = field_scope(engine.view(model))
    scoped = plain.with_(ignored_names=tuple(scope.names), ignored_types=("PRelu",))
    if "accuracy_control" in options.steps:
        restorer = {"max_drop": 1.0 - target, "max_iterations": cap,
                    "ranking_subset_size": min(options.ranking_subset_size, len(tuning.inputs)),
                    "out_of_time": lambda: deadline is not None and _now() >= deadline}
        settings = {**plain.record(), "metric": "min cosine to the original on tuning faces",
                    "tuning": tuning.description, "target": target, "max_reverted_groups": cap}
        yield ("accuracy_control", f"NNCF accuracy control to cosine {target:.4f}", settings,
               lambda: engine.accuracy_control(model, calibration.inputs, tuning, plain, subset, restorer))
    if "ignored_scope" in options.steps:
        yield ("ignored_scope", "first conv, last FC/BN and PReLU in float", {**scoped.record(), "scope": scope.record()},
               lambda: engine.quantize(model, calibration.inputs, scoped, subset))
    if "advanced" in options.steps:
        recipe = scoped.with_(fast_bias_correction=False)
        variants = [("full bias correction", recipe)]
        if _has_vnni():
            recipe = recipe.with_(overflow_fix="disable")
            variants.append(("full bias correction, 8-bit weights everywhere (overflow fix off: VNNI CPU)", recipe))
        variants.append((f"and SmoothQuant alpha {options.smooth_quant_alpha}",
                         recipe.with_(smooth_quant_alpha=options.smooth_quant_alpha)))
        for label, variant in variants:
            yield ("advanced", label, {**variant.record(), "scope": scope.record()},
                   lambda variant=variant: engine.quantize(model, calibration.inputs, variant, subset))
    if "mixed_precision" in options.steps:
        ranking = _Ranking(engine, kept, tuning)
        floor = quantizers - cap  # at least this many activation quantizers stay: at most `cap` layers float
        room = len(engine.quantizers(kept.model)) - floor if kept.model is not None else 0
        counts, k = [], 1
        while k < room:
            counts.append(k)
            k *= 2
        if room > 0:
            counts.append(room)
        else:
            def at_cap():
                raise QuantizationError(f"not tried: the best candidate already keeps {quantizers - floor - room} of "
                                        f"{quantizers} activation quantizers' layers in float, the cap ({cap})")

            yield ("mixed_precision", "no layer left to keep in float under the cap", {"float_cap": cap}, at_cap)
        for count in counts:
            settings = {"removed": count, "float_cap": cap, "all_int8": quantizers,
                        "ranking": "relative noise |q(x) - x|^2 / |x|^2 of each activation quantizer on tuning faces"}
            yield ("mixed_precision", f"best candidate with its {count} noisiest activation quantizer(s) removed",
                   settings, lambda count=count: ranking.without(count))


class _Ranking:
    """Activation quantizers of the best candidate before this step, noisiest first (computed once)."""

    def __init__(self, engine, kept: _Best, tuning: TuningSet):
        self.engine, self.kept, self.tuning = engine, kept, tuning
        self.base = None
        self.order: list[str] = []

    def without(self, count: int):
        if self.base is None:
            if self.kept.model is None:
                raise QuantizationError("no earlier candidate to keep layers of in float")
            noise = self.engine.noise(self.kept.model, self.tuning.inputs[:RANKING_FACES])
            self.order = sorted(noise, key=noise.get, reverse=True)
            self.base = self.kept.model
        return self.engine.bypass(self.base, set(self.order[:count]))


def _has_vnni() -> bool:
    from facezoo.runtime.precision import cpu_flags

    flags = cpu_flags() or frozenset()
    return any(f in flags for f in ("avx512_vnni", "avx_vnni", "amx_int8"))
