"""The README's flows, run as a user would: real commands, real files, loopback only."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODEL = "mindface-arcface-mobilefacenet"


def _run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, cwd=REPO, env={**os.environ, **(env or {})}
    )


def test_standins_then_downloader_then_converter(tmp_path):
    standins = _run("-m", "facezoo.cli.main", "standins", MODEL, "-o", str(tmp_path / "standins"))
    assert standins.returncode == 0, standins.stderr
    zoo = tmp_path / "standins" / "model_zoo.yml"
    assert zoo.is_file()
    env = {"FACEZOO_ZOO": str(zoo)}
    download = _run("downloader.py", "--name", MODEL, "-o", str(tmp_path / "models"), "--cache_dir", str(tmp_path / "c"), env=env)
    assert download.returncode == 0, download.stderr
    checkpoint = tmp_path / "models" / MODEL / "mindface_arcface_mobilefacenet.ckpt"
    assert checkpoint.is_file()
    convert = _run(
        "converter.py", "--name", MODEL, "-d", str(tmp_path / "models"), "-o", str(tmp_path / "converted"),
        "--precisions", "FP32", "--formats", "onnx,openvino", env=env,
    )
    assert convert.returncode == 0, convert.stderr
    folder = tmp_path / "converted" / MODEL / "FP32"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [f"{MODEL}.onnx", f"{MODEL}.xml", f"{MODEL}.bin", "model_card.json"]
    )
    assert "converted artifacts against the original network" in convert.stdout


def test_demo_runs_end_to_end_on_one_small_model(tmp_path):
    demo = _run(
        "-m", "facezoo.cli.main", "demo", MODEL, "--workdir", str(tmp_path), "--formats", "onnx,openvino",
        "--precisions", "FP32,FP16",
    )
    assert demo.returncode == 0, demo.stderr
    assert "STAND-IN" in demo.stdout
    assert "facezoo demo summary" in demo.stdout
    assert (tmp_path / "converted" / MODEL / "FP16" / f"{MODEL}.xml").is_file()
    # the stand-in was really fetched over loopback HTTP into the download folder
    assert (tmp_path / "models" / MODEL / "mindface_arcface_mobilefacenet.ckpt").is_file()
