"""docs/adding-a-model.md, case (b): a new MindSpore architecture is one registry entry plus one
network file with its spec. Here the "network file" is this test module: it registers a tiny
architecture, and the architecture goes through stand-in → loopback download → convert → check
without a line of facezoo changed."""

from __future__ import annotations

import numpy as np
import yaml
from mindspore import nn

from facezoo.accuracy.agreement import check_models
from facezoo.conversion import ConversionRequest, convert_model
from facezoo.downloader import download_models
from facezoo.registry import load_zoo
from facezoo.sources.mindspore.architectures import StandinPolicy, register_architecture
from facezoo.sources.mindspore.networks import architecture
from facezoo.standins import build_standins
from facezoo.standins.server import StandinServer


class TinyFaceNet(nn.Cell):
    """conv-BN-PReLU ×2, global depthwise head, dense, BN1d: a MobileFaceNet in miniature."""

    def __init__(self):
        super().__init__()
        self.stem = nn.SequentialCell([
            nn.Conv2d(3, 16, 3, stride=2, pad_mode="pad", padding=1, has_bias=False),
            nn.BatchNorm2d(16), nn.PReLU(16),
            nn.Conv2d(16, 32, 3, stride=2, pad_mode="pad", padding=1, has_bias=False),
            nn.BatchNorm2d(32), nn.PReLU(32),
        ])
        self.head = nn.Conv2d(32, 32, 8, group=32, pad_mode="valid", has_bias=False)  # 8x8 → 1x1, depthwise
        self.flatten = nn.Flatten()
        self.fc = nn.Dense(32, 24, has_bias=False)
        self.features = nn.BatchNorm1d(24)

    def construct(self, x):
        return self.features(self.fc(self.flatten(self.head(self.stem(x)))))


@register_architecture("tiny-facenet", training_heads=("arc.weight",), standin=StandinPolicy(layout="bare"),
                       source="tests/test_adding_a_model.py")
def tiny_facenet() -> TinyFaceNet:
    return TinyFaceNet()


ENTRY = {
    "name": "my-tiny-facenet",
    "description": "a team's own MindSpore face embedder",
    "task_type": "face_recognition",
    "framework": "mindspore",
    "architecture": "tiny-facenet",
    "license": "proprietary",
    "files": [{"name": "tiny.ckpt", "sha256": "0" * 64, "sources": ["https://example.invalid/tiny.ckpt"]}],
    "input": {"shape": [1, 3, 32, 32], "channel_order": "RGB", "mean": [127.5], "std": [127.5]},
    "output": {"dim": 24},
    "conversion": {"checkpoint": "tiny.ckpt"},
}


def test_a_new_architecture_is_one_entry_and_one_network_file(tmp_path):
    registry = tmp_path / "my_zoo.yml"
    registry.write_text(yaml.safe_dump({"version": 1, "models": [ENTRY]}, sort_keys=False), encoding="utf-8")
    spec = load_zoo(registry).get("my-tiny-facenet")
    assert architecture("tiny-facenet").build is tiny_facenet
    with StandinServer(tmp_path / "served") as server:
        standins = build_standins(load_zoo(registry), tmp_path / "served", ["my-tiny-facenet"], base_url=server.url)
        summary = download_models(standins.zoo().models, output_dir=tmp_path / "models", cache_dir=tmp_path / "cache",
                                  progress="none", timeout=30.0)
    assert summary.ok
    spec = standins.zoo().get("my-tiny-facenet")
    result = convert_model(ConversionRequest(spec, tmp_path / "models", tmp_path / "converted",
                                             ["onnx", "openvino", "mindir"], ["FP32", "FP16"]))
    assert result.passed, result.error
    assert result.published == ["FP32", "FP16"]
    (report,) = check_models([spec], tmp_path / "models", tmp_path / "converted")
    assert report.passed, report.error or [r.reason for r in report.failed_results]
    assert len(report.results) == 8  # 4 format/backend pairs × 2 precisions
    embeddings = np.array([r.metric("min_cosine") for r in report.results])
    assert (embeddings >= 0.999).all()
