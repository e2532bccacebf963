"""The content-addressed cache: hits, corruption, processes sharing it, and --import."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import FAST, REPO, leftovers, sha256

from facezoo.downloader import download_models, import_file
from facezoo.errors import DownloadError

PATH = "/alpha/weights.ckpt"


def test_cache_layout_and_hit_without_network(site, out_dir, cache_dir, tmp_path):
    data = site.add("alpha")
    download_models(site.specs("alpha"), output_dir=out_dir, cache_dir=cache_dir, **FAST)
    digest = sha256(data)
    entry = cache_dir / "sha256" / digest[:2] / digest
    assert entry.read_bytes() == data
    site.server.clear_log()
    [result] = download_models(site.specs("alpha"), output_dir=tmp_path / "again", cache_dir=cache_dir, **FAST).files
    assert result.status == "cached" and result.source == str(entry)
    assert result.path.read_bytes() == data
    assert site.server.requests == []  # the server was not contacted
    assert leftovers(cache_dir) == [] and leftovers(tmp_path / "again") == []


def test_corrupted_cache_entry_is_discarded_and_downloaded_again(site, out_dir, cache_dir, tmp_path):
    data = site.add("alpha")
    download_models(site.specs("alpha"), output_dir=out_dir, cache_dir=cache_dir, **FAST)
    digest = sha256(data)
    entry = cache_dir / "sha256" / digest[:2] / digest
    entry.unlink()  # the output file is a hardlink of it: do not damage that one
    entry.write_bytes(b"X" + data[1:])
    [result] = download_models(site.specs("alpha"), output_dir=tmp_path / "again", cache_dir=cache_dir, **FAST).files
    assert result.status == "downloaded"
    assert result.path.read_bytes() == data
    assert entry.read_bytes() == data  # repaired
    assert len(site.server.requests_for(PATH)) == 2


def test_cache_from_environment(site, out_dir, tmp_path, monkeypatch):
    data = site.add("alpha")
    monkeypatch.setenv("FACEZOO_CACHE", str(tmp_path / "env-cache"))
    summary = download_models(site.specs("alpha"), output_dir=out_dir, **FAST)
    assert summary.cache_dir == tmp_path / "env-cache"
    assert (tmp_path / "env-cache" / "sha256" / sha256(data)[:2] / sha256(data)).exists()


def test_two_processes_share_one_cache(site, tmp_path, cache_dir):
    """Two real downloader processes at once, a slow server: one downloads, one waits for it."""
    data = site.add("alpha", size=1_000_000)
    site.server.chunk_delay = 0.05  # ~16 chunks of 64 KiB: about a second per download
    command = [sys.executable, str(REPO / "downloader.py"), "--name", "alpha", "--zoo", str(site.zoo_path),
               "--cache_dir", str(cache_dir), "--progress_format", "json"]
    procs = [
        subprocess.Popen([*command, "-o", str(tmp_path / f"out{i}")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
        for i in range(2)
    ]
    outputs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    for i in range(2):
        assert (tmp_path / f"out{i}" / "alpha" / "weights.ckpt").read_bytes() == data
    statuses = sorted('"status": "cached"' in out for out, _ in outputs)
    assert statuses == [False, True]  # exactly one fetched it; the other found it in the cache
    assert len([r for r in site.server.requests_for(PATH) if r.method == "GET"]) == 1
    digest = sha256(data)
    assert (cache_dir / "sha256" / digest[:2] / digest).read_bytes() == data
    assert leftovers(cache_dir) == []


def test_import_good_file(site, out_dir, cache_dir, tmp_path):
    data = site.add("alpha", serve=False, sources=[site.server.url_for("nowhere/weights.ckpt")])
    by_hand = tmp_path / "downloaded-by-hand.ckpt"
    by_hand.write_bytes(data)
    [spec] = site.specs("alpha")
    result = import_file(spec, None, by_hand, out_dir, cache_dir)
    assert result.status == "imported" and result.sha256 == sha256(data)
    assert (out_dir / "alpha" / "weights.ckpt").read_bytes() == data
    # ... and into the cache: a later download needs no network.
    [again] = download_models([spec], output_dir=tmp_path / "again", cache_dir=cache_dir, **FAST).files
    assert again.status == "cached" and site.server.requests == []


def test_import_bad_file_is_refused(site, out_dir, cache_dir, tmp_path):
    data = site.add("alpha", serve=False, sources=[site.server.url_for("nowhere/weights.ckpt")])
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(data[:-1] + b"!")
    [spec] = site.specs("alpha")
    with pytest.raises(DownloadError) as info:
        import_file(spec, None, bad, out_dir, cache_dir)
    message = str(info.value)
    assert message.startswith(f"alpha: weights.ckpt: {bad}: sha256 mismatch")
    assert sha256(data) in message and sha256(bad.read_bytes()) in message
    assert not (out_dir / "alpha" / "weights.ckpt").exists() and leftovers(out_dir) == []


def test_import_without_pinned_sha_is_accepted_and_remembered(site, out_dir, cache_dir, tmp_path):
    site.add("manual", "manual.ckpt", pin=False, serve=False)
    by_hand = tmp_path / "manual-from-the-web.ckpt"
    by_hand.write_bytes(b"weights the user fetched")
    [spec] = site.specs("manual")
    result = import_file(spec, None, by_hand, out_dir, cache_dir)
    assert result.status == "imported" and result.sha256 == sha256(b"weights the user fetched")
    # The cache remembers it: another output folder gets it without an import.
    [again] = download_models([spec], output_dir=tmp_path / "again", cache_dir=cache_dir, **FAST).files
    assert again.status == "cached" and again.path.read_bytes() == b"weights the user fetched"


def test_import_missing_source_file(site, out_dir, cache_dir, tmp_path):
    site.add("alpha")
    [spec] = site.specs("alpha")
    with pytest.raises(DownloadError, match="cannot import .*no such file"):
        import_file(spec, None, tmp_path / "absent.ckpt", out_dir, cache_dir)
