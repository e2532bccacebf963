"""The accuracy gates of face recognition: how close each precision must stay to the original model.

One table for the converter's validation, `facezoo check`, the INT8/BF16 gate, the registry's
defaults and the help texts; the recognition task (facezoo.tasks.recognition) applies it, and a
task with other outputs keeps its own table in its module. A converted artifact passes when, on
the same faces as the original model,

- every embedding's cosine to the original's is at least ``min_cosine``;
- the largest absolute difference, over the original's largest |value|, is at most
  ``max_relative_error`` (where set): cosine alone is blind to a small systematic slip that
  changes every embedding the same way, which a relative bound sees;
- a batch gives the same rows as its images run one at a time, within the same bounds (both are
  the artifact computing the same thing with different rounding; a batch dimension baked into a
  Reshape gives rows that are wrong, far outside them);
- no same/different decision over the pairs of faces flips (``max_flips``, default 0).

The FP16 bound was set from measurements on stand-ins with trained-network statistics (quiet BN
channels, shifted moving statistics, PReLU slopes over [0, 1]): see tests/test_gates.py for
correct artifacts that must pass and mutated ones that must fail.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Gate:
    """The bounds one precision's artifacts must meet against the original model."""

    min_cosine: float
    max_relative_error: float | None  # None: cosine and decisions only (quantized models)


GATES: dict[str, Gate] = {
    "FP32": Gate(min_cosine=0.99999, max_relative_error=1e-3),
    "FP16": Gate(min_cosine=0.999, max_relative_error=1e-2),
    "INT8": Gate(min_cosine=0.99, max_relative_error=None),
    # bf16 keeps 8 bits of mantissa against FP16's 11: the FP16 cosine, no relative bound
    "BF16": Gate(min_cosine=0.999, max_relative_error=None),
}
#: Same/different decisions allowed to flip against the original, unless the user allows more.
DEFAULT_MAX_FLIPS = 0


def gate_for(precision: str, min_cosine: float | None = None) -> Gate:
    """The precision's gate, with the registry's (or the user's) cosine threshold if given."""
    try:
        gate = GATES[precision]
    except KeyError:
        raise KeyError(f"no accuracy gate for precision {precision!r}; known: {', '.join(GATES)}") from None
    return gate if min_cosine is None else Gate(min_cosine, gate.max_relative_error)


def default_cosine_thresholds() -> dict[str, float]:
    return {precision: gate.min_cosine for precision, gate in GATES.items()}


def describe(precision: str) -> str:
    """The gate in words, for help texts and reports."""
    gate = GATES[precision]
    words = f"cosine ≥ {gate.min_cosine:g}"
    if gate.max_relative_error is not None:
        words += f", max relative error ≤ {gate.max_relative_error:g}"
    return f"{precision}: {words}"
