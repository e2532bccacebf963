"""1:N identification: the split, rank-1/CMC, the threshold at a FAR and DIR, by hand-checkable cases;
and `facezoo evaluate --protocol identification` end to end on generated faces."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from facezoo.accuracy.datasets import SYNTHETIC_MARKER
from facezoo.accuracy.identification import (
    IdentificationSetError,
    cmc_curve,
    dir_far_curve,
    evaluate_identification,
    left_out,
    split_identities,
    threshold_at_far,
    true_ranks,
)
from facezoo.cli.main import app
from facezoo.faces import synthetic_face

NAME = "mindface-arcface-mobilefacenet"


def _unit(*angles_deg: float) -> np.ndarray:
    """2-D unit vectors at these angles: cosines are easy to work out by hand."""
    radians = np.deg2rad(np.asarray(angles_deg, np.float64))
    return np.stack([np.cos(radians), np.sin(radians)], axis=1)


def _folder(root, layout: dict[str, int]):
    """root/<identity>/<k>.png for each identity and image count (tiny files: the split never decodes them)."""
    for name, count in layout.items():
        (root / name).mkdir(parents=True)
        for k in range(count):
            (root / name / f"{k:02d}.png").write_bytes(b"png")
    return root


# ----------------------------------------------------------------------------- closed set


def test_a_perfect_model_has_rank1_one_and_a_flat_cmc():
    gallery = np.eye(4)[:3] * [[1.0], [2.0], [0.5]]  # lengths differ: search is on normalised embeddings
    probes = np.eye(4)[[0, 0, 1, 2, 2]] * 3.0
    result = evaluate_identification(gallery, probes, [0, 0, 1, 2, 2])
    assert result.rank1 == 1.0
    assert result.cmc.tolist() == [1.0, 1.0, 1.0]  # ranks 1 .. gallery size (3 < 20)
    assert result.ranks.tolist() == [1, 1, 1, 1, 1]
    assert result.mated_probes == 5 and result.non_mated_probes == 0


def test_a_known_confusion_gives_its_ranks_and_cmc():
    gallery = _unit(0, 90, 180)  # identities A, B, C
    # A's probe at 60°: B (cos 30°) beats A (cos 60°): rank 2. B's at 95°: right.
    # C's at 100°: B (10° away), then C (80°): rank 2. A's at 10°: right.
    probes = _unit(60, 95, 100, 10)
    truth = [0, 1, 2, 0]
    result = evaluate_identification(gallery, probes, truth)
    assert result.ranks.tolist() == [2, 1, 2, 1]
    assert result.cmc.tolist() == [0.5, 1.0, 1.0]
    assert result.rank1 == 0.5


def test_ties_count_against_the_probe():
    scores = np.array([[0.7, 0.7, 0.1], [0.9, 0.2, 0.2]])
    assert true_ranks(scores, np.array([0, 1])).tolist() == [2, 3]


def test_cmc_stops_at_rank_20_or_the_gallery_size():
    ranks = np.array([1, 3, 25, 2])
    assert len(cmc_curve(ranks, gallery_size=30)) == 20
    assert cmc_curve(ranks, gallery_size=30)[[0, 1, 2, 19]].tolist() == [0.25, 0.5, 0.75, 0.75]
    assert len(cmc_curve(ranks, gallery_size=7)) == 7


# ----------------------------------------------------------------------------- open set


def test_the_threshold_lets_at_most_the_far_of_non_mated_probes_through():
    best = np.arange(100)[::-1] / 100  # 100 non-mated best scores 0.99, 0.98, ..., 0
    threshold, reason = threshold_at_far(best, 1e-2)
    assert reason is None and 0.98 < threshold <= 0.99  # 0.99 passes (1 of 100), 0.98 must not
    assert np.sum(best >= threshold) == 1
    threshold, _ = threshold_at_far(best, 0.05)
    assert np.sum(best >= threshold) == 5 and 0.94 < threshold <= 0.95
    # ties at the boundary: letting one of two equal scores through is impossible, so neither goes
    tied = np.array([0.9, 0.9] + [0.1] * 98)
    threshold, _ = threshold_at_far(tied, 1e-2)
    assert np.sum(tied >= threshold) == 0 and threshold > 0.9
    # a share whose n * far is 28.999... in binary still allows 29 false alarms
    threshold, _ = threshold_at_far(best, 0.29)
    assert np.sum(best >= threshold) == 29


def test_a_far_that_cannot_be_resolved_is_null_with_the_reason():
    threshold, reason = threshold_at_far(np.full(999, 0.3), 1e-3)
    assert threshold is None and "1000 non-mated probes" in reason and "there are 999" in reason
    threshold, reason = threshold_at_far(np.zeros(0), 1e-2)
    assert threshold is None and "no non-mated probes" in reason
    assert threshold_at_far(np.full(1000, 0.3), 1e-3)[1] is None


def test_dir_counts_right_top1_above_the_threshold():
    # gallery: A at 0°, B at 90°. 100 non-mated probes at 135°+k*0.4°, best cosine cos(45°+k*0.4°) (with B):
    # the highest is cos 45°, so at FAR 1 % the threshold sits just above cos(45.4°).
    gallery = _unit(0, 90)
    strangers = _unit(*(135 + 0.4 * np.arange(100)))
    mated = _unit(10, 44, 50, 85)  # A's at 10° (right, cos .98), A's at 44° (right, cos .72), A's at 50° (B wins),
    truth = [0, 0, 0, 1] + [-1] * 100  # B's at 85° (right, cos .996)
    result = evaluate_identification(gallery, np.concatenate([mated, strangers]), truth)
    assert result.rank1 == 0.75 and result.non_mated_probes == 100
    point = {round(p.far, 6): p for p in result.open_set}
    at_1 = point[0.01]
    assert at_1.false_alarms == 1
    assert np.cos(np.deg2rad(45.4)) - 1e-12 < at_1.threshold < np.cos(np.deg2rad(45)) + 1e-12
    # 44°: cos(44°) = 0.719 > cos(45°) passes; so all three right top-1 pass
    assert at_1.dir == 0.75
    assert point[0.001].dir is None and "1000" in point[0.001].reason
    measured = result.measured()
    assert measured["rank-1"] == 0.75 and measured["DIR@FAR=1e-2"] == 0.75 and measured["DIR@FAR=1e-3"] is None
    # A's probe at -46°: still top-1 right, but its cosine (cos 46°) is below the threshold: no longer counted
    mated = _unit(10, -46, 50, 85)
    result = evaluate_identification(gallery, np.concatenate([mated, strangers]), truth)
    assert result.open_set[0].dir == 0.5 and result.rank1 == 0.75


def test_the_dir_far_curve_rises_to_rank1_at_far_one():
    gallery = _unit(0, 90)
    probes = np.concatenate([_unit(10, 30, 80, 40), _unit(40, 45, 60)])  # B's probe at 40° goes to A
    result = evaluate_identification(gallery, probes, [0, 0, 1, 1, -1, -1, -1])
    assert result.curve_far[0] == 0.0 and result.curve_far[-1] == 1.0
    assert np.all(np.diff(result.curve_far) > 0) and np.all(np.diff(result.curve_dir) >= 0)
    assert result.curve_dir[-1] == result.rank1 == 0.75
    far, rate = dir_far_curve(np.zeros(0), 3, np.zeros(0))
    assert far.size == 0 and rate.size == 0


def test_inputs_that_do_not_fit_are_refused():
    with pytest.raises(ValueError, match="one dimension"):
        evaluate_identification(np.eye(3), np.eye(4), [0, 1, 2, 0])
    with pytest.raises(ValueError, match="gallery row"):
        evaluate_identification(np.eye(3), np.eye(3), [0, 1, 3])
    with pytest.raises(ValueError, match="mated probe"):
        evaluate_identification(np.eye(3), np.eye(3), [-1, -1, -1])
    with pytest.raises(IdentificationSetError, match="NaN"):
        evaluate_identification(np.eye(3), np.full((2, 3), np.nan), [0, 1])


# ----------------------------------------------------------------------------- the split


def test_left_out_identities_are_spread_evenly():
    assert [i for i, out in enumerate(left_out(10, 0.5)) if out] == [1, 3, 5, 7, 9]
    assert sum(left_out(100, 0.29)) == 29
    assert not any(left_out(5, 0.0))
    assert [i for i, out in enumerate(left_out(6, 1 / 3)) if out] == [2, 5]


def test_the_split_is_deterministic_sorted_and_open_set(tmp_path):
    layout = {"dave": 3, "alice": 2, "carol": 1, "bob": 4, "erin": 2, "frank": 2}
    root = _folder(tmp_path / "set", layout)
    (root / ".cache").mkdir()
    (root / "notes.txt").write_text("not an image")
    (root / SYNTHETIC_MARKER).write_text("{}")
    split = split_identities(root)  # 6 identities: default share 0.5
    assert split.enrolled == ("alice", "carol", "erin") and split.unknown == ("bob", "dave", "frank")
    assert [p.relative_to(root).as_posix() for p in split.gallery] == ["alice/00.png", "carol/00.png", "erin/00.png"]
    assert [p.relative_to(root).as_posix() for p in split.probes][:2] == ["alice/01.png", "erin/01.png"]
    assert split.probe_truth == (0, 2) + (-1,) * 9  # carol's only image is a gallery entry (a distractor)
    assert (split.mated_probes, split.non_mated_probes, split.images) == (2, 9, 14)
    # the same folder made in another order splits the same way
    other = _folder(tmp_path / "again", dict(reversed(list(layout.items()))))
    again = split_identities(other)
    assert again.probe_truth == split.probe_truth and again.enrolled == split.enrolled
    assert [p.relative_to(other) for p in again.probes] == [p.relative_to(root) for p in split.probes]
    closed = split_identities(root, unknown_share=0.0)
    assert closed.unknown == () and closed.non_mated_probes == 0 and closed.mated_probes == 8
    # few identities: a closed set by default
    few = split_identities(_folder(tmp_path / "few", {"x": 2, "y": 2, "z": 1}))
    assert few.unknown == () and few.unknown_share == 0.0


def test_folders_that_cannot_give_a_mated_probe_are_refused_by_name(tmp_path):
    with pytest.raises(IdentificationSetError, match="not a folder of identities"):
        split_identities(tmp_path / "missing")
    (tmp_path / "empty" / "nobody").mkdir(parents=True)
    with pytest.raises(IdentificationSetError, match=r"empty: no identity sub-folders with images"):
        split_identities(tmp_path / "empty")
    singles = _folder(tmp_path / "singles", {"a": 1, "b": 1, "c": 1, "d": 1})
    with pytest.raises(IdentificationSetError, match=r"singles: no mated probe"):
        split_identities(singles)
    # the only identity with a second image is a stranger at share 0.5 (b is left out)
    left = _folder(tmp_path / "left", {"a": 1, "b": 3, "c": 1, "d": 1})
    with pytest.raises(IdentificationSetError, match="no mated probe"):
        split_identities(left)
    assert split_identities(left, unknown_share=0.0).mated_probes == 2
    loose = _folder(tmp_path / "loose", {"a": 2})
    (loose / "stray.jpg").write_bytes(b"jpg")
    with pytest.raises(IdentificationSetError, match=r"stray\.jpg: an image directly in the dataset folder"):
        split_identities(loose)
    with pytest.raises(IdentificationSetError, match="leaves none of the 1 identities"):
        split_identities(_folder(tmp_path / "all-out", {"a": 3}), unknown_share=0.9999999)
    with pytest.raises(IdentificationSetError, match="below 1"):
        split_identities(left, unknown_share=1.0)


# ----------------------------------------------------------------------------- end to end


def test_evaluate_identification_end_to_end(converted_standin, tmp_path):
    from facezoo.runtime import Embedder

    root = tmp_path / "people"
    for identity in range(6):
        folder = root / f"Person_{identity}"
        folder.mkdir(parents=True)
        for variation in range(3):
            cv2.imwrite(str(folder / f"{variation:04d}.jpg"), synthetic_face(6000 + identity, variation + 1))
    (root / SYNTHETIC_MARKER).write_text(json.dumps({"synthetic": True}))
    out, plot = tmp_path / "out" / "identification.json", tmp_path / "cmc.png"
    runner = CliRunner()
    common = ["-c", str(converted_standin.converted_dir), "--zoo", str(converted_standin.zoo_path), "--format", "onnx",
              "--precision", "FP32"]
    result = runner.invoke(app, ["evaluate", NAME, "--protocol", "identification", "--dataset", str(root),
                                 "--json", str(out), "--plot", str(plot), "--batch-size", "4", *common])
    assert result.exit_code == 0, result.output
    assert "rank-1" in result.output and "n/a" in result.output and "NOT the model's accuracy" in result.output
    document = json.loads(out.read_text())
    assert document["kind"] == "facezoo-identification" and document["protocol"] == "identification"
    assert document["model"] == NAME and document["artifact"]["format"] == "onnx"
    dataset = document["dataset"]
    assert (dataset["gallery"], dataset["mated_probes"], dataset["non_mated_probes"]) == (3, 6, 9)
    assert dataset["unknown_identities"] == ["Person_1", "Person_3", "Person_5"] and dataset["synthetic"] is True
    assert dataset["detector"] is None
    assert document["weights"] == "stand-in" and document["is_model_accuracy"] is False
    assert "SYNTHETIC" in document["label"] and "STAND-IN" in document["label"]
    metrics = document["metrics"]
    rates = [entry["rate"] for entry in metrics["cmc"]]
    assert [entry["rank"] for entry in metrics["cmc"]] == [1, 2, 3] and rates[-1] == 1.0
    assert rates == sorted(rates) and metrics["rank1"] == rates[0] == document["measured"]["rank-1"]
    for key, needed in (("DIR@FAR=1e-2", "100"), ("DIR@FAR=1e-3", "1000")):  # 9 non-mated probes resolve neither
        assert document["measured"][key] is None and metrics["open_set"][key]["dir"] is None
        assert f"at least {needed} non-mated probes" in metrics["open_set"][key]["reason"]
    # rank-1 again, by hand from the same model: each mated probe's nearest gallery face by cosine
    split = split_identities(root)
    embedder = Embedder(NAME, converted_dir=converted_standin.converted_dir, format="onnx", precision="FP32")
    try:
        gallery = embedder.embed([cv2.imread(str(p)) for p in split.gallery])
        probes = embedder.embed([cv2.imread(str(p)) for p, t in zip(split.probes, split.probe_truth) if t >= 0])
    finally:
        embedder.close()
    nearest = np.argmax(probes @ gallery.T, axis=1)
    truth = [t for t in split.probe_truth if t >= 0]
    assert metrics["rank1"] == pytest.approx(np.mean(nearest == truth))
    data = plot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000 and document["plot"] == str(plot)
    assert sorted(p.name for p in out.parent.iterdir()) == ["identification.json"]  # written whole
    # bad input: named, exit 1, before any model is loaded
    (root / "Person_9").mkdir()
    (root / "stray.png").write_bytes(b"x")
    result = runner.invoke(app, ["evaluate", NAME, "--protocol", "identification", "--dataset", str(root), *common])
    assert result.exit_code == 1 and "stray.png: an image directly in the dataset folder" in result.output
    result = runner.invoke(app, ["evaluate", NAME, "--protocol", "roc", "--dataset", str(root), "--unknown-share",
                                 "0.2", *common])
    assert result.exit_code == 1 and "--unknown-share goes with --protocol identification" in result.output
    # photos: refused as crops, embedded with --detector (the YuNet stand-in) as `facezoo embed --detector` does
    from facezoo.conversion import ConversionRequest, convert_model
    from facezoo.photos import generated_photo
    from facezoo.registry import load_zoo
    from facezoo.standins import build_standins

    standins = build_standins(load_zoo(), tmp_path / "yunet", ["yunet"])
    done = convert_model(ConversionRequest(standins.zoo().get("yunet"), tmp_path / "yunet", tmp_path / "detectors",
                                           ["onnx"], ["FP32"]))
    assert done.passed, done.error
    photos = tmp_path / "photos"
    for identity in range(4):
        (photos / f"P{identity}").mkdir(parents=True)
        for copy in range(2):  # the probe is the gallery photo itself: its face must rank first
            cv2.imwrite(str(photos / f"P{identity}" / f"{copy}.jpg"), generated_photo(identity=4100 + 7 * identity))
    (photos / SYNTHETIC_MARKER).write_text(json.dumps({"synthetic": True}))
    result = runner.invoke(app, ["evaluate", NAME, "--protocol", "identification", "--dataset", str(photos), *common])
    assert result.exit_code == 1 and "P0/0.jpg: 360×480 is not an aligned face crop" in result.output
    assert "--detector" in result.output
    detector = tmp_path / "detectors" / "yunet" / "FP32" / "yunet.onnx"
    result = runner.invoke(app, ["evaluate", NAME, "--protocol", "identification", "--dataset", str(photos),
                                 "--detector", str(detector), "--json", str(out), *common])
    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text())
    assert document["dataset"]["detector"]["path"] == str(detector) and document["is_model_accuracy"] is False
    assert document["dataset"]["detector"]["weights"] in ("stand-in", "not-published")
    assert "found by the yunet detector with STAND-IN weights" in document["label"]
    assert (document["dataset"]["mated_probes"], document["dataset"]["non_mated_probes"]) == (2, 4)
    assert document["metrics"]["rank1"] == 1.0
