"""The loopback stand-in server and `build_standins`."""

from __future__ import annotations

import http.client
import time

import httpx
import pytest
import yaml
from conftest import FAST, model_entry, sha256, write_zoo

import facezoo.standins as standins
from facezoo.downloader import download_models
from facezoo.errors import FacezooError
from facezoo.registry import load_zoo
from facezoo.standins import WRITERS, build_standins
from facezoo.standins.server import Fault, StandinServer


@pytest.fixture
def served(tmp_path):
    root = tmp_path / "root"
    (root / "m").mkdir(parents=True)
    data = bytes(range(256)) * 40
    (root / "m" / "f.bin").write_bytes(data)
    (tmp_path / "secret.txt").write_text("outside the root")
    with StandinServer(root, stall_seconds=5.0) as server:
        yield server, data


def test_full_range_and_head(served):
    server, data = served
    with httpx.Client(base_url=server.url, trust_env=False) as client:
        full = client.get("/m/f.bin")
        assert full.status_code == 200 and full.content == data
        assert full.headers["content-length"] == str(len(data)) and full.headers["accept-ranges"] == "bytes"
        part = client.get("/m/f.bin", headers={"Range": "bytes=100-"})
        assert part.status_code == 206 and part.content == data[100:]
        assert part.headers["content-range"] == f"bytes 100-{len(data) - 1}/{len(data)}"
        middle = client.get("/m/f.bin", headers={"Range": "bytes=10-19"})
        assert middle.content == data[10:20]
        suffix = client.get("/m/f.bin", headers={"Range": "bytes=-5"})
        assert suffix.content == data[-5:]
        beyond = client.get("/m/f.bin", headers={"Range": f"bytes={len(data)}-"})
        assert beyond.status_code == 416 and beyond.headers["content-range"] == f"bytes */{len(data)}"
        head = client.head("/m/f.bin")
        assert head.status_code == 200 and head.headers["content-length"] == str(len(data)) and head.content == b""
        assert client.get("/m/absent.bin").status_code == 404
    assert [(r.method, r.range, r.status) for r in server.requests_for("/m/f.bin")] == [
        ("GET", None, 200), ("GET", "bytes=100-", 206), ("GET", "bytes=10-19", 206), ("GET", "bytes=-5", 206),
        ("GET", f"bytes={len(data)}-", 416), ("HEAD", None, 200),
    ]


def test_no_escape_from_the_root(served):
    server, _ = served
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    connection.request("GET", "/../secret.txt")
    assert connection.getresponse().status == 404
    connection.close()


def test_faults_are_counted_per_path(served):
    server, data = served
    server.inject("/m/f.bin", Fault.NOT_FOUND, times=1, skip=1)
    server.inject("/m/f.bin", Fault.SERVER_ERROR, times=2, status=502)
    server.inject("/m/f.bin", Fault.CORRUPT, times=1)
    with httpx.Client(base_url=server.url, trust_env=False) as client:
        statuses = [client.get("/m/f.bin").status_code for _ in range(4)]
        corrupt = client.get("/m/f.bin").content
        clean = client.get("/m/f.bin").content
    assert statuses == [200, 404, 502, 502]
    assert len(corrupt) == len(data) and corrupt != data and clean == data


def test_drop_and_stall_and_stop(served):
    server, data = served
    server.inject("/m/f.bin", Fault.DROP_MID_BODY)
    with httpx.Client(base_url=server.url, trust_env=False, timeout=0.5) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            client.get("/m/f.bin")
        server.inject("/m/f.bin", Fault.STALL)
        with pytest.raises(httpx.ReadTimeout):
            client.get("/m/f.bin")
    started = time.monotonic()
    server.stop()  # a stalled handler must not hold up the shutdown
    assert time.monotonic() - started < 2.0
    with pytest.raises(RuntimeError):
        server.url  # noqa: B018


# build_standins, with writers written here (the real ones live in facezoo.standins.<framework>)


def _registry(tmp_path):
    files_a = [{"name": "a.ckpt", "sha256": "0" * 64, "sources": ["https://example.invalid/a.ckpt"]}]
    files_b = [{"name": "b.ckpt", "sha256": "1" * 64, "size": 3, "sources": ["https://example.invalid/b.ckpt"]}]
    files_c = [{"name": "c.ckpt"}]
    return write_zoo(tmp_path / "real.yml", [
        model_entry("a", files_a), model_entry("b", files_b), model_entry("c", files_c, how_to_obtain="By hand."),
    ])


class CountingWriter:
    WRITER_VERSION = "1"

    def __init__(self):
        self.calls = []

    def __call__(self, spec, folder, *, seed):
        self.calls.append((spec.name, seed))
        paths = []
        for model_file in spec.files:
            path = folder / model_file.name
            path.write_bytes(f"{spec.name}:{model_file.name}:{seed}".encode())
            paths.append(path)
        return paths


def test_build_standins_writes_files_and_patched_registry(tmp_path, monkeypatch):
    writer = CountingWriter()
    monkeypatch.setitem(WRITERS, "mindspore", writer)
    out = tmp_path / "standins"
    built = build_standins(load_zoo(_registry(tmp_path)), out, ["a", "c"], base_url="http://127.0.0.1:9/x/", seed=3)
    assert built.models == ["a", "c"] and built.built == ["a", "c"] and built.reused == []
    assert writer.calls == [("a", 3), ("c", 3)]
    a_file = out / "a" / "a.ckpt"
    assert a_file.read_bytes() == b"a:a.ckpt:3"
    document = yaml.safe_load(built.zoo_path.read_text())
    entries = {e["name"]: e for e in document["models"]}
    assert entries["a"]["files"][0] == {
        "name": "a.ckpt", "sha256": sha256(b"a:a.ckpt:3"), "sources": ["http://127.0.0.1:9/x/a/a.ckpt"],
        "size": len(b"a:a.ckpt:3"),
    }
    assert entries["b"]["files"][0]["sources"] == ["https://example.invalid/b.ckpt"]  # not selected: untouched
    assert entries["c"]["files"][0]["sources"] == ["http://127.0.0.1:9/x/c/c.ckpt"]
    zoo = built.zoo()
    assert zoo.get("c").files[0].sha256 == sha256(b"c:c.ckpt:3")

    again = build_standins(zoo, out, ["a", "c"], base_url="http://127.0.0.1:10", seed=3)
    assert again.reused == ["a", "c"] and writer.calls == [("a", 3), ("c", 3)]  # cached
    assert again.zoo().get("a").files[0].sources == ["http://127.0.0.1:10/a/a.ckpt"]

    build_standins(zoo, out, ["a"], seed=4)  # another seed: rebuilt
    writer.WRITER_VERSION = "2"
    build_standins(zoo, out, ["a"], seed=4)  # another writer version: rebuilt
    assert writer.calls[2:] == [("a", 4), ("a", 4)]
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == [".standins.lock"]


def test_default_base_url_is_a_file_url_the_downloader_reads(tmp_path, monkeypatch):
    monkeypatch.setitem(WRITERS, "mindspore", CountingWriter())
    built = build_standins(_registry(tmp_path), tmp_path / "standins", "a")
    assert built.base_url == (tmp_path / "standins").resolve().as_uri()
    summary = download_models(built.zoo().select("a"), output_dir=tmp_path / "out", cache_dir=tmp_path / "c",
                              offline=True, **FAST)
    assert summary.ok and (tmp_path / "out" / "a" / "a.ckpt").read_bytes() == b"a:a.ckpt:0"


def test_missing_writer_module_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(WRITERS, "mindspore", "facezoo.standins.no_such_writer:write_standin")
    with pytest.raises(FacezooError, match="no stand-in writer for mindspore models yet: module "
                                           "facezoo.standins.no_such_writer does not exist"):
        build_standins(_registry(tmp_path), tmp_path / "standins", "a")
    monkeypatch.delitem(WRITERS, "mindspore")
    import dataclasses

    from facezoo import sources

    entry = sources.source_for("mindspore")
    monkeypatch.setitem(sources._REGISTERED, "mindspore", dataclasses.replace(entry, standin_writer=None))
    with pytest.raises(FacezooError, match="no stand-in writer for framework 'mindspore'"):
        build_standins(_registry(tmp_path), tmp_path / "standins", "a")


def test_writer_that_forgets_a_file(tmp_path, monkeypatch):
    monkeypatch.setitem(WRITERS, "mindspore", lambda spec, folder, *, seed: [])
    with pytest.raises(FacezooError, match="did not write a/a.ckpt"):
        build_standins(_registry(tmp_path), tmp_path / "standins", "a")
    assert not (tmp_path / "standins" / "a").exists()


def test_writers_come_from_the_registered_sources():
    from facezoo.sources import source_for

    assert source_for("mindspore").standin_writer == "facezoo.sources.mindspore.standin:write_standin"
    assert source_for("mxnet").standin_writer == "facezoo.sources.mxnet.standin:write_standin"
    assert source_for("onnx").standin_writer == "facezoo.sources.onnx.standin:write_standin"
    assert WRITERS == {}  # overrides only
    assert standins.resolve_writer  # the lookup is lazy: importing facezoo.standins imports no framework


def test_lightcnn_standin_end_to_end(tmp_path):
    """build_standins (real MindSpore writer) -> StandinServer -> download_models -> load_checkpoint."""
    import mindspore as ms

    root = tmp_path / "standins"
    root.mkdir()
    with StandinServer(root) as server:
        built = build_standins(load_zoo(), root, ["lightcnn"], base_url=server.url)
        [standin] = built.files
        zoo = built.zoo()
        spec = zoo.get("lightcnn")
        assert spec.files[0].sources == [server.url_for(f"lightcnn/{standin.name}")]
        summary = download_models([spec], output_dir=tmp_path / "models", cache_dir=tmp_path / "cache", **FAST)
        assert summary.ok, summary.failed
        [result] = summary.files
        assert result.sha256 == standin.sha256 == spec.files[0].sha256
        params = ms.load_checkpoint(str(result.path))
        assert params, "the stand-in checkpoint holds parameters"
        assert build_standins(load_zoo(), root, ["lightcnn"], base_url=server.url).reused == ["lightcnn"]
