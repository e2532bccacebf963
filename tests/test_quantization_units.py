"""The parts of facezoo.quantization that need no NNCF run: bf16 refusal, PReLU scopes, records."""

from __future__ import annotations

import dataclasses

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from facezoo.quantization import (
    MINDIR_INT8_REASON,
    MINDIR_INT8_SUPPORTED,
    LadderOptions,
    QuantizationError,
    card_fields_for,
    field_scope,
    runtime_config_for,
)
from facezoo.quantization.scopes import onnx_view, openvino_view
from facezoo.runtime.errors import PrecisionUnavailableError
from facezoo.runtime.precision import bf16_problem, require_precision
from facezoo.tasks import TASKS
from facezoo.validation import ArtifactCheck


def _verdict(passed: bool, cosine: float, flips: int, reason: str = "", backend: str = "openvino") -> ArtifactCheck:
    return ArtifactCheck("openvino", "INT8", backend, "m.xml", 16, {"min_cosine": cosine, "flipped": flips}, {},
                         passed, reason)


def test_runtime_config_and_card_fields():
    assert runtime_config_for("BF16") == {"INFERENCE_PRECISION_HINT": "bf16"}
    assert runtime_config_for("INT8") == {}
    assert card_fields_for("BF16") == {"inference_precision_hint": "bf16"}
    assert card_fields_for("INT8") == {}
    with pytest.raises(QuantizationError, match="INT4"):
        runtime_config_for("INT4")


def test_bf16_is_refused_on_a_cpu_without_bf16_units(tmp_path):
    path = tmp_path / "BF16" / "model.xml"
    no_bf16 = ["FP32", "INT8", "BIN", "EXPORT_IMPORT"]
    avx2 = ["avx2", "fma", "avx512f", "avx512_vnni"]
    assert bf16_problem(no_bf16, avx2)
    with pytest.raises(PrecisionUnavailableError) as caught:
        require_precision(path, "bf16", "CPU", capabilities=no_bf16, flags=avx2)
    message = str(caught.value)
    assert str(path) in message and "AVX512_BF16 or AMX-BF16" in message and "without BF16" in message
    # a CPU with the units, or an f32 run, or another device: no objection
    assert bf16_problem(["FP32", "BF16"], ["avx512_bf16"]) is None
    assert bf16_problem(["FP32", "BF16"], None) is None  # no /proc/cpuinfo: OpenVINO decides
    require_precision(path, "f32", "CPU", capabilities=no_bf16, flags=avx2)
    require_precision(path, "bf16", "GPU", capabilities=no_bf16, flags=avx2)


def test_loading_a_bf16_folder_on_a_cpu_without_bf16_is_a_clear_error(converted_standin, tmp_path, monkeypatch):
    """The runtime path: the card asks for bf16, this (simulated) CPU's capability list lacks it."""
    import shutil

    import facezoo.runtime.precision as precision
    from facezoo.quantization import write_bf16
    from facezoo.runtime import BackendError, load

    name = "mindface-arcface-mobilefacenet"
    fp32 = converted_standin.converted_dir / name / "FP32"
    folder = tmp_path / "BF16"
    write_bf16(fp32 / f"{name}.xml", folder / f"{name}.xml")
    card = json.loads((fp32 / "model_card.json").read_text())
    (folder / "model_card.json").write_text(json.dumps({**card, "precision": "BF16", **card_fields_for("BF16")}))
    monkeypatch.setattr(precision, "openvino_cpu_capabilities", lambda: ("FP32", "INT8"))
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx2", "avx512f"}))
    with pytest.raises(BackendError, match=rf"{name}\.xml: this model runs with INFERENCE_PRECISION_HINT=bf16"):
        load(folder / f"{name}.xml")
    with load(folder / f"{name}.xml", precision_hint="f32") as model:  # the caller's hint still wins
        assert model.infer(np.zeros((1, 3, 112, 112), np.float32))["embedding"].shape == (1, 512)
    shutil.rmtree(folder)


def _prelu_graph() -> onnx.ModelProto:
    """conv → PRelu op → conv → decomposed PReLU (Relu/Abs/Sub/Mul/Mul/Add) → Neg form → Gemm → BN."""
    w = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
    w2 = numpy_helper.from_array(np.ones((4, 4, 3, 3), np.float32), "w2")
    slope = numpy_helper.from_array(np.full((4, 1, 1), 0.25, np.float32), "slope")
    half = numpy_helper.from_array(np.array(0.5, np.float32), "half")
    fc = numpy_helper.from_array(np.ones((4 * 4 * 4, 8), np.float32), "fc")
    bn = [numpy_helper.from_array(np.ones(8, np.float32), n) for n in ("g", "b", "m", "v")]
    nodes = [
        helper.make_node("Conv", ["data", "w"], ["c1"], name="conv_first", pads=[1, 1, 1, 1]),
        helper.make_node("PRelu", ["c1", "slope"], ["p1"], name="prelu_op"),
        helper.make_node("Conv", ["p1", "w2"], ["c2"], name="conv_last", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r"], name="d_relu"),
        helper.make_node("Abs", ["c2"], ["a"], name="d_abs"),
        helper.make_node("Sub", ["c2", "a"], ["s"], name="d_sub"),
        helper.make_node("Mul", ["s", "slope"], ["m1"], name="d_mul_alpha"),
        helper.make_node("Mul", ["m1", "half"], ["m2"], name="d_mul_half"),
        helper.make_node("Add", ["r", "m2"], ["p2"], name="d_add"),
        helper.make_node("Neg", ["p2"], ["n"], name="n_neg"),
        helper.make_node("Relu", ["n"], ["rn"], name="n_relu_neg"),
        helper.make_node("Relu", ["p2"], ["rp"], name="n_relu_pos"),
        helper.make_node("Mul", ["rn", "slope"], ["nm"], name="n_mul"),
        helper.make_node("Sub", ["rp", "nm"], ["p3"], name="n_sub"),
        helper.make_node("Flatten", ["p3"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "fc"], ["e"], name="fc"),
        helper.make_node("BatchNormalization", ["e", "g", "b", "m", "v"], ["embedding"], name="bn_features"),
    ]
    graph = helper.make_graph(
        nodes, "prelu-forms",
        [helper.make_tensor_value_info("data", TensorProto.FLOAT, ["N", 3, 4, 4])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", 8])],
        [w, w2, slope, half, fc, *bn],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model, full_check=True)
    return model


def test_field_scope_finds_first_conv_last_layers_and_both_prelu_forms(tmp_path):
    model = _prelu_graph()
    scope = field_scope(onnx_view(model))
    assert scope.first_conv == ("conv_first",)
    assert set(scope.last_layers) == {"fc", "bn_features"}
    assert scope.prelu_ops == ("prelu_op",)
    assert set(scope.prelu_decomposed) == {"d_relu", "d_abs", "d_sub", "d_mul_alpha", "d_mul_half", "d_add",
                                           "n_relu_pos", "n_neg", "n_relu_neg", "n_mul", "n_sub"}
    assert "conv_last" not in scope.names
    # the same graph read by OpenVINO: its names, its op types
    import openvino as ov

    onnx.save(model, str(tmp_path / "forms.onnx"))
    ov_scope = field_scope(openvino_view(ov.convert_model(str(tmp_path / "forms.onnx"))))
    assert len(ov_scope.first_conv) == 1 and ov_scope.last_layers
    assert ov_scope.prelu_ops or ov_scope.prelu_decomposed  # OpenVINO may fuse the decompositions into PRelu


def test_ladder_options_keep_the_order_and_verdicts_rank():
    with pytest.raises(QuantizationError, match="order"):
        LadderOptions(steps=("ptq", "mixed_precision", "ignored_scope"))
    with pytest.raises(QuantizationError):
        LadderOptions(steps=("ignored_scope",))
    LadderOptions(steps=("ptq", "advanced"))
    rank = lambda check: TASKS["face_recognition"].rank(check.metrics, check.passed)  # noqa: E731
    good, close, flipped = _verdict(True, 0.995, 0), _verdict(False, 0.989, 0), _verdict(False, 0.995, 2)
    assert rank(good) > rank(close) > rank(flipped)
    assert rank(_verdict(False, float("nan"), 0)) < rank(close)  # never measured: below any measured cosine


def test_a_candidate_never_measured_records_null_not_nan():
    # A ladder step that could not be built has no cosine; its record must still be strict JSON
    # (a NaN here once cost a whole benchmark run at the final write).
    record = _verdict(False, float("nan"), 0, "could not build", backend="-").verdict()
    assert record == {"passed": False, "min_cosine": None, "flips": 0, "reason": "could not build"}
    json.dumps(record, allow_nan=False)
    assert _verdict(True, 0.995, 0).verdict()["min_cosine"] == 0.995


def test_mindir_int8_is_stated_unsupported():
    assert MINDIR_INT8_SUPPORTED is False
    assert "MindSpore 2.10" in MINDIR_INT8_REASON and "mindspore-gs" in MINDIR_INT8_REASON
    import mindspore as ms

    assert "quant_mode" not in (ms.export.__doc__ or "")  # the installed MindSpore's export has no quantization
    with pytest.raises(ImportError):
        import mindspore.compression  # noqa: F401  (1.x's quantization package, gone in 2.x)


def test_import_does_no_work():
    import subprocess
    import sys

    code = "import facezoo.quantization, sys; print(any(m in sys.modules for m in ('nncf', 'openvino', 'onnxruntime')))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


def test_suite_low_precision_ratios_and_targets():
    from facezoo.benchmark.peak import PeakMeasurement
    from facezoo.benchmark.results import BenchmarkCase, BenchmarkResult, Latency
    from facezoo.benchmark.suite.ratios import (
        check_low_precision_targets,
        compare_low_precision,
        low_precision_efficiencies,
    )

    def result(model, precision, mode, batch, throughput, p50=None):
        case = BenchmarkCase(model, f"/c/{model}/{precision}/{model}.xml", "openvino", precision, "openvino",
                             batch=batch, mode=mode)
        latency = Latency(p50, p50, p50, p50, p50, p50) if p50 else None
        return BenchmarkResult(case, "ok", throughput=throughput, latency=latency, gflops_per_image=24.0)

    results = [result("arcface", "FP32", "throughput", 8, 15.0), result("arcface", "INT8", "throughput", 8, 150.0),
               result("arcface", "BF16", "throughput", 8, 60.0),
               result("mfn", "FP32", "latency", 1, 200.0, 5.0), result("mfn", "INT8", "latency", 1, 600.0, 1.5)]
    low = compare_low_precision(results)
    ratios = {(c.model, c.precision, c.mode): c.ratio for c in low}
    assert ratios[("arcface", "INT8", "throughput")] == 10.0 and ratios[("arcface", "BF16", "throughput")] == 4.0
    peaks = {"INT8": PeakMeasurement(4000.0, "m", {}, 2048), "BF16": PeakMeasurement(2000.0, "m", {}, 2048)}
    efficiency = low_precision_efficiencies(results, peaks)
    assert {(e.model, round(e.fraction, 3)) for e in efficiency} >= {("arcface", 0.9), ("arcface", 0.72)}
    record = {"model": "arcface", "int8": {"ladders": [{"format": "openvino", "passed": True, "candidates": [
        {"verdict": {"passed": False, "min_cosine": 0.97}}, {"verdict": {"passed": True, "min_cosine": 0.993}}]}]}}
    architectures = {"arcface": "iresnet100", "mfn": "mobilefacenet"}
    targets = check_low_precision_targets(low, efficiency, [record], architectures, peaks, ["avx512f", "amx_int8"])
    by_name = {t.target.split(" ")[0] + t.target.split(" ")[1]: t for t in targets}
    assert by_name["iresnet100INT8"].met is True and "0.993" in by_name["iresnet100INT8"].measured
    assert "≥ 8× FP32 throughput on this CPU (AMX)" in by_name["iresnet100INT8"].target
    # the ISA sets the bar: 10× meets 8× with AMX and 3× with VNNI; 6× meets only VNNI's
    slower = [dataclasses.replace(c, value=c.fp32 * 6.0) if c.model == "arcface" and c.precision == "INT8" else c
              for c in low]
    with_amx = check_low_precision_targets(slower, efficiency, [record], architectures, peaks, ["amx_int8"])[0]
    vnni_only = check_low_precision_targets(slower, efficiency, [record], architectures, peaks, ["avx512_vnni"])[0]
    neither = check_low_precision_targets(slower, efficiency, [record], architectures, peaks, ["avx2"])[0]
    assert with_amx.met is False and "missed by 2.00×" in with_amx.note
    assert vnni_only.met is True and "≥ 3× FP32" in vnni_only.target and "VNNI, no AMX" in vnni_only.target
    assert neither.met is None and "no target on this CPU (neither AMX nor VNNI)" in neither.target
    assert by_name["INT8at"].met is True and by_name["BF16at"].met is True
    assert by_name["MobileFaceNetINT8"].met is True and "1.50 ms" in by_name["MobileFaceNetINT8"].measured
