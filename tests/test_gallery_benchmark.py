"""The gallery benchmark's code path at a small size (its figures are measured in benchmarks/, not here)."""

from __future__ import annotations

import json
from types import SimpleNamespace

from facezoo.benchmark.suite.gallery import run_gallery_benchmark


def test_both_stores_are_measured_against_exact_search(tmp_path):
    options = SimpleNamespace(gallery_size=6000, gallery_dim=512, gallery_batch=8, gallery_queries=40,
                              gallery_milvus_size=3000, gallery_milvus_queries=24, workdir=str(tmp_path / "work"),
                              results_dir=str(tmp_path / "results"), machine_name="smoke")
    paths = run_gallery_benchmark(options)
    document = json.loads(paths["json"].read_text())
    folder, milvus = document["stores"]
    assert (folder["store"], folder["faces"], milvus["store"], milvus["faces"]) == ("folder", 6000, "milvus-lite", 3000)
    # the folder store re-ranks its candidates exactly: at this size it finds exact search's top-1
    assert folder["recall_at_1"] == 1.0 and folder["settings"]["rerank"] >= 1
    assert folder["latency_ms"]["batch1"]["n"] == 40 and folder["latency_ms"]["batch8"]["n"] == 5
    assert folder["snapshot_s"] is not None and folder["index_bytes"] > folder["raw_fp16_bytes"]
    assert milvus["settings"]["engine"] == "Milvus Lite" and milvus["settings"]["index"] == "HNSW"
    assert [p["ef"] for p in milvus["sweep"]] == [64, 256, 1024]
    assert milvus["latency_ms"]["batch1"]["n"] == 24 and milvus["sweep"][0]["n"] == 24
    assert all(0.0 <= p["recall_at_1"] <= 1.0 for p in milvus["sweep"]) and milvus["sweep"][-1]["recall_at_1"] >= 0.9
    markdown = paths["markdown"].read_text()
    assert "| milvus-lite | 3,000 |" in markdown and "| 1024 |" in markdown
