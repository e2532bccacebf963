"""Injected server faults: resumption, restarts, retries, next sources, corrupt bytes, stalls."""

from __future__ import annotations

import time

from conftest import FAST, leftovers, sha256

from facezoo.downloader import download_models
from facezoo.standins.server import Fault

PATH = "/alpha/weights.ckpt"


def _download(site, out_dir, cache_dir, **options):
    return download_models(site.specs("alpha"), output_dir=out_dir, cache_dir=cache_dir, **{**FAST, **options})


def test_dropped_connection_resumes_with_range(site, out_dir, cache_dir):
    data = site.add("alpha", size=400_000)
    site.server.inject(PATH, Fault.DROP_MID_BODY, times=1)
    [result] = _download(site, out_dir, cache_dir).files
    assert result.status == "downloaded"
    first, second = site.server.requests_for(PATH)
    assert (first.range, first.fault) == (None, Fault.DROP_MID_BODY)
    assert second.range == f"bytes={len(data) // 2}-" and second.status == 206
    assert sha256(result.path.read_bytes()) == sha256(data)
    assert leftovers(out_dir) == []


def test_range_ignored_means_restart_from_zero(site, out_dir, cache_dir):
    data = site.add("alpha", size=400_000)
    site.server.inject(PATH, Fault.DROP_MID_BODY, times=1)
    site.server.inject(PATH, Fault.IGNORE_RANGE, times=1)
    [result] = _download(site, out_dir, cache_dir).files
    assert result.status == "downloaded"
    first, second = site.server.requests_for(PATH)
    assert second.range is not None and second.status == 200  # full body: partial data discarded
    assert result.path.read_bytes() == data


def test_server_errors_are_retried(site, out_dir, cache_dir):
    data = site.add("alpha")
    site.server.inject(PATH, Fault.SERVER_ERROR, times=2, status=503)
    [result] = _download(site, out_dir, cache_dir, num_attempts=3).files
    assert result.status == "downloaded" and result.path.read_bytes() == data
    assert [r.status for r in site.server.requests_for(PATH)] == [503, 503, 200]


def test_server_errors_exhaust_attempts(site, out_dir, cache_dir):
    site.add("alpha")
    site.server.inject(PATH, Fault.SERVER_ERROR, times=None)
    [result] = _download(site, out_dir, cache_dir, num_attempts=2).failed
    assert "HTTP 500" in result.error and "gave up after 2 attempts" in result.error
    assert len(site.server.requests_for(PATH)) == 2


def test_not_found_goes_to_next_source_without_retry(site, out_dir, cache_dir):
    data = site.add("alpha", sources=[])  # placeholder, sources set below
    good = site.publish("elsewhere", "weights.ckpt", data)
    missing = site.server.url_for("gone/weights.ckpt")
    site.entries[0]["files"][0]["sources"] = [missing, good]
    from conftest import write_zoo

    write_zoo(site.zoo_path, site.entries)
    [result] = _download(site, out_dir, cache_dir, num_attempts=3).files
    assert result.status == "downloaded" and result.source == good
    assert [r.status for r in site.server.requests_for("/gone/weights.ckpt")] == [404]  # no retry of a 404
    assert result.path.read_bytes() == data


def test_every_source_failing_names_each(site, out_dir, cache_dir):
    site.add("alpha")
    first = site.server.url_for("gone/a.ckpt")
    second = site.server.url_for("gone/b.ckpt")
    site.entries[0]["files"][0]["sources"] = [first, second]
    from conftest import write_zoo

    write_zoo(site.zoo_path, site.entries)
    [result] = _download(site, out_dir, cache_dir).failed
    assert result.error.startswith("alpha: weights.ckpt: every source failed:")
    assert f"{first}: HTTP 404" in result.error and f"{second}: HTTP 404" in result.error


def test_wrong_bytes_fail_verification_and_leave_nothing(site, out_dir, cache_dir):
    data = site.add("alpha")
    site.server.inject(PATH, Fault.CORRUPT, times=None)
    [result] = _download(site, out_dir, cache_dir).failed
    assert "sha256 mismatch" in result.error
    assert f"expected sha256 {sha256(data)}" in result.error
    corrupt = bytearray(data)
    for start in range(0, len(data), 64 * 1024):  # what the server's CORRUPT fault sends
        middle = start + min(64 * 1024, len(data) - start) // 2
        corrupt[middle] ^= 0xFF
    assert f"got sha256 {sha256(bytes(corrupt))}" in result.error
    assert result.error.startswith(f"alpha: weights.ckpt: {site.server.url_for('alpha/weights.ckpt')}:")
    assert not (out_dir / "alpha" / "weights.ckpt").exists()
    assert leftovers(out_dir) == []
    assert len(site.server.requests_for(PATH)) == 1  # a complete wrong file is not fetched again
    assert not any((cache_dir / "sha256").rglob("*" + sha256(data)))


def test_stall_times_out_and_is_retried(site, out_dir, cache_dir):
    data = site.add("alpha", size=300_000)
    site.server.inject(PATH, Fault.STALL, times=1)
    started = time.monotonic()
    [result] = _download(site, out_dir, cache_dir, timeout=0.3).files
    assert time.monotonic() - started < 2.0  # did not wait for the stall to end
    assert result.status == "downloaded" and result.path.read_bytes() == data
    first, second = site.server.requests_for(PATH)
    assert first.fault is Fault.STALL and second.range == f"bytes={len(data) // 2}-"


def test_connection_refused_names_model_file_and_url(site, out_dir, cache_dir):
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/alpha/weights.ckpt"
    site.add("alpha", sources=[url])
    [result] = _download(site, out_dir, cache_dir, num_attempts=2).failed
    assert result.error.startswith(f"alpha: weights.ckpt: {url}: connection failed (")
