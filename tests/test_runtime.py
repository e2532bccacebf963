"""The runtime on converted stand-ins: every backend × format present on this machine."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from facezoo.sources.mindspore.source import MindSporeSource
from facezoo.faces import probe_images, synthetic_face
from facezoo.preprocessing import to_model_input
from facezoo.runtime import BackendError, Embedder, InputError, align_face, available_devices, load
from facezoo.preprocessing import ImageError, fit_crop, template

REPO = Path(__file__).resolve().parents[1]
NAME = "mindface-arcface-mobilefacenet"
COMBINATIONS = [
    ("FP32", "xml", "openvino"),
    ("FP16", "xml", "openvino"),
    ("FP32", "onnx", "onnxruntime"),
    ("FP32", "onnx", "openvino"),
    ("FP16", "onnx", "onnxruntime"),
    ("FP32", "mindir", "mindspore"),
]


@pytest.fixture(scope="module")
def original(converted_mobilefacenet):
    """The original network's embeddings of the probe faces (upstream RGB preprocessing)."""
    zoo, root, _, _ = converted_mobilefacenet
    spec = zoo.get(NAME)
    images = probe_images(4, (112, 112))
    return images, MindSporeSource(spec, root / NAME / spec.conversion.checkpoint).reference(images)["embedding"]


def _path(out: Path, precision: str, suffix: str) -> Path:
    return out / NAME / precision / f"{NAME}.{suffix}"


def _cos(a, b):
    return np.sum(a * b, 1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.mark.parametrize("precision, suffix, backend", COMBINATIONS)
def test_every_backend_and_format_reproduces_the_original(converted_mobilefacenet, original, precision, suffix, backend):
    _, _, out, _ = converted_mobilefacenet
    images, reference = original
    with load(_path(out, precision, suffix), backend=backend) as model:
        assert model.backend.name == backend and model.backend.device == "CPU"
        from_float = model.infer(to_model_input(images, "BGR"))["embedding"]
        from_uint8 = model.infer(images)["embedding"]  # uint8 N×H×W×C BGR is accepted as is
    threshold = 0.99999 if precision == "FP32" else 0.999
    assert _cos(from_float, reference).min() >= threshold
    np.testing.assert_array_equal(from_float, from_uint8)


@pytest.mark.parametrize("precision, suffix, backend", COMBINATIONS)
def test_batch_n_equals_n_single_runs(converted_mobilefacenet, precision, suffix, backend):
    _, _, out, _ = converted_mobilefacenet
    batch = to_model_input(probe_images(3, (112, 112)), "BGR")
    with load(_path(out, precision, suffix), backend=backend) as model:
        together = model.infer(batch)["embedding"]
        alone = np.concatenate([model.infer(batch[i : i + 1])["embedding"] for i in range(3)])
    np.testing.assert_allclose(together, alone, atol=2e-4 * np.abs(alone).max())


def test_async_queue_gives_the_same_rows_as_sync_calls(converted_mobilefacenet):
    _, _, out, _ = converted_mobilefacenet
    batches = [to_model_input(probe_images(2 + i, (112, 112)), "BGR") for i in range(4)]
    with load(_path(out, "FP32", "xml"), num_streams=2, performance_hint="THROUGHPUT") as model:
        queued = model.infer_many(batches)
        direct = [model.infer(b) for b in batches]
    for a, b in zip(queued, direct):
        assert a.keys() == b.keys() == {"embedding"}
        np.testing.assert_allclose(a["embedding"], b["embedding"], rtol=1e-5, atol=1e-5)


def test_specs_come_from_the_model_card_or_the_file(converted_mobilefacenet, tmp_path):
    _, _, out, _ = converted_mobilefacenet
    with load(_path(out, "FP32", "xml")) as model:
        assert model.input_spec.shape == (-1, 3, 112, 112)
        assert model.input_spec.channel_order == "BGR"
        assert [(o.name, o.shape) for o in model.output_specs] == [("embedding", (-1, 512))]
    bare = tmp_path / "bare.onnx"
    shutil.copyfile(_path(out, "FP32", "onnx"), bare)
    with load(bare) as model:
        assert model.input_spec.name == "data" and model.input_spec.shape == (-1, 3, 112, 112)
        assert [o.name for o in model.output_specs] == ["embedding"]


@pytest.mark.parametrize(
    "batch, message",
    [
        (np.zeros((2, 1, 112, 112), np.float32), "1 channels"),
        (np.zeros((2, 3, 96, 112), np.float32), "96×112"),
        (np.zeros((3, 112, 112), np.float32), "rank 3"),
        (np.zeros((1, 3, 112, 112), np.int32), "dtype int32"),
        (np.zeros((0, 3, 112, 112), np.float32), "empty batch"),
        (np.zeros((2, 112, 112, 4), np.uint8), "N×H×W×3"),
    ],
)
def test_bad_inputs_name_the_expected_shape(converted_mobilefacenet, batch, message):
    _, _, out, _ = converted_mobilefacenet
    with load(_path(out, "FP32", "onnx")) as model, pytest.raises(InputError) as error:
        model.infer(batch)
    assert message in str(error.value)
    assert "[N, 3, 112, 112]" in str(error.value)


def test_unavailable_device_says_what_exists_and_what_to_install(converted_mobilefacenet):
    _, _, out, _ = converted_mobilefacenet
    if "GPU" in available_devices()["onnxruntime"]:
        pytest.skip("this machine has ONNX Runtime's CUDA provider; the error path needs a machine without it")
    with pytest.raises(BackendError) as error:
        load(_path(out, "FP32", "onnx"), device="GPU")
    text = str(error.value)
    assert "onnxruntime cannot use device GPU" in text and "available here" in text and "onnxruntime-gpu" in text
    with pytest.raises(BackendError, match="no Ascend plugin|cannot use device Ascend"):
        load(_path(out, "FP32", "xml"), device="Ascend")


def test_auto_picks_an_available_device_and_mismatched_backend_is_refused(converted_mobilefacenet):
    _, _, out, _ = converted_mobilefacenet
    with load(_path(out, "FP32", "onnx"), device="AUTO") as model:
        assert model.backend.device in available_devices()["onnxruntime"]
    with pytest.raises(BackendError, match="mindspore runs .mindir files"):
        load(_path(out, "FP32", "onnx"), backend="mindspore")
    with pytest.raises(BackendError, match="unknown device"):
        load(_path(out, "FP32", "onnx"), device="TPU")


@pytest.mark.skipif(
    "GPU" not in available_devices()["onnxruntime"],
    reason="no NVIDIA GPU with onnxruntime-gpu on this machine (CI has none); run on a GPU machine",
)
def test_gpu_path_matches_cpu(converted_mobilefacenet):
    _, _, out, _ = converted_mobilefacenet
    batch = to_model_input(probe_images(4, (112, 112)), "BGR")
    with load(_path(out, "FP32", "onnx"), device="GPU") as gpu, load(_path(out, "FP32", "onnx")) as cpu:
        assert _cos(gpu.infer(batch)["embedding"], cpu.infer(batch)["embedding"]).min() > 0.9999


def test_embedder_aligns_with_landmarks_and_fits_crops(converted_mobilefacenet):
    _, _, out, _ = converted_mobilefacenet
    face = synthetic_face(7, 0, (112, 112))
    # put the aligned face into a bigger photo with a known similarity transform
    angle, scale, shift = 12.0, 1.7, (40.0, 25.0)
    matrix = cv2.getRotationMatrix2D((56, 56), angle, scale)
    matrix[:, 2] += shift
    photo = cv2.warpAffine(face, matrix, (260, 240))
    landmarks = cv2.transform(template((112, 112))[None], matrix)[0]
    realigned = align_face(photo, landmarks, (112, 112))
    assert np.abs(realigned[20:100, 20:90].astype(int) - face[20:100, 20:90]).mean() < 6
    embedder = Embedder(_path(out, "FP32", "xml"))
    from_photo = embedder.embed([photo], landmarks[None])
    from_crop, other = embedder.embed([face, synthetic_face(8, 0, (112, 112))])
    # resampling blurs the crop a little; it must still be nearest to its own face
    assert float(from_photo[0] @ from_crop) > float(from_photo[0] @ other) + 0.1
    assert np.isclose(np.linalg.norm(from_crop), 1.0, atol=1e-5)


def test_embedder_is_a_ray_style_callable_and_resolves_zoo_names(converted_mobilefacenet):
    _, _, out, _ = converted_mobilefacenet
    embedder = Embedder(NAME, converted_dir=out, format="onnx", precision="FP16")
    assert embedder.artifact.path == _path(out, "FP16", "onnx")
    batch = {"image": probe_images(3, (112, 112)), "id": np.arange(3)}
    result = embedder(batch)
    assert result["embedding"].shape == (3, 512) and list(result["id"]) == [0, 1, 2]
    face = synthetic_face(1, 0, (112, 112))
    np.testing.assert_array_equal(fit_crop(face, (112, 96)), face[:, 8:104])
    assert fit_crop(face, (128, 128), resize=True).shape == (128, 128, 3)
    with pytest.raises(ImageError, match="not an aligned face crop"):
        fit_crop(face, (128, 128))


def test_embedder_refuses_raw_photos_unless_asked_to_resize(converted_mobilefacenet):
    _, _, out, _ = converted_mobilefacenet
    photo = cv2.resize(synthetic_face(5, 0, (112, 112)), (1000, 750))
    embedder = Embedder(_path(out, "FP32", "onnx"))
    with pytest.raises(ImageError, match=r"image 1: 750×1000 is not an aligned face crop.*landmarks"):
        embedder.embed([synthetic_face(5, 0, (112, 112)), photo])
    resized = Embedder(embedder.model, resize=True).embed([photo])
    assert resized.shape == (1, 512)
    embedder.close()


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "facezoo.cli.main", *map(str, args)], capture_output=True, text=True, cwd=REPO)


def test_cli_embed_compare_and_infer(converted_mobilefacenet, tmp_path):
    _, _, out, _ = converted_mobilefacenet
    paths = []
    for identity, variation in [(3, 0), (3, 1), (9, 0)]:
        paths.append(tmp_path / f"face-{identity}-{variation}.png")
        cv2.imwrite(str(paths[-1]), synthetic_face(identity, variation, (112, 112)))
    embedded = _cli("embed", NAME, *paths, "-c", out, "-o", tmp_path / "e.npy")
    assert embedded.returncode == 0, embedded.stderr
    embeddings = np.load(tmp_path / "e.npy")
    assert embeddings.shape == (3, 512)
    compared = _cli("compare", _path(out, "FP32", "xml"), paths[0], paths[1], "--threshold", "0.3")
    assert compared.returncode == 0, compared.stderr
    score = float(compared.stdout.split("cosine similarity ")[1].split(":")[0])
    assert abs(score - float(embeddings[0] @ embeddings[1])) < 1e-3
    np.save(tmp_path / "in.npy", to_model_input(probe_images(2, (112, 112)), "BGR"))
    inferred = _cli("infer", _path(out, "FP32", "onnx"), "--input", tmp_path / "in.npy", "-o", tmp_path / "out.npy")
    assert inferred.returncode == 0, inferred.stderr
    assert np.load(tmp_path / "out.npy").shape == (2, 512)
    missing = _cli("embed", "arcface", paths[0], "-c", tmp_path / "nothing")
    assert missing.returncode == 1 and "no converted" in missing.stderr and "Traceback" not in missing.stderr
    bad = _cli("embed", NAME, tmp_path / "missing.png", "-c", out)
    assert bad.returncode == 1 and "cannot read image" in bad.stderr
    landmarks = tmp_path / "l.json"
    landmarks.write_text(json.dumps({paths[0].name: [[1, 2]] * 4}))
    wrong = _cli("embed", NAME, paths[0], "-c", out, "--landmarks", landmarks)
    assert wrong.returncode == 1 and "expected landmarks of shape (1, 5, 2)" in wrong.stderr
    photos = []
    for index, path in enumerate(paths[:2]):  # two "raw photos": whole images, no alignment
        photos.append(tmp_path / f"photo-{index}.jpg")
        cv2.imwrite(str(photos[-1]), cv2.resize(cv2.imread(str(path)), (1000, 800)))
    raw = _cli("compare", NAME, *photos, "-c", out)
    assert raw.returncode == 1 and "Traceback" not in raw.stderr
    assert "800×1000 is not an aligned face crop" in raw.stderr and "--landmarks" in raw.stderr
    assert "cosine" not in raw.stdout
    forced = _cli("compare", NAME, *photos, "-c", out, "--resize")
    assert forced.returncode == 0, forced.stderr
    assert "cosine similarity" in forced.stdout


def test_openvino_survives_sync_and_async_calls_on_freed_batches(converted_mobilefacenet):
    """Regression: sharing sync inputs with OpenVINO crashed a later infer_many (SIGSEGV).

    Run in a child so that a crash fails this test instead of killing the test worker.
    """
    import subprocess
    import sys

    _, _, out, _ = converted_mobilefacenet
    path = out / "mindface-arcface-mobilefacenet" / "FP32" / "mindface-arcface-mobilefacenet.xml"
    script = f"""
import numpy as np
from facezoo.runtime import load
model = load({str(path)!r}, performance_hint="THROUGHPUT")
rng = np.random.default_rng(0)
for round in range(4):
    batches = [rng.uniform(0, 255, (32, 3, 112, 112)).astype(np.float32) for _ in range(6)]
    first = model.infer(batches[0])["embedding"]
    many = model.infer_many(batches)
    assert np.allclose(first, many[0]["embedding"], atol=1e-4), round
    del batches, first, many
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), (done.returncode, done.stderr[-2000:])
