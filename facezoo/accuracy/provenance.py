"""Where a measured figure's weights came from, and the label every measured number carries.

A figure measured on stand-in weights, weights that are not the published checkpoint, or
generated faces is never a statement about the published model; `facezoo evaluate` (verification
and WIDER FACE) prints the label beside every number.
"""

from __future__ import annotations

from facezoo.registry import ModelSpec, Zoo

STANDIN_REGISTRY_HEADER = "# facezoo stand-in registry"


def _is_standin_registry(zoo: Zoo) -> bool:
    try:
        with open(zoo.path, encoding="utf-8") as handle:
            return handle.readline().startswith(STANDIN_REGISTRY_HEADER)
    except OSError:
        return False


def artifact_weights(artifact, spec: ModelSpec | None, zoo: Zoo) -> str:
    """published / stand-in / not-published / unverified, from the model card's source checksums."""
    from facezoo.registry import published_hashes

    recorded = (artifact.card.source.get("files") if artifact.card else None) or {}
    if not recorded or spec is None:
        return "unverified"
    if _is_standin_registry(zoo):
        standin = {f.name: f.sha256 for f in spec.files}
        if any(standin.get(name) == sha for name, sha in recorded.items()):
            return "stand-in"
    expected = published_hashes(spec)
    comparable = {name: sha for name, sha in recorded.items() if expected.get(name)}
    if not comparable:
        return "unverified"
    return "published" if all(expected[name] == sha for name, sha in comparable.items()) else "not-published"


def provenance_label(weights: str, synthetic: bool) -> tuple[bool, str]:
    """(is this the model's accuracy?, the label to print with every measured number)."""
    reasons = []
    if synthetic:
        reasons.append("a SYNTHETIC set of generated faces")
    if weights == "stand-in":
        reasons.append("STAND-IN weights")
    elif weights == "not-published":
        reasons.append("weights that are NOT the published checkpoint (stand-in or modified)")
    elif weights == "unverified":
        reasons.append("weights without a published checksum to verify (stand-ins, if you built them)")
    if synthetic or weights in ("stand-in", "not-published"):
        return False, "measured on " + " and ".join(reasons) + ": NOT the model's accuracy"
    if reasons:
        return True, "measured on this artifact; " + reasons[0]
    return True, "measured on this artifact with the published weights"


__all__ = ["STANDIN_REGISTRY_HEADER", "artifact_weights", "provenance_label"]
