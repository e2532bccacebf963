"""facezoo benchmark and the suite: real runs on the converted MobileFaceNet stand-in, kept short.

Timing values are never asserted (they belong to benchmarks/); what is asserted is that the
tools run, count and report correctly.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from facezoo.benchmark import BenchmarkCase, BenchmarkResult, Latency, count_flops, measure_fp32_peak, run_case
from facezoo.benchmark.plan import Matrix, find_targets, plan_cases
from facezoo.benchmark.report import read_results
from facezoo.benchmark.suite.conversion import ConversionFigure
from facezoo.benchmark.suite.overhead import OverheadFigure, measure_overhead
from facezoo.benchmark.suite.ratios import Efficiency, check_targets
from facezoo.errors import FacezooError
from facezoo.registry import load_zoo

REPO = Path(__file__).resolve().parents[1]
MFN = "mindface-arcface-mobilefacenet"


def _tiny_onnx(path: Path) -> Path:
    """Conv 3→8 (3×3, pad 1) on 16×16, depthwise 8→8 (3×3, stride 2), then Gemm 512→10."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "w1"),
        numpy_helper.from_array(rng.standard_normal((8, 1, 3, 3)).astype(np.float32), "w2"),
        numpy_helper.from_array(rng.standard_normal((10, 512)).astype(np.float32), "w3"),
        numpy_helper.from_array(np.zeros(10, np.float32), "b3"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1], strides=[2, 2], group=8),
        helper.make_node("Flatten", ["c2"], ["f"]),
        helper.make_node("Gemm", ["f", "w3", "b3"], ["y"], transB=1),
    ]
    graph = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 10])],
        inits,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_flops_are_counted_per_image_from_the_graph(tmp_path):
    counted = count_flops(_tiny_onnx(tmp_path / "tiny.onnx"))
    conv = 2 * (8 * 16 * 16) * (3 * 3 * 3)
    depthwise = 2 * (8 * 8 * 8) * (1 * 3 * 3)
    gemm = 2 * 10 * 512
    assert counted.by_op["Conv"] * 1e9 == pytest.approx(conv + depthwise)
    assert counted.by_op["Gemm"] * 1e9 == pytest.approx(gemm)
    assert counted.parameters == 8 * 27 + 8 * 9 + 5120 + 10


def test_flops_of_a_broken_file_name_it(tmp_path):
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not a protobuf at all")
    with pytest.raises(FacezooError, match="broken.onnx"):
        count_flops(bad)


def test_registry_gflops_match_the_converted_graph(converted_mobilefacenet):
    zoo, _, out, _ = converted_mobilefacenet
    counted = count_flops(out / MFN / "FP32" / f"{MFN}.onnx")
    assert load_zoo().get(MFN).gflops == pytest.approx(counted.gflops, rel=0.005)


def test_results_json_writes_an_unmeasured_figure_as_null(tmp_path):
    from facezoo.benchmark.report import write_json

    path = write_json({"a": float("nan"), "b": [1.5, float("inf"), {"c": -float("inf")}], "d": "x"}, tmp_path / "r.json")
    assert json.loads(path.read_text()) == {"a": None, "b": [1.5, None, {"c": None}], "d": "x"}


def test_latency_percentiles_and_json_round_trip():
    laps = [0.001 * value for value in range(1, 101)]
    latency = Latency.of(laps)
    assert latency.p50 == pytest.approx(np.percentile(np.arange(1, 101), 50))
    assert latency.p99 == pytest.approx(np.percentile(np.arange(1, 101), 99))
    assert latency.min == pytest.approx(1.0) and latency.max == pytest.approx(100.0)
    result = BenchmarkResult(BenchmarkCase("m", "m.xml", "openvino", "FP32", "openvino"), "ok", throughput=5.0,
                             latency=latency, gflops_per_image=2.0)
    again = BenchmarkResult.from_json(json.loads(json.dumps(result.to_json())))
    assert again == result and again.achieved_gflops == pytest.approx(10.0)


def test_plan_covers_every_artifact_and_backend_that_runs_it(converted_mobilefacenet):
    _, _, out, _ = converted_mobilefacenet
    artifacts = find_targets([MFN], out)
    cases = plan_cases(artifacts, Matrix(batches=(1, 4), runners=("facezoo", "direct")))
    paths = {(c.format, c.precision, c.backend) for c in cases}
    assert paths == {
        (fmt, precision, backend)
        for precision in ("FP32", "FP16")
        for fmt, backend in (("openvino", "openvino"), ("onnx", "openvino"), ("onnx", "onnxruntime"), ("mindir", "mindspore"))
    }
    # MindSpore has no direct runner: 8 paths × 2 batches facezoo + 6 × 2 direct.
    assert len(cases) == 8 * 2 + 6 * 2
    only_ort = plan_cases(artifacts, Matrix(backends=("onnxruntime",)))
    assert {(c.format, c.backend) for c in only_ort} == {("onnx", "onnxruntime")}
    with pytest.raises(FacezooError, match="--backend 'tensorrt'"):
        Matrix(backends=("tensorrt",))
    with pytest.raises(FacezooError, match="no converted files for 'nope'"):
        find_targets(["nope"], out)


@pytest.mark.parametrize("mode", ["latency", "throughput"])
@pytest.mark.parametrize("runner", ["facezoo", "direct"])
def test_run_case_counts_what_it_ran(converted_mobilefacenet, mode, runner):
    _, _, out, _ = converted_mobilefacenet
    case = BenchmarkCase(MFN, str(out / MFN / "FP32" / f"{MFN}.xml"), "openvino", "FP32", "openvino",
                         batch=3, mode=mode, runner=runner)
    result = run_case(case, iterations=4, warmup=1, gflops_per_image=0.875)
    assert result.ok, result.error
    assert result.iterations == 4 and result.images == 12
    assert result.throughput == pytest.approx(12 / result.seconds)
    assert result.first_inference_ms > 0 and result.load_ms > 0
    assert result.achieved_gflops == pytest.approx(0.875 * result.throughput)
    if mode == "latency":
        assert result.latency.min <= result.latency.p50 <= result.latency.p90 <= result.latency.p99 <= result.latency.max
        assert sum([result.latency.mean * 4 / 1e3]) == pytest.approx(result.seconds, rel=1e-6)
    else:
        assert result.latency is None and result.requests >= 1


def test_preprocessing_case_decodes_jpegs(converted_mobilefacenet):
    _, _, out, _ = converted_mobilefacenet
    case = BenchmarkCase(MFN, str(out / MFN / "FP32" / f"{MFN}.onnx"), "onnx", "FP32", "onnxruntime",
                         batch=2, preprocessing=True)
    result = run_case(case, iterations=2, warmup=0)
    assert result.ok, result.error
    assert result.images == 4


def test_missing_device_is_unavailable_not_a_fallback(converted_mobilefacenet):
    from facezoo.runtime.devices import devices_for

    if "GPU" in devices_for("onnxruntime"):
        pytest.skip("this machine has ONNX Runtime's CUDA provider: the GPU is available here")
    _, _, out, _ = converted_mobilefacenet
    for runner in ("facezoo", "direct"):
        case = BenchmarkCase(MFN, str(out / MFN / "FP32" / f"{MFN}.onnx"), "onnx", "FP32", "onnxruntime",
                             device="GPU", runner=runner)
        result = run_case(case, iterations=1)
        assert result.status == "unavailable"
        assert "onnxruntime-gpu" in result.error


def _facezoo(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "220"}
    return subprocess.run([sys.executable, "-m", "facezoo.cli.main", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def test_benchmark_cli_writes_table_json_and_chart(converted_mobilefacenet, tmp_path):
    _, _, out, _ = converted_mobilefacenet
    report, chart = tmp_path / "bench.json", tmp_path / "bench.png"
    done = _facezoo(
        "benchmark", MFN, "-c", str(out), "--format", "openvino,onnx", "--precision", "FP32",
        "--batch", "1,2", "--mode", "latency,throughput", "--iterations", "2", "--direct",
        "--json", str(report), "--plot", str(chart),
    )
    assert done.returncode == 0, done.stderr
    assert "p50 ms" in done.stdout and "img/s" in done.stdout
    document, results = read_results(report)
    # IR: openvino; ONNX: openvino + onnxruntime → 3 paths × 2 batches × 2 modes × (facezoo, direct)
    assert len(results) == 3 * 2 * 2 * 2
    assert all(r.ok and r.iterations == 2 and r.images == 2 * r.case.batch for r in results)
    assert {r.case.runner for r in results} == {"facezoo", "direct"}
    assert all((r.latency is not None) == (r.case.mode == "latency") for r in results)
    assert document["machine"]["usable_cpus"] >= 1 and document["machine"]["libraries"]["openvino"]
    assert document["settings"]["preprocessing"] is False
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_benchmark_cli_rejects_bad_options(converted_mobilefacenet, tmp_path):
    _, _, out, _ = converted_mobilefacenet
    done = _facezoo("benchmark", MFN, "-c", str(out), "--batch", "0")
    assert done.returncode == 1 and "--batch '0'" in done.stderr
    done = _facezoo("benchmark", "no-such-model", "-c", str(out))
    assert done.returncode == 1 and "no converted files for 'no-such-model'" in done.stderr
    done = _facezoo("benchmark", MFN, "-c", str(out), "--mode", "fast")
    assert done.returncode == 1 and "--mode 'fast'" in done.stderr
    assert not list(tmp_path.iterdir())


def test_peak_measurement_reports_both_methods():
    peak = measure_fp32_peak(size=256, seconds=0.05)
    assert set(peak.by_method) == {"numpy sgemm", "OpenVINO MatMul (f32)"}
    assert peak.gflops == max(peak.by_method.values()) > 0


def test_overhead_pairs_both_runners(converted_mobilefacenet):
    _, _, out, _ = converted_mobilefacenet
    case = BenchmarkCase(MFN, str(out / MFN / "FP32" / f"{MFN}.onnx"), "onnx", "FP32", "onnxruntime", batch=2)
    figure = measure_overhead(case, rounds=2, seconds=0.05, warmup=0)
    assert figure.error == "" and figure.rounds == 2
    assert len(figure.facezoo_runs) == len(figure.direct_runs) == 2
    ratios = [f / d for f, d in zip(figure.facezoo_runs, figure.direct_runs)]
    assert figure.ratio == pytest.approx(float(np.median(ratios)))
    assert 0 < figure.wrapper_us < 1e5 and 0 < figure.wrapper_share < 1
    missing = measure_overhead(BenchmarkCase(MFN, str(out / "missing.onnx"), "onnx", "FP32", "onnxruntime"), rounds=2)
    assert missing.ratio is None and "missing.onnx" in missing.error


def _overhead(ratio: float, wrapper_us: float = 0.0) -> OverheadFigure:
    runs = [100.0 * ratio, 100.0 * ratio * 1.1, 100.0 * ratio * 0.5]  # paired with direct runs of 100
    return OverheadFigure("m", "IR FP32", "openvino", 1, "latency", 100.0 * ratio, 100.0, 3, runs, [100.0] * 3,
                          wrapper_us=wrapper_us)


def test_targets_say_met_missed_and_by_how_much():
    conversions = [ConversionFigure("arcface", 200.0, 5000.0, True, 6, "log"), ConversionFigure("small", 150.0, 900.0, True, 6, "log")]
    checks = check_targets(
        [_overhead(0.99), _overhead(0.95)],
        [Efficiency("arcface", "IR FP32", 100.0, 400.0)],
        conversions,
        {"arcface": "iresnet100", "small": "mobilefacenet"},
        {"measured": False, "reason": "no GPU here"},
    )
    by_name = {c.target.split(":")[0]: c for c in checks}
    assert by_name["runtime overhead"].met is False and "missed by 3.0 points" in by_name["runtime overhead"].note
    assert "rounds ranged 47.5–104.5 %" in by_name["runtime overhead"].note
    assert "µs per batch" not in by_name["runtime overhead"].note  # facezoo's own cost was not timed
    timed = check_targets([_overhead(0.95, wrapper_us=10.0)], [], [], {}, {"measured": False})[0]
    assert timed.met is False and "10.0 µs per batch (0.095 % of a batch's time)" in timed.note
    broken = OverheadFigure("m", "IR FP32", "openvino", 32, "throughput", 0, 0, 0, [], [], "worker exited with status -11")
    partial = check_targets([_overhead(0.99), broken], [], [], {}, {"measured": False})[0]
    assert partial.met is False and "1 pair(s) did not run: worker exited with status -11" in partial.note
    assert by_name["CPU"].met is False and "25.0 %" in by_name["CPU"].measured
    assert by_name["GPU"].met is None and by_name["GPU"].note == "no GPU here"
    assert by_name["conversion"].met is False and "missed by 50 s" in by_name["conversion"].note
    memory = [c for c in checks if "peak memory" in c.target]
    assert len(memory) == 1 and memory[0].met is False  # 5000 MiB = 5.24 GB > 4 GB


def test_suite_writes_json_markdown_and_figures(converted_mobilefacenet, tmp_path):
    from facezoo.benchmark.suite import SuiteOptions, run_suite

    _, _, out, _ = converted_mobilefacenet
    options = SuiteOptions(
        models=[MFN], results_dir=tmp_path / "results", machine_name="test-machine", seconds=0.05, warmup=0,
        converted_dir=out, light_batch=2, overhead_models=(MFN,), overhead_batches=(1, 2), overhead_rounds=1,
        bf16=True, peak_seconds=0.05, workdir=tmp_path / "work", deploy_clients=(1, 3), deploy_seconds=0.3,
        ray_sizes=(12, 24), soak_clients=4, soak_seconds=3.0,
    )
    paths = run_suite(options)
    assert {p.name for p in (tmp_path / "results").iterdir()} == {
        "test-machine.json", "test-machine.md", "test-machine-throughput.png", "test-machine-latency.png",
    }
    document, results = read_results(paths["json"])
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    assert any(r.case.precision_hint == "bf16" for r in results) and any(r.case.preprocessing for r in results)
    assert 0.9 < document["bf16_agreement"][MFN] <= 1.0 + 1e-6
    assert len(document["overhead"]) == 4 and all(o["ratio"] > 0 for o in document["overhead"])
    assert document["flops"][0]["counted_gflops"] == pytest.approx(0.875, rel=0.01)
    targets = {t["target"].split(":")[0]: t for t in document["targets"]}
    assert targets["runtime overhead"]["met"] in (True, False)
    assert targets["GPU"]["met"] is None or document["gpu"]["measured"]
    deployment = document["deployment"]
    assert not deployment["errors"], deployment["errors"]
    assert [row["clients"] for row in deployment["serving"]] == [1, 3]
    assert all(row["requests"] > 0 and row["errors"] == 0 and row["ratio"] > 0 for row in deployment["serving"])
    assert deployment["ray"]["images"] == [12, 24] and deployment["ray"]["ratio"] > 0
    assert targets["serving"]["met"] in (True, False) and targets["Ray Data"]["met"] in (True, False)
    soak = deployment["soak"]  # every kind answered as meant, and never a 5xx
    assert soak["five_xx"] == 0 and soak["unexpected"] == {} and soak["requests"] >= len(soak["statuses"])
    assert all(sum(statuses.values()) > 0 for statuses in soak["statuses"].values()), soak["statuses"]
    assert targets["hostile soak"]["met"] in (True, False)
    markdown = paths["markdown"].read_text(encoding="utf-8")
    for heading in ("## Targets", "## Every case", "## Runtime overhead", "## FP16 against FP32", "## GPU",
                    "## Serving: `facezoo serve`", "## Ray Data: `facezoo embed-dataset`", "## Hostile soak"):
        assert heading in markdown
    assert "stand-in" in markdown
    # The report can be written again from the results file alone, identically.
    from facezoo.benchmark.suite import rerender

    again = rerender(paths["json"], tmp_path / "again")
    assert again["markdown"].read_text(encoding="utf-8") == markdown


def test_conversion_figures_come_from_a_separate_process(standin_models, tmp_path):
    from facezoo.benchmark.suite.conversion import convert_in_subprocess

    zoo, root = standin_models
    figure = convert_in_subprocess("lightcnn", zoo.path, root, tmp_path / "converted", tmp_path / "logs")
    assert figure.passed, figure.error
    assert figure.artifacts == 6  # MINDIR, ONNX, IR × FP32, FP16
    assert 100 < figure.peak_rss_mib < 8192 and figure.seconds > 0
    assert Path(figure.log).is_file()


def test_a_dying_worker_fails_only_its_own_cases(converted_mobilefacenet):
    from facezoo.benchmark.suite.worker import run_cases, run_job

    _, _, out, _ = converted_mobilefacenet
    case = BenchmarkCase(MFN, str(out / MFN / "FP32" / f"{MFN}.xml"), "openvino", "FP32", "openvino")
    lines, error = run_job({"kind": "nonsense"})
    assert lines == [] and "unknown job kind 'nonsense'" in error
    # The child raises on its first case: both cases come back failed, with the child's last words.
    results = run_cases([case, case], {"iterations": 1, "no_such_setting": 1})
    assert [r.status for r in results] == ["failed", "failed"]
    assert "no_such_setting" in results[0].error
    good = run_cases([case], {"iterations": 1, "warmup": 0})
    assert good[0].ok and good[0].iterations == 1


# -- the detector section ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def detector_files(converted_mtcnn, converted_mobilefacenet, tmp_path_factory):
    """A workdir whose converted folder holds the YuNet stand-in (ONNX and IR, FP32), the real MTCNN
    and the MobileFaceNet stand-in (the session's conversions, linked)."""
    from facezoo.conversion import ConversionRequest, convert_model
    from facezoo.standins import build_standins

    root = tmp_path_factory.mktemp("detector-work")
    standins = build_standins(load_zoo(), root / "standins", ["yunet"])
    converted = root / "converted"
    done = convert_model(ConversionRequest(standins.zoo().get("yunet"), root / "standins", converted,
                                           ["onnx", "openvino"], ["FP32"]))
    assert done.passed, done.error
    (converted / "mtcnn").symlink_to(converted_mtcnn.converted_dir / "mtcnn")
    (converted / MFN).symlink_to(converted_mobilefacenet[2] / MFN)
    return root


def test_detector_section_writes_its_rows_tables_and_targets(detector_files, tmp_path):
    from facezoo.benchmark.suite import SuiteOptions, run_detectors_only
    from facezoo.benchmark.suite.detectors import OPENCV, STAGES

    options = SuiteOptions(workdir=detector_files, converted_dir=detector_files / "converted",
                           results_dir=tmp_path / "results", machine_name="test-machine", warmup=0,
                           detector_formats=("onnx",), detector_precisions=("FP32",), detector_iterations=2,
                           detector_rounds=2)
    paths = run_detectors_only(options)
    assert {p.name for p in (tmp_path / "results").iterdir()} == {"test-machine-detectors.json",
                                                                 "test-machine-detectors.md"}
    document = json.loads(paths["detectors-json"].read_text(encoding="utf-8"))
    assert document["machine"]["name"] == "test-machine" and document["machine"]["usable_cpus"] >= 1
    section = document["detectors"]
    assert not section["errors"], section["errors"]
    assert section["settings"]["weights"]["yunet"].startswith("stand-in")
    assert section["settings"]["weights"]["mtcnn"].startswith("real")
    # Every detector × the ONNX FP32 file × both backends that run it × both photo sizes, each timed 2 times.
    expected = {(model, "onnx", "FP32", backend, width, height) for model in ("yunet", "mtcnn")
                for backend in ("openvino", "onnxruntime") for width, height in ((640, 480), (1280, 720))}
    rows = section["latency"]
    assert len(rows) == len(expected)
    assert {(r["model"], r["format"], r["precision"], r["backend"], r["width"], r["height"]) for r in rows} == expected
    for row in rows:
        assert row["error"] == "" and row["iterations"] == 2 and row["faces"] >= 1
        assert all(isinstance(row[key], float) for key in ("p50_ms", "p99_ms", "photos_per_s", "first_ms"))
    # cv2.FaceDetectorYN on the original file against each facezoo file × backend, per size, in rounds.
    assert [(v["width"], v["height"]) for v in section["versus"]] == [(640, 480), (1280, 720)]
    original = Path(section["settings"]["opencv_original"])
    assert original.name == "face_detection_yunet_2023mar.onnx" and original.is_file()
    for line in section["versus"]:
        assert not line["errors"] and line["rounds"] == 2
        runners = line["runners"]
        assert [r["runner"] for r in runners] == [OPENCV, "facezoo", "facezoo"]
        assert {(r["format"], r["backend"]) for r in runners[1:]} == {("onnx", "onnxruntime"), ("onnx", "openvino")}
        assert all(len(r["runs"]) == 2 and r["iterations"] == 4 for r in runners)
        assert len({r["faces"] for r in runners}) == 1  # the same faces: the same work
    path = section["photo_path"]
    assert set(path["stages"]) == set(STAGES) and path["faces"] >= 1 and path["jpeg_bytes"] > 0
    assert all(stage["iterations"] == 4 for stage in path["stages"].values()) and path["whole"]["iterations"] == 4
    assert len(path["round_ratios"]) == 2
    targets = document["targets"]
    assert [t["target"].split(":")[0] for t in targets] == ["YuNet 640×480", "YuNet 1280×720", "photo path"]
    assert all(t["met"] in (True, False) and t["measured"] for t in targets)
    markdown = paths["detectors-markdown"].read_text(encoding="utf-8")
    for heading in ("## Targets", "## Detector latency: one photo at a time", "## YuNet: facezoo against cv2",
                    "### 640×480", "### 1280×720", "## The photo path: decode, detect, align, embed"):
        assert heading in markdown
    latency_rows = [line for line in markdown.splitlines() if line.startswith(("| yunet |", "| mtcnn |"))]
    assert len(latency_rows) == 8
    assert all("| stand-in |" in line for line in latency_rows if line.startswith("| yunet"))
    assert all("| real |" in line for line in latency_rows if line.startswith("| mtcnn"))
    assert sum(line.startswith(f"| {OPENCV}") for line in markdown.splitlines()) == 2
    assert "**whole path**" in markdown and "sum of the stages alone" in markdown
    # The suite's command line writes the page again from the JSON alone, identically.
    again = tmp_path / "again"
    again.mkdir()
    copy = again / paths["detectors-json"].name
    copy.write_bytes(paths["detectors-json"].read_bytes())
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "run.py"), "--render", str(copy)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (again / "test-machine-detectors.md").read_text(encoding="utf-8") == markdown


def test_detector_targets_say_met_missed_and_by_how_much():
    from facezoo.benchmark.suite.detectors import OPENCV
    from facezoo.benchmark.suite.detectors_report import DetectorSection, detector_targets

    def runner(name, backend, runs):
        return {"runner": name, "format": "onnx", "precision": "FP32", "backend": backend, "path": "", "faces": 1,
                "iterations": 6, "p50_ms": 1000 / runs[0], "p99_ms": 1000 / runs[0], "mean_ms": 1000 / runs[0],
                "photos_per_s": sum(runs) / len(runs), "runs": runs}

    cv2_runs = [10.0, 20.0, 10.0]
    slower = {"width": 640, "height": 480, "rounds": 3, "errors": [],
              "runners": [runner(OPENCV, "opencv dnn", cv2_runs), runner("facezoo", "onnxruntime", [9.0, 19.0, 8.0]),
                          runner("facezoo", "openvino", [5.0, 10.0, 5.0])]}
    faster = {**slower, "width": 1280, "height": 720,
              "runners": [runner(OPENCV, "opencv dnn", cv2_runs), runner("facezoo", "openvino", [12.0, 22.0, 13.0])]}
    stage = {"iterations": 4, "p50_ms": 10.0, "p99_ms": 12.0, "mean_ms": 10.0, "photos_per_s": 100.0}
    path = {"stages": dict.fromkeys(("decode", "detect", "align", "embed"), stage), "round_ratios": [0.8, 0.9],
            "whole": {"iterations": 4, "p50_ms": 45.0, "p99_ms": 50.0, "mean_ms": 47.0, "photos_per_s": 21.25},
            "faces": 1, "jpeg_bytes": 10}
    checks = detector_targets(DetectorSection(settings={"photo_path": {}}, versus=[slower, faster], photo_path=path))
    # Per-round ratios 0.9, 0.95, 0.8 (median 0.9) for the best runner; 0.5 for the other.
    assert checks[0].met is False and "facezoo ONNX FP32 · onnxruntime" in checks[0].measured
    assert "0.90× cv2" in checks[0].measured and checks[0].note.startswith("missed by 10.0 %")
    assert checks[1].met is True and "1.20×" in checks[1].measured and checks[1].note == "ahead by 20.0 %"
    # 21.25 photos/s against 1 / 40 ms = 25 photos/s: 85 %, 5 points short of 90 %.
    assert checks[2].met is False and checks[2].measured.startswith("85.0 % (21.2 of 25.0 photos/s")
    assert checks[2].note == "missed by 5.0 points"
    unmeasured = detector_targets(DetectorSection(settings={"photo_path": {}}, errors=["photo path: worker died"]))
    assert unmeasured[0].met is None and "worker died" in unmeasured[0].note
