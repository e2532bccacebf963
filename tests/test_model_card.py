"""model_card.json: one typed, versioned card; the earlier release's cards still load; others are
refused with the file, the field and how to reconvert."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from facezoo.faces import probe_images
from facezoo.modelcard import CARD_NAME, CARD_VERSION, CardError, ModelCard, read_card
from facezoo.preprocessing import to_model_input
from facezoo.runtime import load

DATA = Path(__file__).resolve().parent / "data" / "cards"
MFN = "mindface-arcface-mobilefacenet"
#: A card as facezoo 0.1.0 wrote it (before tasks): the stand-in MobileFaceNet's FP32 folder.
RELEASE_0_1_0 = DATA / "release-0.1.0-mobilefacenet-FP32.json"


def _folder_with_card(converted_mobilefacenet, tmp_path: Path, document: dict) -> Path:
    """The session's converted FP32 ONNX file in a folder of its own, beside ``document`` as its card."""
    _, _, out, _ = converted_mobilefacenet
    folder = tmp_path / MFN / "FP32"
    folder.mkdir(parents=True)
    shutil.copyfile(out / MFN / "FP32" / f"{MFN}.onnx", folder / f"{MFN}.onnx")
    (folder / CARD_NAME).write_text(json.dumps(document), encoding="utf-8")
    return folder


def test_a_card_of_the_earlier_release_loads_as_a_recognition_card():
    document = json.loads(RELEASE_0_1_0.read_text(encoding="utf-8"))
    assert "card_version" not in document and "outputs" not in document  # what 0.1.0 wrote
    card = ModelCard.from_json(document, str(RELEASE_0_1_0))
    assert card.task == "face_recognition" and card.card_version == CARD_VERSION
    assert [(o.name, o.shape, o.dtype) for o in card.outputs] == [("embedding", (-1, 512), "float32")]
    assert card.outputs[0].attributes == {"l2_normalized": False}
    assert card.input.shape == (-1, 3, 112, 112) and card.input.channel_order == "BGR"
    assert card.precision == "FP32" and card.model == MFN
    assert card.spec().name == MFN  # the registry entry it records is valid
    assert all(record["passed"] for record in card.validation)


def test_a_card_of_the_earlier_release_still_runs_its_folder(converted_mobilefacenet, tmp_path):
    folder = _folder_with_card(converted_mobilefacenet, tmp_path, json.loads(RELEASE_0_1_0.read_text()))
    batch = to_model_input(probe_images(2, (112, 112)), "BGR")
    with load(folder / f"{MFN}.onnx") as model:
        assert model.task.name == "face_recognition"
        assert [o.name for o in model.output_specs] == ["embedding"]
        outputs = model.infer(batch)
        embedded = model.wrap().embed(probe_images(2, (112, 112)))
    assert list(outputs) == ["embedding"] and outputs["embedding"].shape == (2, 512)
    np.testing.assert_allclose(embedded, outputs["embedding"] / np.linalg.norm(outputs["embedding"], axis=1,
                                                                               keepdims=True), atol=1e-5)


def test_a_card_round_trips_and_writes_the_first_output_for_version_1_readers(converted_mobilefacenet):
    _, _, out, _ = converted_mobilefacenet
    card = read_card(out / MFN / "FP16")
    document = card.as_json()
    assert document["card_version"] == CARD_VERSION and document["task"] == "face_recognition"
    assert document["outputs"] == [{"name": "embedding", "shape": [-1, 512], "dtype": "float32", "l2_normalized": False}]
    assert document["output"] == {"name": "embedding", "shape": [-1, 512], "l2_normalized": False}
    assert ModelCard.from_json(json.loads(json.dumps(document)), "again") == card
    # every field the earlier release wrote is still written
    assert set(json.loads(RELEASE_0_1_0.read_text())) <= set(document)


def test_unknown_fields_are_kept(converted_mobilefacenet):
    _, _, out, _ = converted_mobilefacenet
    document = read_card(out / MFN / "FP32").as_json()
    card = ModelCard.from_json({**document, "deployed_by": "ops"}, "card")
    assert card.as_json()["deployed_by"] == "ops"


@pytest.mark.parametrize("change, message", [
    (lambda d: {**d, "card_version": CARD_VERSION + 1}, "newer facezoo"),
    (lambda d: {k: v for k, v in d.items() if k != "input"}, "input: required field is missing"),
    (lambda d: {**d, "outputs": [{"shape": [-1, 512]}]}, "name: required field is missing"),
    (lambda d: {**d, "precision": 16}, "precision must be a non-empty string"),
    (lambda d: {**d, "card_version": "two"}, "card_version: expected a positive integer"),
    (lambda d: [d], "expected a JSON object"),
])
def test_a_card_facezoo_cannot_read_is_refused_with_how_to_reconvert(converted_mobilefacenet, change, message):
    _, _, out, _ = converted_mobilefacenet
    document = read_card(out / MFN / "FP32").as_json()
    with pytest.raises(CardError) as error:
        ModelCard.from_json(change(document), "converted/m/FP32/model_card.json")
    text = str(error.value)
    assert message in text and "converted/m/FP32/model_card.json" in text
    assert "facezoo convert" in text


def test_the_cli_refuses_a_broken_card_naming_the_file(converted_mobilefacenet, tmp_path):
    folder = _folder_with_card(converted_mobilefacenet, tmp_path, {"model": MFN, "precision": "FP32"})
    np.save(tmp_path / "in.npy", np.zeros((1, 3, 112, 112), np.float32))
    done = subprocess.run([sys.executable, "-m", "facezoo.cli.main", "infer", str(folder / f"{MFN}.onnx"),
                           "--input", str(tmp_path / "in.npy"), "-o", str(tmp_path / "out.npy")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert str(folder / CARD_NAME) in done.stderr and "reconvert" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "out.npy").exists()
    not_json = _folder_with_card(converted_mobilefacenet, tmp_path / "other", {})
    (not_json / CARD_NAME).write_text("{ not json", encoding="utf-8")
    with pytest.raises(CardError, match="not readable JSON"):
        read_card(not_json)
