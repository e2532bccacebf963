"""`facezoo list` and `facezoo info`, and how --zoo / FACEZOO_ZOO pick the registry."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import yaml
from typer.testing import CliRunner

from facezoo.cli.main import app
from facezoo.registry import PACKAGED_ZOO

runner = CliRunner()


def _one_model_zoo(tmp_path, name="lightcnn"):
    data = yaml.safe_load(PACKAGED_ZOO.read_text(encoding="utf-8"))
    data["models"] = [m for m in data["models"] if m["name"] == name]
    path = tmp_path / "one.yml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_list_shows_every_model():
    # A real process, so that the table is as wide as COLUMNS says and no name is folded.
    env = {**os.environ, "COLUMNS": "250"}
    proc = subprocess.run([sys.executable, "-m", "facezoo.cli.main", "list"], capture_output=True, text=True,
                          env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    for name in ("arcface", "sphereface", "lightcnn", "mindface-arcface-r100", "face-recognition-resnet34-arcface"):
        assert name in proc.stdout


def test_info_json_is_the_whole_entry():
    result = runner.invoke(app, ["info", "LightCNN", "--json"])
    assert result.exit_code == 0, result.output
    entry = json.loads(result.stdout)
    assert entry["name"] == "lightcnn" and entry["input"]["channel_order"] == "GRAY"
    assert entry["files"][0]["sha256"] == "ee35a8d90d29dfd8181f8a268491b6bf0d72953384306c738c3e999dd2034ac2"
    assert entry["output"] == {"dim": 256, "name": "embedding", "index": 1, "l2_normalized": False}


def test_info_unknown_model_is_one_line_and_exit_1():
    result = runner.invoke(app, ["info", "nosuch"])
    assert result.exit_code == 1
    assert "no model named 'nosuch'" in result.output and "Traceback" not in result.output


def test_zoo_option_and_environment(tmp_path):
    path = _one_model_zoo(tmp_path)
    by_option = runner.invoke(app, ["list", "--zoo", str(path)])
    assert by_option.exit_code == 0 and "lightcnn" in by_option.output and "sphereface" not in by_option.output
    by_env = runner.invoke(app, ["info", "arcface"], env={"FACEZOO_ZOO": str(path)})
    assert by_env.exit_code == 1 and str(path) in by_env.output.replace("\n", "")


def test_malformed_registry_via_option(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("version: 1\nmodels:\n  - name: x\n    colour: red\n", encoding="utf-8")
    result = runner.invoke(app, ["list", "--zoo", str(bad)])
    assert result.exit_code == 1 and "model 'x'" in result.output and "colour: unknown key" in result.output
