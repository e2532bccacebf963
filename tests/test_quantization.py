"""INT8 and BF16: real NNCF, OpenVINO and ONNX Runtime on the stand-in MobileFaceNet and LightCNN.

The gate is facezoo's own (facezoo.quantization.reference_gate: the one validation loop on every
backend that runs the file, against the ORIGINAL MindSpore network's outputs on held-out faces,
plus a count of flipped same/different decisions over all pairs); one test checks its numbers
against a judge computed here from the runtime's outputs alone. Calibration sets are small
(NNCF's subset is at most the set), so the file runs in about a minute a worker.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from facezoo.conversion import ConversionRequest, QuantizationSettings, convert_model, quantize_converted
from facezoo.formats import BACKENDS_FOR_FORMAT, SUFFIX
from facezoo.numerics import cosine_rows, flipped_pairs
from facezoo.preprocessing import ImageError, to_model_input
from facezoo.quantization import (
    BF16,
    INT8,
    CalibrationSet,
    LadderOptions,
    QuantizationError,
    calibration_inputs,
    reference_gate,
    run_ladder,
    synthetic_ranges,
    tuning_set,
    write_bf16,
)
from facezoo.runtime import load
from facezoo.sources.mindspore.source import MindSporeSource
from facezoo.tasks import TASKS

RECOGNITION = TASKS["face_recognition"]

MFN = "mindface-arcface-mobilefacenet"


# ----------------------------------------------------------------------------- fixtures


class Original:
    """The original network of one stand-in, the held-out gate faces and their reference outputs."""

    def __init__(self, spec, download_dir: Path):
        self.spec = spec
        self.size = (spec.input.height, spec.input.width)
        self.order = spec.converted.channel_order
        self.source = MindSporeSource(spec, download_dir / spec.name / spec.conversion.checkpoint)
        faces = RECOGNITION.samples(self.size, None, 10)  # `facezoo check`'s faces: colour-asymmetric + pairs
        self.inputs = to_model_input(faces.images, self.order)
        self.outputs = self.source.reference(faces.images)
        self.reference = self.outputs["embedding"]
        self.rule = RECOGNITION.decision_rule(spec, self.outputs, faces, from_registry=False)
        self.decision = self.rule.threshold
        self.threshold = spec.check_thresholds[INT8]

    def gate(self, threshold: float | None = None):
        """facezoo's INT8 gate: every validating backend, plus flipped same/different decisions."""
        threshold = self.threshold if threshold is None else threshold
        return reference_gate(self.inputs, self.outputs, task=RECOGNITION, min_cosine=threshold, rule=self.rule)

    def tuning(self, count: int = 8):
        return tuning_set(self.size, self.order, lambda images: self.source.reference(images)["embedding"], count)


@pytest.fixture(scope="module")
def workspace(converted_mobilefacenet, tmp_path_factory):
    """A private converted folder (INT8 folders appear here, not in the session's): MobileFaceNet's
    FP32 files, copied."""
    zoo, download_dir, converted_dir, _ = converted_mobilefacenet
    out = tmp_path_factory.mktemp("quantization")
    shutil.copytree(converted_dir / MFN / "FP32", out / MFN / "FP32")
    return zoo, download_dir, out


@pytest.fixture(scope="module")
def lightcnn(standin_models, tmp_path_factory):
    """LightCNN-9 converted to FP32 IR (its 20 quantizers keep accuracy control's ranking short)."""
    zoo, download_dir = standin_models
    out = tmp_path_factory.mktemp("quantization-lightcnn")
    result = convert_model(ConversionRequest(zoo.get("lightcnn"), download_dir, out, ["openvino"], ["FP32"]))
    assert result.passed, result.error
    return zoo, download_dir, out


@pytest.fixture(scope="module")
def mobilefacenet(workspace):
    zoo, download_dir, _ = workspace
    return Original(zoo.get(MFN), download_dir)


def _calibration(original: Original, count: int = 24) -> CalibrationSet:
    return calibration_inputs(original.size, original.order, count)


# ----------------------------------------------------------------------------- calibration


def test_calibration_tuning_and_validation_identities_are_disjoint():
    ranges = synthetic_ranges()
    spans = sorted(ranges.values())
    for (_, last), (first, _) in zip(spans, spans[1:]):
        assert last < first, ranges
    # the faces actually drawn stay inside their ranges
    calibration = calibration_inputs((112, 112), "BGR", 5)
    low, high = ranges["calibration"]
    assert calibration.identities[0] >= low and calibration.identities[1] <= high
    assert calibration.kind == "synthetic" and "identities 20000..20003" in calibration.description  # and 1 real crop


def test_calibration_inputs_are_the_converted_contract(tmp_path):
    import cv2

    colour = calibration_inputs((112, 96), "BGR", 3)
    assert colour.inputs.shape == (3, 3, 112, 96) and colour.inputs.dtype == np.float32
    assert 0.0 <= colour.inputs.min() and colour.inputs.max() <= 255.0
    gray = calibration_inputs((128, 128), "GRAY", 2)
    assert gray.inputs.shape == (2, 1, 128, 128)
    folder = tmp_path / "crops"
    folder.mkdir()
    for k in range(3):
        cv2.imwrite(str(folder / f"face_{k}.png"), np.full((112, 112, 3), 40 * k, np.uint8))
    user = calibration_inputs((112, 112), "BGR", 2, folder)
    assert user.kind == "user" and user.count == 2 and user.record()["folder"] == str(folder)
    cv2.imwrite(str(folder / "face_9.png"), np.zeros((250, 250, 3), np.uint8))  # a photo, not a crop
    with pytest.raises(ImageError, match="face_9.png"):
        calibration_inputs((112, 112), "BGR", 10, folder)
    with pytest.raises(QuantizationError, match="calibration-size"):
        calibration_inputs((112, 112), "BGR", 0)


def test_empty_calibration_folder_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(QuantizationError, match="no images"):
        calibration_inputs((112, 112), "BGR", 3, tmp_path / "empty")


# ----------------------------------------------------------------------------- the gated ladder


def test_good_model_passes_the_gate_and_records_the_step(workspace, mobilefacenet, tmp_path):
    """Plain PTQ of the stand-in misses 0.99 (the colour-asymmetric face suffers most); the ladder
    (here without its two slowest steps, accuracy control and the advanced options) passes."""
    _, _, converted = workspace
    output = tmp_path / f"{MFN}.xml"
    options = LadderOptions(steps=("ptq", "ignored_scope", "mixed_precision"), target_cosine=mobilefacenet.threshold)
    result = run_ladder(converted / MFN / "FP32" / f"{MFN}.xml", output, _calibration(mobilefacenet),
                        mobilefacenet.tuning(), mobilefacenet.gate(), options)
    assert result.passed, result.summary()
    assert result.step in ("ptq", "ignored_scope", "mixed_precision")
    assert result.candidates[0].step == "ptq" and result.record()["step"] == result.step
    passing = [c for c in result.candidates if c.verdict.passed]
    assert len(passing) == 1 and passing[0] is result.candidates[-1]
    assert passing[0].screened_on == 0 and passing[0].verdict.samples == len(mobilefacenet.inputs)  # the full gate
    assert passing[0].verdict.metric("min_cosine") >= mobilefacenet.threshold and passing[0].verdict.metrics["flipped"] == 0
    assert passing[0].quantizers >= result.fp32_quantizers // 2  # at most half of the layers kept float
    assert output.is_file() and output.with_suffix(".bin").is_file()
    with load(output) as model:  # OpenVINO runs it, and it still matches the original
        assert model.infer(mobilefacenet.inputs)["embedding"].shape == mobilefacenet.reference.shape


def test_constant_calibration_fails_every_step_and_publishes_nothing(lightcnn):
    """Calibrating on flat grey images breaks the ranges; the whole ladder runs, nothing passes,
    no INT8 folder appears, and the record says by how much the best candidate missed."""
    import cv2

    zoo, download_dir, converted = lightcnn
    folder = converted / "constant-crops"
    folder.mkdir(exist_ok=True)
    for k in range(6):
        cv2.imwrite(str(folder / f"grey_{k}.png"), np.full((128, 128, 3), 128, np.uint8))
    options = LadderOptions(max_float_share=0.2, ranking_subset_size=2, budget_s=3600.0)  # every step
    settings = QuantizationSettings(calibration_images=folder, calibration_size=6, ladder=options, tuning_size=4,
                                    gate_faces=8)
    done = quantize_converted(zoo.get("lightcnn"), download_dir, converted, precisions=(INT8,), settings=settings,
                              formats=("openvino",))
    assert done.published == []
    assert not (converted / "lightcnn" / INT8).exists()
    assert not [p for p in (converted / "lightcnn").iterdir() if p.name.startswith(".")]  # no scratch left
    ladder = done.int8["ladders"][0]
    assert ladder["passed"] is False and ladder["step"] is None
    from facezoo.quantization import STEPS

    order = ladder["plan"]["order"]  # chosen from PTQ's noise and accuracy control's cost, recorded
    assert sorted(order) == sorted(STEPS[1:]) and ladder["plan"]["why"]
    assert list(dict.fromkeys(c["step"] for c in ladder["candidates"])) == ["ptq", *order]
    assert ladder["missed_by"]["cosine"] > 0 and "missed by" in ladder["summary"]
    assert done.int8["calibration"]["kind"] == "user" and done.int8["calibration"]["count"] == 6


def test_mutated_model_fails_the_gate_and_leaves_no_file(workspace, mobilefacenet, tmp_path):
    import openvino as ov

    _, _, converted = workspace
    model = ov.Core().read_model(str(converted / MFN / "FP32" / f"{MFN}.xml"))
    for op in model.get_ordered_ops():  # mutate: perturb the weights of the third convolution
        if op.get_type_name() == "Constant" and len(op.get_output_shape(0)) == 4 and op.get_output_shape(0)[1] > 3:
            weights = op.get_data().copy()
            weights += np.random.default_rng(0).normal(0, 0.5 * float(np.std(weights)), weights.shape).astype(weights.dtype)
            op.output(0).replace(ov.opset13.constant(weights).output(0))
            break
    mutated = tmp_path / "mutated.xml"
    ov.save_model(model, str(mutated), compress_to_fp16=False)
    output = tmp_path / "out" / f"{MFN}.xml"
    output.parent.mkdir()
    result = run_ladder(mutated, output, _calibration(mobilefacenet, 16), mobilefacenet.tuning(4),
                        mobilefacenet.gate(), LadderOptions(steps=("ptq", "ignored_scope")))
    assert not result.passed and result.step is None
    assert [c.step for c in result.candidates] == ["ptq", "ignored_scope"]
    assert all(not c.verdict.passed for c in result.candidates)
    # plain PTQ had the full gate; the next was screened out on the 8 faces PTQ did worst on, on one
    # backend, so the full gate never ran for it
    ptq, scoped = result.candidates
    assert ptq.screened_on == 0 and ptq.verdict.samples == len(mobilefacenet.inputs)
    assert scoped.screened_on == 8 and scoped.verdict.samples == 8
    assert ("on the 8 screening faces" in result.summary()) == bool(result.best.screened_on)
    assert list(output.parent.iterdir()) == []


def test_a_spent_budget_stops_the_ladder_and_says_so(workspace, mobilefacenet, tmp_path, monkeypatch):
    """Plain PTQ always runs; once the budget is spent nothing else starts, and the record lists what
    was not tried, with the best candidate's numbers (nothing is published)."""
    from facezoo.quantization import ladder as ladder_module

    _, _, converted = workspace
    clock = [1000.0]
    monkeypatch.setattr(ladder_module, "_now", lambda: clock[0])
    real_gate = mobilefacenet.gate(threshold=0.99999)  # strict: plain PTQ misses it

    def gate_that_takes_a_minute(path):
        clock[0] += 60.0  # the build and the gate "took" a minute
        return real_gate(path)

    gate_that_takes_a_minute.rank = real_gate.rank
    gate_that_takes_a_minute.unbuilt = real_gate.unbuilt
    output = tmp_path / "out" / f"{MFN}.xml"
    output.parent.mkdir()
    steps: list[str] = []
    result = run_ladder(converted / MFN / "FP32" / f"{MFN}.xml", output, _calibration(mobilefacenet, 8),
                        mobilefacenet.tuning(4), gate_that_takes_a_minute,
                        LadderOptions(steps=("ptq", "ignored_scope", "advanced"), budget_s=30.0,
                                      target_cosine=0.99999), step=steps.append)
    assert [c.step for c in result.candidates] == ["ptq"] and not result.passed
    assert result.out_of_budget and sorted(u.split(":")[0] for u in result.untried) == ["advanced", "ignored_scope"]
    assert steps[0].endswith("30 s of the budget left")
    record = result.record()
    assert record["budget"] == {"budget_s": 30.0, "spent_s": record["budget"]["spent_s"], "ran_out": True,
                                "untried": result.untried}
    assert "the INT8 budget of 30 s ran out after 1 candidate(s)" in result.summary()
    assert list(output.parent.iterdir()) == []


def test_accuracy_control_stops_when_the_budget_runs_out(workspace, mobilefacenet, tmp_path, monkeypatch):
    """Accuracy control is one long candidate: it stops at its first validation past the deadline."""
    from facezoo.quantization import ladder as ladder_module

    _, _, converted = workspace
    ticks = iter(range(1000, 100000, 4))  # every reading of the clock is 4 s later
    monkeypatch.setattr(ladder_module, "_now", lambda: float(next(ticks)))
    monkeypatch.setattr(ladder_module, "_diagnose", lambda *args: None)  # the default order: accuracy control next
    output = tmp_path / "out" / f"{MFN}.xml"
    output.parent.mkdir()
    # clock readings: deadline 1000 + 14; PTQ starts at 1004; accuracy control is checked at 1008 and
    # starts at 1012; its first validation reads 1016 (spent) and stops it; ignored_scope is not started
    result = run_ladder(converted / MFN / "FP32" / f"{MFN}.xml", output, _calibration(mobilefacenet, 8),
                        mobilefacenet.tuning(4), mobilefacenet.gate(threshold=0.99999),
                        LadderOptions(steps=("ptq", "accuracy_control", "ignored_scope"), budget_s=14.0,
                                      target_cosine=0.99999))
    assert [c.step for c in result.candidates] == ["ptq", "accuracy_control"] and not result.passed
    assert "the INT8 budget ran out during accuracy control" in result.candidates[1].error
    assert [u.split(":")[0] for u in result.untried] == ["ignored_scope"]
    assert list(output.parent.iterdir()) == []


def test_the_plan_puts_the_likely_step_first_and_an_unaffordable_one_last(monkeypatch):
    """float_elementwise first where PTQ's noise sits on elementwise inputs (a residual network's
    skip path); accuracy control last where its ranking (a validation per quantizer) would outlast
    the budget; otherwise the default order."""
    from facezoo.quantization import ladder as ladder_module
    from facezoo.quantization.ladder import STEPS, Diagnosis, plan_steps

    monkeypatch.setattr(ladder_module, "_now", lambda: 1000.0)
    options = LadderOptions()
    assert plan_steps(options, None, None)["order"] == list(STEPS[1:])
    residual = plan_steps(options, Diagnosis(0.43, 203, 0.5), 2000.0)  # 101 s of ranking, 1000 s left
    assert residual["order"] == ["float_elementwise", "accuracy_control", "ignored_scope", "advanced", "mixed_precision"]
    assert "43%" in residual["why"][0] and residual["ptq_noise_on_elementwise_inputs"] == 0.43
    slow = plan_steps(options, Diagnosis(0.43, 203, 2.5, 30.0), 1300.0)  # 508 s of ranking, 300 s left
    assert slow["order"] == ["float_elementwise", "ignored_scope", "advanced", "mixed_precision", "accuracy_control"]
    assert "about 508 s" in slow["why"][1] and slow["skipped"] == []
    # full bias correction (8 PTQs, and nothing stops it midway) is not started where it cannot fit
    big = plan_steps(options, Diagnosis(0.43, 203, 2.5, 66.0), 1300.0)
    assert big["order"] == ["float_elementwise", "ignored_scope", "mixed_precision", "accuracy_control"]
    assert big["skipped"] == ["advanced"] and "about 528 s" in big["why"][2]
    flat = plan_steps(options, Diagnosis(0.05, 63, 0.2), None)  # no budget: accuracy control keeps its place
    assert flat["order"] == list(STEPS[1:]) and flat["why"] == ["the default order"]
    chosen = plan_steps(LadderOptions(steps=("ptq", "mixed_precision", )), Diagnosis(0.9, 10, 0.1), 2000.0)
    assert chosen["order"] == ["mixed_precision"]  # a step left out stays out


def test_the_default_budget_scales_with_gflops_and_cores():
    from facezoo.quantization.ladder import BUDGET_S, MIN_BUDGET_S, default_budget_s

    assert default_budget_s(24.179, cpus=2) == BUDGET_S  # iresnet100 on 2 cores: the 600 s
    assert default_budget_s(24.179, cpus=8) == BUDGET_S / 4
    assert default_budget_s(0.875, cpus=2) == MIN_BUDGET_S  # MobileFaceNet: the floor
    assert default_budget_s(None, cpus=2) == BUDGET_S
    with pytest.raises(QuantizationError, match="INT8 budget -1"):
        LadderOptions(budget_s=-1)


# ----------------------------------------------------------------------------- faces that stand for real ones


def test_the_gate_does_not_overrate_int8_on_real_crops(workspace, mobilefacenet, tmp_path):
    """The default sets hold crops of the real photo (calibration, tuning and gate, each its own
    seed); an INT8 built and judged on them is not judged better than it does on other real crops:
    the gate's min cosine is at most 0.005 above the min on 32 crops it never saw and the plain,
    unaugmented crop."""
    from facezoo.photos import ASTRONAUT_LANDMARKS, astronaut, real_face_crops
    from facezoo.preprocessing import align_face
    from facezoo.quantization import held_out_faces
    from facezoo.quantization.calibration import DEFAULT_SET_NOTE, REAL_CROP_SEEDS

    _, _, converted = workspace
    spec = mobilefacenet.spec
    calibration = calibration_inputs(mobilefacenet.size, mobilefacenet.order)
    assert "augmented crops of the astronaut photo" in calibration.description
    assert DEFAULT_SET_NOTE in calibration.description and "--calibration-images" in DEFAULT_SET_NOTE
    held = held_out_faces(spec, RECOGNITION, mobilefacenet.source.reference)
    assert sum("astronaut crop" in source for source in held.sources) == 8
    lenient = dataclasses.replace(held.rule, allowed_flips=10**6)  # the numbers are the point here, not the verdict
    gate = reference_gate(held.inputs, held.reference, task=RECOGNITION, min_cosine=0.5, rule=lenient)
    output = tmp_path / f"{MFN}.xml"
    result = run_ladder(converted / MFN / "FP32" / f"{MFN}.xml", output, calibration, mobilefacenet.tuning(16),
                        gate, LadderOptions(steps=("ptq",)))
    gate_min = result.candidates[0].verdict.metric("min_cosine")
    assert 99 not in REAL_CROP_SEEDS.values()
    crops = np.concatenate([real_face_crops(mobilefacenet.size, 32, 99),
                            align_face(astronaut(), np.asarray(ASTRONAUT_LANDMARKS), mobilefacenet.size)[None]])
    with load(output) as model:
        got = model.infer(to_model_input(crops, mobilefacenet.order))["embedding"]
    real_min = float(cosine_rows(mobilefacenet.source.reference(crops)["embedding"], got).min())
    assert gate_min <= real_min + 0.005, (gate_min, real_min)


# ----------------------------------------------------------------------------- the per-layer report


def test_the_report_finds_a_quantizer_whose_range_was_cut(workspace, mobilefacenet, tmp_path):
    """The per-layer report on a plain PTQ IR and QDQ ONNX, then on the IR with one activation
    quantizer's range cut to a twentieth (what a calibration set without bright faces does): that
    quantizer tops the report, and removing it restores what cutting it lost."""
    import openvino as ov

    from facezoo.quantization.engines import OpenVinoEngine
    from facezoo.quantization.report import BYPASS_ROWS, quantizer_report

    _, _, converted = workspace
    fp32 = converted / MFN / "FP32"
    lenient = mobilefacenet.gate(threshold=0.5)
    for suffix in (".xml", ".onnx"):
        result = run_ladder(fp32 / f"{MFN}{suffix}", tmp_path / f"{MFN}{suffix}", _calibration(mobilefacenet, 16),
                            mobilefacenet.tuning(4), lenient, LadderOptions(steps=("ptq",)))
        assert result.passed
        noisiest = result.record()["error_by_quantizer"]["noisiest"]  # the ladder's record for the card
        assert len(noisiest) == 10 and noisiest[0]["relative_noise"] >= noisiest[-1]["relative_noise"] > 0
        report = quantizer_report(tmp_path / f"{MFN}{suffix}", mobilefacenet.inputs, mobilefacenet.reference)
        assert report.quantizers == result.fp32_quantizers and report.faces == len(mobilefacenet.inputs)
        noise = [row.relative_noise for row in report.rows]
        assert noise == sorted(noise, reverse=True) and len(report.rows) == 10
        assert all(row.min_cosine_without is not None for row in report.rows[:BYPASS_ROWS])
        assert all(row.feeds for row in report.rows)  # every quantizer names the layer it feeds
        assert abs(sum(v["noise_share"] for v in report.by_type.values()) - 1.0) < 0.01
    gate = lenient(tmp_path / f"{MFN}.xml")
    report = quantizer_report(tmp_path / f"{MFN}.xml", mobilefacenet.inputs, mobilefacenet.reference)
    assert abs(report.min_cosine - gate.metric("min_cosine")) < 1e-4  # the gate's own number

    engine = OpenVinoEngine()
    model = engine.load(tmp_path / f"{MFN}.xml")
    names = engine.quantizers(model)
    victim = names[len(names) // 2]
    for op in model.get_ordered_ops():
        if op.get_friendly_name() == victim:
            for port in range(1, 5):  # input_low, input_high, output_low, output_high
                limit = op.input_value(port).get_node()
                cut = ov.opset13.constant((limit.get_data() / 20).astype(np.float32))
                op.input(port).replace_source_output(cut.output(0))
    cut_path = tmp_path / "cut" / f"{MFN}.xml"
    cut_path.parent.mkdir()
    ov.save_model(model, str(cut_path), compress_to_fp16=False)
    cut = quantizer_report(cut_path, mobilefacenet.inputs, mobilefacenet.reference)
    assert cut.rows[0].quantizer == victim and cut.min_cosine < report.min_cosine - 0.01
    assert cut.rows[0].min_cosine_without > cut.min_cosine + 0.01


def test_an_int8_that_missed_is_recorded_in_the_fp32_card_and_check_says_so(converted_mobilefacenet, tmp_path):
    """`convert --precisions FP32,INT8` whose INT8 misses: FP32 is published, its card keeps the
    ladder's record (best candidate, budget, noisiest quantizers), and `check --int8-report` says
    there is no INT8 file and why; exit 1."""
    import yaml
    from typer.testing import CliRunner

    from facezoo.cli.main import app
    from facezoo.registry import load_zoo

    zoo, download_dir, _, _ = converted_mobilefacenet
    document = yaml.safe_load(Path(zoo.path).read_text())
    entry = next(e for e in document["models"] if e["name"] == MFN)
    entry["check_thresholds"] = {"INT8": 0.99999}  # plain PTQ cannot meet it
    registry = tmp_path / "zoo.yml"
    registry.write_text(yaml.safe_dump(document, sort_keys=False))
    settings = QuantizationSettings(calibration_size=16, ladder=LadderOptions(steps=("ptq",)), tuning_size=4,
                                    gate_faces=8)
    out = tmp_path / "converted"
    result = convert_model(ConversionRequest(load_zoo(registry).get(MFN), download_dir, out, ["openvino"],
                                             ["FP32", INT8], quantization=settings))
    assert result.published == ["FP32"] and result.failed_precisions == [INT8]
    card = json.loads((out / MFN / "FP32" / "model_card.json").read_text())
    missed = card["not_published"][INT8]
    assert "INT8 missed the gate" in missed["reason"]
    (ladder,) = missed["quantization"]["ladders"]
    assert ladder["passed"] is False and ladder["candidates"][0]["step"] == "ptq"
    assert ladder["missed_by"]["cosine"] > 0 and ladder["error_by_quantizer"]["noisiest"]
    done = CliRunner().invoke(app, ["check", MFN, "--zoo", str(registry), "-d", str(download_dir), "-c", str(out),
                                    "--int8-report"])
    assert done.exit_code == 1
    assert "INT8 was tried and not published" in done.output and "not_published" in done.output


# ----------------------------------------------------------------------------- every artifact loads


def test_int8_and_bf16_artifacts_load_and_run_in_every_backend(workspace, mobilefacenet, tmp_path):
    from facezoo.modelcard import CARD_NAME
    from facezoo.quantization import card_fields_for

    _, _, converted = workspace
    fp32 = converted / MFN / "FP32"
    lenient = mobilefacenet.gate(threshold=0.5)  # loading is the point here, not accuracy
    calibration = _calibration(mobilefacenet, 8)
    tuning = mobilefacenet.tuning(4)
    folder = tmp_path / INT8
    folder.mkdir()
    for fmt in ("openvino", "onnx"):
        result = run_ladder(fp32 / f"{MFN}{SUFFIX[fmt]}", folder / f"{MFN}{SUFFIX[fmt]}", calibration, tuning,
                            lenient, LadderOptions(steps=("ptq",)))
        assert result.passed and result.step == "ptq"
    import onnx

    graph = onnx.load(str(folder / f"{MFN}.onnx")).graph
    assert {n.op_type for n in graph.node} >= {"QuantizeLinear", "DequantizeLinear"}
    assert graph.input[0].name == "data" and graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param  # dynamic batch kept
    runs = {}
    for path, backends in ((folder / f"{MFN}.xml", ("openvino",)), (folder / f"{MFN}.onnx", ("onnxruntime", "openvino"))):
        for backend in backends:
            with load(path, backend=backend) as model:
                for batch in (1, 3):
                    out = model.infer(mobilefacenet.inputs[:batch])["embedding"]
                    assert out.shape == (batch, 512) and np.all(np.isfinite(out))
                runs[(path.suffix, backend)] = model.infer(mobilefacenet.inputs)["embedding"]
    cos = lambda a, b: float(np.min(np.sum(a * b, 1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)))
    # the same QDQ graph in two INT8 runtimes (each rounds and accumulates its own way; 8 calibration
    # faces leave the model far from FP32, which widens their gap): close, where a wrong graph is < 0.5
    assert cos(runs[(".onnx", "onnxruntime")], runs[(".onnx", "openvino")]) > 0.95

    bf16 = tmp_path / BF16
    write_bf16(fp32 / f"{MFN}.xml", bf16 / f"{MFN}.xml")
    card = json.loads((fp32 / CARD_NAME).read_text())
    (bf16 / CARD_NAME).write_text(json.dumps({**card, "precision": BF16, **card_fields_for(BF16)}))
    with load(bf16 / f"{MFN}.xml") as model:
        assert model.backend.compiled.get_property("INFERENCE_PRECISION_HINT").to_string() == "bf16"
        assert model.artifact.precision == BF16
        out = model.infer(mobilefacenet.inputs)["embedding"]
    assert cos(out, mobilefacenet.reference) > 0.999
    with load(bf16 / f"{MFN}.xml", precision_hint="f32") as model:  # an explicit hint wins over the card
        assert model.backend.compiled.get_property("INFERENCE_PRECISION_HINT").to_string() == "f32"


def test_the_gate_agrees_with_a_judge_computed_from_the_runtime_alone(workspace, mobilefacenet):
    """The gate's worst backend, its min cosine and its flips, against numbers computed here."""
    _, _, converted = workspace
    path = converted / MFN / "FP32" / f"{MFN}.onnx"
    mine = mobilefacenet.gate(0.99999)(path)
    cosines, flips = {}, {}
    for backend in BACKENDS_FOR_FORMAT["onnx"]:
        with load(path, backend=backend) as model:
            out = model.infer(mobilefacenet.inputs)["embedding"]
        cosines[backend] = float(cosine_rows(mobilefacenet.reference, out).min())
        flips[backend] = len(flipped_pairs(mobilefacenet.reference, out, mobilefacenet.decision))
    worst = min(cosines, key=cosines.get)
    assert mine.passed and mine.metrics["flipped"] == flips[worst] == 0
    assert mine.backend == worst and abs(mine.metric("min_cosine") - cosines[worst]) < 1e-6
    assert mine.metrics["pairs"] == 45 and mine.bounds["allowed_flips"] == 0


# ----------------------------------------------------------------------------- through `facezoo convert`


def test_convert_makes_gated_int8_and_bf16_folders_that_check_takes(converted_mobilefacenet, tmp_path):
    """`convert --precisions INT8,BF16`: made from the FP32 artifacts (built as the basis, not published),
    each folder published only through its gate; no MINDIR for either, said why; `facezoo check`
    and the runtime then take INT8 and BF16 like FP32."""
    from facezoo.conversion import QuantizationSettings
    from facezoo.gates import GATES

    import yaml

    zoo, download_dir, _, _ = converted_mobilefacenet
    # The stand-in's weights quantize worse than trained ones (see the ladder tests): this model's
    # registry entry sets its own INT8 threshold, as check_thresholds.INT8 allows per model.
    document = yaml.safe_load(Path(zoo.path).read_text())
    entry = next(e for e in document["models"] if e["name"] == MFN)
    entry["check_thresholds"] = {"INT8": 0.97}
    registry = tmp_path / "zoo.yml"
    registry.write_text(yaml.safe_dump(document, sort_keys=False))
    from facezoo.registry import load_zoo

    spec = load_zoo(registry).get(MFN)
    assert spec.check_thresholds[INT8] == 0.97 and spec.check_thresholds["FP32"] == GATES["FP32"].min_cosine
    settings = QuantizationSettings(calibration_size=64,
                                    ladder=LadderOptions(steps=("ptq", "ignored_scope", "mixed_precision"),
                                                        budget_s=3600.0))  # the outcome, not the clock
    out = tmp_path / "converted"
    request = ConversionRequest(spec, download_dir, out, ["onnx", "openvino", "mindir"], [INT8, BF16],
                                quantization=settings)
    result = convert_model(request)
    assert result.published == [INT8, BF16], result.error
    assert sorted(p.name for p in (out / MFN).iterdir()) == [BF16, INT8]  # the FP32 basis stays unpublished
    assert any("no INT8 MINDIR" in note for note in result.notes) and any("no BF16 MINDIR" in note for note in result.notes)
    int8 = json.loads((out / MFN / INT8 / "model_card.json").read_text())
    assert int8["precision"] == INT8 and int8["quantization"]["passed"] is True
    assert int8["quantization"]["calibration"]["kind"] == "synthetic"
    assert {Path(f).suffix for f in int8["files"]} == {".xml", ".bin", ".onnx"}
    assert all(check["passed"] and check["min_cosine"] >= 0.97 for check in int8["validation"])
    bf16 = json.loads((out / MFN / BF16 / "model_card.json").read_text())
    assert bf16["inference_precision_hint"] == "bf16" and bf16["validation"]
    from typer.testing import CliRunner

    from facezoo.cli.main import app

    done = CliRunner().invoke(app, ["check", MFN, "--zoo", str(registry), "-d", str(download_dir), "-c", str(out),
                                    "--precisions", "INT8,BF16"])
    assert done.exit_code == 0, done.output
    assert "INT8" in done.output and "BF16" in done.output
    report = tmp_path / "report.json"
    done = CliRunner().invoke(app, ["check", MFN, "--zoo", str(registry), "-d", str(download_dir), "-c", str(out),
                                    "--precisions", "INT8", "--int8-report", "--json", str(report)])
    assert done.exit_code == 0, done.output
    assert "which quantizers carry the INT8 error" in done.output and "noise by the layer type fed" in done.output
    layers = json.loads(report.read_text())["int8_reports"][MFN]
    assert sorted(r["file"] for r in layers) == [f"{MFN}.onnx", f"{MFN}.xml"]
    assert all(r["min_cosine"] >= 0.97 and len(r["noisiest"]) == 10 for r in layers)


def test_the_suite_report_shows_the_bf16_gate_a_real_build_recorded(lightcnn):
    """The report reads the BF16 verdict where the build writes it (it once looked under another
    key and called every gated BF16 folder 'not built')."""
    from types import SimpleNamespace

    from facezoo.benchmark.suite.report import render_low_precision
    from facezoo.runtime.precision import bf16_problem

    zoo, download_dir, converted = lightcnn
    done = quantize_converted(zoo.get("lightcnn"), download_dir, converted, precisions=(BF16,),
                              settings=QuantizationSettings(gate_faces=8))
    record = json.loads(json.dumps(done.record(), default=str))  # as the suite's worker hands it over
    text = render_low_precision(SimpleNamespace(quantization=[record]), [], [])
    row = next(line for line in text.splitlines() if "| BF16 IR |" in line)
    if bf16_problem():
        assert "not built" in row and "cannot run bf16" in row
        return
    verdict = next(value for value in record["bf16"].values() if isinstance(value, dict) and "min_cosine" in value)
    assert "not built" not in row
    assert f"{verdict['min_cosine']:.5f}" in row
    assert ("| gate |" in row) == verdict["passed"] == ("BF16" in done.published)
    if BF16 in done.published:  # the conversion's own path: its card is written as convert writes it
        from facezoo.modelcard import read_card

        card = read_card(converted / "lightcnn" / BF16)
        assert card.derived_from == "FP32" and card.task == "face_recognition" and card.inference_precision_hint == "bf16"
        assert card.validation and {r["precision"] for r in card.validation} == {BF16}
        assert card.bf16_gate["passed"] is True
