"""INT8 with a gate: plain PTQ first, then what the field does when it misses.

    ptq                nncf.quantize, symmetric, NNCF's defaults spelled out
    accuracy_control   nncf.quantize_with_accuracy_control; metric: min cosine to the ORIGINAL
                       model's outputs on held-out tuning faces; reverts at most a share of layers
    ignored_scope      first conv, the FC/BN layers after the last conv, PReLU (op and decomposed)
    advanced           on top of that scope: full bias correction; full 8-bit weights (overflow fix
                       off, on VNNI CPUs); SmoothQuant
    float_elementwise  the elementwise ops (residual adds, BN scale-shifts) take float inputs, the
                       convolutions and MatMuls stay INT8; then with SmoothQuant on them as well
    mixed_precision    the best candidate so far with its noisiest activation quantizers removed,
                       1, 2, 4, ... of them, up to a share of all (ranked in one pass on tuning faces)

The order after PTQ is chosen from what PTQ measured (:func:`plan_steps`): where elementwise
quantizers carry a large share of PTQ's noise (a deep residual network's skip path), the
float_elementwise step goes first; where accuracy control's ranking (one validation per quantizer
group) would not fit in the budget left, it goes last. The record says which order and why.

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

import numpy as np

from facezoo.numerics import cosine_rows
from facezoo.quantization.calibration import CalibrationSet, TuningSet
from facezoo.quantization.engines import engine_for
from facezoo.quantization.errors import QuantizationError
from facezoo.quantization.gate import SCREEN_FACES, Judge
from facezoo.quantization.recipes import Recipe
from facezoo.quantization.report import first_output, noise_ranking
from facezoo.quantization.scopes import OP_TYPES, FieldScope, field_scope
from facezoo.validation import ArtifactCheck

STEPS = ("ptq", "accuracy_control", "ignored_scope", "advanced", "float_elementwise", "mixed_precision")
#: PTQ's noise share on elementwise ops' inputs above which float_elementwise is tried first
ELEMENTWISE_FIRST_SHARE = 0.25
ELEMENTWISE_SMOOTH_QUANT_ALPHA = 0.5
#: full bias correction's cost in PTQs (iresnet100 on 2 cores: one candidate ran > 9 min, PTQ 66 s)
FULL_BIAS_CORRECTION_COST = 8.0
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
    steps: tuple[str, ...] = STEPS  # the ladder's steps (a caller may leave some out); plan_steps orders them
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


def budget_deadline(options: LadderOptions) -> float | None:
    """When ``options.budget_s``, started now, is spent (the budget's clock); None: no budget."""
    return None if options.budget_s is None else _now() + options.budget_s


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
    screened_on: int = 0  # > 0: failed the screen on this many faces, so never given the full gate

    def record(self) -> dict:
        return {"step": self.step, "label": self.label, "settings": self.settings, "verdict": self.verdict.verdict(),
                "quantizers": self.quantizers, "seconds": self.seconds, "error": self.error,
                "screened_out_on_faces": self.screened_on}


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
    plan: dict = field(default_factory=dict)  # the order tried after PTQ, and why

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
        screened = f" on the {best.screened_on} screening faces" if best.screened_on else ""
        return (f"{self.format}: no step passed; {stopped}best ({best.step}, {best.label}) missed by {cosine:.5f} "
                f"cosine (min {best.verdict.metric('min_cosine'):.5f} < {self.threshold}{screened}) and {flips} "
                f"flipped decision(s)")

    def record(self) -> dict:
        cosine, flips = self.shortfall
        return {
            "format": self.format, "source": self.source, "passed": self.passed, "step": self.step,
            "threshold": self.threshold, "activation_quantizers_all_int8": self.fp32_quantizers,
            "missed_by": None if self.passed else {"cosine": cosine, "flips": flips},
            "budget": {"budget_s": self.budget_s, "spent_s": round(sum(c.seconds for c in self.candidates), 1),
                       "ran_out": self.out_of_budget, "untried": list(self.untried)},
            "summary": self.summary(), "candidates": [c.record() for c in self.candidates],
            "error_by_quantizer": self.error_by_quantizer, "plan": self.plan,
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
    if deadline is None:
        deadline = budget_deadline(options)
    engine = engine_for(source)
    output = Path(output)
    if output.suffix != engine.suffix:
        raise QuantizationError(f"{output}: an INT8 {engine.format} file must end in {engine.suffix}")
    subset = min(options.subset_size, calibration.count)
    model = engine.load(Path(source))
    result = LadderResult(engine.format, str(source), None, options.target_cosine, gate.rank,
                          budget_s=options.budget_s)
    kept = _Best()

    def attempt(step_name: str, label: str, settings: dict, build, screen_first: bool = True) -> bool:
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
        screen = getattr(gate, "screen", lambda _: None)(output) if screen_first else None
        screened = screen is not None and not screen.passed
        verdict = screen if screened else gate(output)
        quantizers = len(engine.quantizers(candidate_model))
        result.candidates.append(Candidate(step_name, label, settings, verdict, quantizers, time.perf_counter() - started,
                                           screened_on=screen.samples if screened else 0))
        if prior is None or gate.rank(verdict) > gate.rank(prior.verdict):
            kept.model = candidate_model
        return verdict.passed

    try:
        plain = Recipe()
        passed = attempt("ptq", "plain NNCF PTQ", plain.record(),
                         lambda: engine.quantize(model, calibration.inputs, plain, subset), screen_first=False)
        result.fp32_quantizers = result.candidates[-1].quantizers
        if not passed:
            _focus_screen(engine, kept, gate)
        compute = _compute_quantizers(engine, kept.model) if kept.model is not None else result.fp32_quantizers
        if not passed:
            result.plan = plan_steps(options, _diagnose(engine, kept, tuning, result.candidates[0].seconds), deadline)
            result.untried += [f"{name}: not started, it would not fit in the budget left"
                               for name in result.plan["skipped"]]
            for step_name, label, settings, build in _ladder(engine, model, calibration, tuning, options, subset,
                                                             compute, kept, deadline, result.plan["order"]):
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
    """The best candidate model so far (the mixed-precision step starts from it), and the noise of
    its activation quantizers on the ranking faces, measured once per model: the plan, the
    mixed-precision ranking and the card's report all read it."""

    model = None
    _noise: tuple = (None, {})  # (the model it was measured on, quantizer -> relative noise)

    def noise(self, engine, faces) -> dict[str, float]:
        if self._noise[0] is not self.model:
            self._noise = (self.model, engine.noise(self.model, faces))
        return self._noise[1]


RANKING_FACES = 8  # tuning faces the noise of each activation quantizer is measured on


def _focus_screen(engine, kept: _Best, gate) -> None:
    """Later candidates are screened on the gate faces plain PTQ did worst on."""
    if kept.model is None or not hasattr(gate, "focus"):
        return
    (reference,) = gate.reference.values()
    count = len(gate.inputs)
    try:
        outputs = first_output(engine.run(kept.model, gate.inputs)).reshape(count, -1)
    except Exception:  # screening falls back to the first faces; the gate is unchanged
        return
    cosines = cosine_rows(np.asarray(reference, np.float32).reshape(count, -1), outputs)
    gate.focus(np.argsort(cosines)[:SCREEN_FACES])


def _error_by_quantizer(engine, kept: _Best, tuning: TuningSet) -> dict:
    """Where the best candidate's error comes from, for the card (one pass on tuning faces)."""
    if kept.model is None:
        return {}
    faces = tuning.inputs[:RANKING_FACES]
    try:
        rows, by_type = noise_ranking(engine, kept.model, faces, noise=kept.noise(engine, faces))
    except Exception as exc:  # a report must not cost the folder: say why it is missing
        return {"error": f"{type(exc).__name__}: {exc}"}
    return {"faces": f"{len(faces)} tuning faces", "measure": "relative noise |q(x) - x|^2 / |x|^2 where each sits",
            "noisiest": [row.record() for row in rows], "by_consumer_type": by_type}


def _remove(output: Path) -> None:
    output.unlink(missing_ok=True)
    if output.suffix == ".xml":
        output.with_suffix(".bin").unlink(missing_ok=True)


@dataclass(frozen=True)
class Diagnosis:
    """What plain PTQ's candidate says about the steps after it (one noise pass on tuning faces)."""

    elementwise_share: float  # of the summed relative noise, on inputs of elementwise ops
    quantizers: int
    seconds_per_pass: float  # one compile and run of the tuning faces: a validation's cost
    ptq_seconds: float = 0.0  # plain PTQ's build and gate


def _diagnose(engine, kept: "_Best", tuning: TuningSet, ptq_seconds: float = 0.0) -> Diagnosis | None:
    if kept.model is None:
        return None
    started = time.perf_counter()
    try:
        faces = tuning.inputs[:RANKING_FACES]
        _, by_type = noise_ranking(engine, kept.model, faces, noise=kept.noise(engine, faces))  # the first pass: timed
    except Exception:  # the order falls back to the default; the ladder still runs
        return None
    elementwise = sum(v["noise_share"] for kind, v in by_type.items()
                      if set(kind.split("+")) & set(_elementwise_types(engine)))
    return Diagnosis(round(elementwise, 4), sum(v["quantizers"] for v in by_type.values()),
                     round(time.perf_counter() - started, 2), round(ptq_seconds, 1))


def plan_steps(options: LadderOptions, diagnosis: Diagnosis | None, deadline: float | None) -> dict:
    """The steps after PTQ, most likely to pass within the budget first, and why."""
    order = [s for s in STEPS[1:] if s in options.steps]
    why = []
    if diagnosis is not None and "float_elementwise" in order and diagnosis.elementwise_share >= ELEMENTWISE_FIRST_SHARE:
        order.remove("float_elementwise")
        order.insert(0, "float_elementwise")
        why.append(f"elementwise ops' inputs carry {diagnosis.elementwise_share:.0%} of PTQ's noise "
                   f"(≥ {ELEMENTWISE_FIRST_SHARE:.0%}): float_elementwise first")
    left = None if deadline is None or diagnosis is None else deadline - _now()
    skip = []
    if left is not None and "accuracy_control" in order:
        # NNCF ranks every quantizer group with one validation on the ranking faces before reverting any
        estimate = diagnosis.quantizers * diagnosis.seconds_per_pass
        if estimate > left:
            order.remove("accuracy_control")
            order.append("accuracy_control")
            why.append(f"accuracy control's ranking alone would take about {estimate:.0f} s "
                       f"({diagnosis.quantizers} quantizers × {diagnosis.seconds_per_pass:.1f} s), more than the "
                       f"{max(left, 0):.0f} s left: last")
    # full bias correction runs as one NNCF call the budget cannot stop: not started where it would not fit
    estimate = diagnosis.ptq_seconds * FULL_BIAS_CORRECTION_COST if diagnosis is not None else 0.0
    if left is not None and "advanced" in order and estimate > left:
        order.remove("advanced")
        skip.append("advanced")
        why.append(f"the advanced step's full bias correction would take about {estimate:.0f} s "
                   f"({FULL_BIAS_CORRECTION_COST:g}× PTQ's {diagnosis.ptq_seconds:.0f} s) and cannot be stopped "
                   f"midway; {max(left, 0):.0f} s left: not started")
    record = {"order": order, "why": why or ["the default order"], "skipped": skip}
    if diagnosis is not None:
        record["ptq_noise_on_elementwise_inputs"] = diagnosis.elementwise_share
    return record


def _ladder(engine, model, calibration, tuning, options, subset, quantizers, kept, deadline=None, order=None):
    """(step, label, settings, build) of every candidate after plain PTQ, step by step in ``order``."""
    for step_name in order or [s for s in STEPS[1:] if s in options.steps]:
        yield from _STEP_CANDIDATES[step_name](engine, model, calibration, tuning, options, subset, quantizers,
                                               kept, deadline)


def _scoped(engine, model) -> tuple[Recipe, "FieldScope"]:
    scope = field_scope(engine.view(model))
    return Recipe().with_(ignored_names=tuple(scope.names), ignored_types=("PRelu",)), scope


def _cap(options: LadderOptions, quantizers: int) -> int:
    return max(1, int(options.max_float_share * max(quantizers, 1)))


def _accuracy_control(engine, model, calibration, tuning, options, subset, quantizers, kept, deadline):
    cap = _cap(options, quantizers)
    target = min(options.target_cosine + options.tuning_margin, 0.99999)
    plain = Recipe()
    restorer = {"max_drop": 1.0 - target, "max_iterations": cap,
                "ranking_subset_size": min(options.ranking_subset_size, len(tuning.inputs)),
                "out_of_time": lambda: deadline is not None and _now() >= deadline}
    settings = {**plain.record(), "metric": "min cosine to the original on tuning faces",
                "tuning": tuning.description, "target": target, "max_reverted_groups": cap}
    yield ("accuracy_control", f"NNCF accuracy control to cosine {target:.4f}", settings,
           lambda: engine.accuracy_control(model, calibration.inputs, tuning, plain, subset, restorer))


def _ignored_scope(engine, model, calibration, tuning, options, subset, quantizers, kept, deadline):
    scoped, scope = _scoped(engine, model)
    yield ("ignored_scope", "first conv, last FC/BN and PReLU in float", {**scoped.record(), "scope": scope.record()},
           lambda: engine.quantize(model, calibration.inputs, scoped, subset))


def _advanced(engine, model, calibration, tuning, options, subset, quantizers, kept, deadline):
    scoped, scope = _scoped(engine, model)
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


def _elementwise_types(engine) -> tuple[str, ...]:
    """The op types of a residual add and a BN scale-shift, as the engine's format spells them."""
    return tuple(t for kind in ("add", "mul") for t in OP_TYPES[engine.format][kind])


def _float_elementwise(engine, model, calibration, tuning, options, subset, quantizers, kept, deadline):
    types = _elementwise_types(engine)
    recipe = Recipe(ignored_types=types)
    yield ("float_elementwise", f"elementwise ops ({', '.join(types)}) in float, convolutions and MatMuls INT8",
           recipe.record(), lambda: engine.quantize(model, calibration.inputs, recipe, subset))
    smooth = recipe.with_(smooth_quant_alpha=ELEMENTWISE_SMOOTH_QUANT_ALPHA)
    yield ("float_elementwise", f"and SmoothQuant alpha {ELEMENTWISE_SMOOTH_QUANT_ALPHA} on the convolutions",
           smooth.record(), lambda: engine.quantize(model, calibration.inputs, smooth, subset))


def _compute_quantizers(engine, model) -> int:
    """Activation quantizers that feed a convolution or a MatMul: the layers whose INT8 is the speed."""
    kinds = {t for kind in ("conv", "fc") for t in OP_TYPES[engine.format][kind]}
    return sum(1 for feeds in engine.feeds(model).values()
               if any(part.split(" ", 1)[0] in kinds for part in feeds.split(", ")))


def _mixed_precision(engine, model, calibration, tuning, options, subset, quantizers, kept, deadline):
    """``quantizers``: PTQ's quantizers that feed a convolution or MatMul; at most a share of those
    layers may run in float (elementwise ops in float cost little speed and do not count)."""
    cap = _cap(options, quantizers)
    ranking = _Ranking(engine, kept, tuning)
    floor = quantizers - cap  # at least this many stay: at most `cap` compute layers in float
    room = _compute_quantizers(engine, kept.model) - floor if kept.model is not None else 0
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
        settings = {"removed": count, "float_cap": cap, "compute_quantizers_all_int8": quantizers,
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
            noise = self.kept.noise(self.engine, self.tuning.inputs[:RANKING_FACES])
            self.order = sorted(noise, key=noise.get, reverse=True)
            self.base = self.kept.model
        return self.engine.bypass(self.base, set(self.order[:count]))


def _has_vnni() -> bool:
    from facezoo.runtime.precision import cpu_flags

    flags = cpu_flags() or frozenset()
    return any(f in flags for f in ("avx512_vnni", "avx_vnni", "amx_int8"))


_STEP_CANDIDATES = {"accuracy_control": _accuracy_control, "ignored_scope": _ignored_scope, "advanced": _advanced,
                    "float_elementwise": _float_elementwise, "mixed_precision": _mixed_precision}
