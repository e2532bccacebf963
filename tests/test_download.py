"""The downloader against a real loopback server: happy paths, mirrors, offline, sizes."""

from __future__ import annotations

import io
import json

from conftest import FAST, leftovers, sha256

from facezoo.downloader import JsonReporter, download_models
from facezoo.downloader.sources import split_mirror_list


def test_happy_path(site, out_dir, cache_dir):
    data = site.add("alpha", "alpha.ckpt")
    summary = download_models(site.specs("alpha"), output_dir=out_dir, cache_dir=cache_dir, **FAST)
    assert summary.ok
    [result] = summary.files
    assert (result.model, result.file, result.status, result.bytes) == ("alpha", "alpha.ckpt", "downloaded", len(data))
    assert result.path == out_dir / "alpha" / "alpha.ckpt"
    assert result.path.read_bytes() == data
    assert result.sha256 == sha256(data)
    assert result.source == site.server.url_for("alpha/alpha.ckpt")
    assert leftovers(out_dir) == []
    assert [r.range for r in site.server.requests_for("/alpha/alpha.ckpt")] == [None]


def test_real_mindspore_checkpoint_round_trip(site, out_dir, cache_dir, tmp_path):
    import mindspore as ms
    import numpy as np

    ckpt = tmp_path / "tiny.ckpt"
    weight = np.arange(12, dtype=np.float32).reshape(3, 4)
    ms.save_checkpoint([{"name": "fc.weight", "data": ms.Tensor(weight)}], str(ckpt))
    site.add("tiny", "tiny.ckpt", ckpt.read_bytes())
    summary = download_models(site.specs("tiny"), output_dir=out_dir, cache_dir=cache_dir, **FAST)
    assert summary.ok
    params = ms.load_checkpoint(str(out_dir / "tiny" / "tiny.ckpt"))
    np.testing.assert_array_equal(params["fc.weight"].asnumpy(), weight)


def test_several_models_with_jobs_share_one_cached_file(site, out_dir, cache_dir):
    data = site.add("alpha", "same.ckpt", seed=7)
    site.add("beta", "same.ckpt", seed=7)  # the same contents under another model
    site.add("gamma", "other.ckpt", seed=8)
    summary = download_models(site.specs("*"), output_dir=out_dir, cache_dir=cache_dir, jobs=3, **FAST)
    assert summary.ok, summary.failed
    assert [r.model for r in summary.files] == ["alpha", "beta", "gamma"]  # registry order
    statuses = sorted(r.status for r in summary.files if r.file == "same.ckpt")
    assert statuses == ["cached", "downloaded"]  # the per-hash lock made the second wait
    assert (out_dir / "beta" / "same.ckpt").read_bytes() == data


def test_json_progress_events(site, out_dir, cache_dir):
    data = site.add("alpha", size=300_000)
    stream = io.StringIO()
    reporter = JsonReporter(stream, interval=0.0)
    download_models(site.specs("alpha"), output_dir=out_dir, cache_dir=cache_dir, **{**FAST, "progress": reporter})
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "done" and "progress" in kinds
    assert all(e["model"] == "alpha" and e["file"] == "weights.ckpt" for e in events)
    assert events[0]["total"] == len(data)
    assert events[-1]["bytes"] == len(data) and events[-1]["status"] == "downloaded"


def test_size_mismatch_is_an_error_with_expected_and_actual(site, out_dir, cache_dir):
    data = site.add("alpha")
    entry = site.entries[0]["files"][0]
    entry["size"] = len(data) + 5  # the registry expects more bytes than the server has
    from conftest import write_zoo

    write_zoo(site.zoo_path, site.entries)
    summary = download_models(site.specs("alpha"), output_dir=out_dir, cache_dir=cache_dir, **FAST)
    [result] = summary.failed
    assert f"expected {len(data) + 5} bytes" in result.error and str(len(data)) in result.error
    assert result.error.startswith("alpha: weights.ckpt: http://127.0.0.1:")
    assert not (out_dir / "alpha" / "weights.ckpt").exists()
    assert leftovers(out_dir) == []


def test_more_bytes_than_pinned_size_stops_early(site, out_dir, cache_dir):
    # Without Content-Length trust: the server announces the true length, the registry a smaller one.
    data = site.add("alpha")
    site.entries[0]["files"][0]["size"] = len(data) - 1000
    from conftest import write_zoo

    write_zoo(site.zoo_path, site.entries)
    [result] = download_models(site.specs("alpha"), output_dir=out_dir, cache_dir=cache_dir, **FAST).failed
    assert "size mismatch" in result.error and f"expected {len(data) - 1000} bytes" in result.error
    assert leftovers(out_dir) == [] and not result.path.exists()


def test_file_without_sources_quotes_how_to_obtain(site, out_dir, cache_dir):
    site.add("manual", "manual.ckpt", pin=False, serve=False, how_to_obtain="Email the lab for manual.ckpt.")
    [result] = download_models(site.specs("manual"), output_dir=out_dir, cache_dir=cache_dir, **FAST).failed
    assert result.error.startswith("manual: manual.ckpt:")
    assert "Email the lab for manual.ckpt." in result.error


def test_local_mirror_directory_is_tried_first(site, out_dir, cache_dir, tmp_path):
    data = site.add("alpha")
    mirror = tmp_path / "mirror"
    (mirror / "alpha").mkdir(parents=True)
    (mirror / "alpha" / "weights.ckpt").write_bytes(data)
    [result] = download_models(
        site.specs("alpha"), output_dir=out_dir, cache_dir=cache_dir, mirrors=[str(mirror)], **FAST
    ).files
    assert result.status == "downloaded" and result.source == str(mirror / "alpha" / "weights.ckpt")
    assert site.server.requests == []
    assert result.path.read_bytes() == data


def test_file_url_mirror_and_bad_mirror_copy_fall_back(site, out_dir, cache_dir, tmp_path):
    data = site.add("alpha")
    site.add("beta")
    mirror = tmp_path / "mirror dir"  # a space: the file:// URL must be decoded
    (mirror / "alpha").mkdir(parents=True)
    (mirror / "alpha" / "weights.ckpt").write_bytes(data)
    (mirror / "beta").mkdir(parents=True)
    (mirror / "beta" / "weights.ckpt").write_bytes(b"not the right bytes")
    summary = download_models(
        site.specs("alpha", "beta"), output_dir=out_dir, cache_dir=cache_dir, mirrors=[mirror.as_uri()], **FAST
    )
    alpha, beta = summary.files
    assert alpha.status == "downloaded" and alpha.source.startswith(str(mirror))
    assert beta.status == "downloaded" and beta.source.startswith("http://")  # mirror copy failed sha256
    assert [r.path for r in site.server.requests] == ["/beta/weights.ckpt"]


def test_http_mirror_then_registry_source(site, out_dir, cache_dir, tmp_path):
    from facezoo.standins.server import StandinServer

    data = site.add("alpha")
    mirror_root = tmp_path / "mirror-root"
    (mirror_root / "alpha").mkdir(parents=True)
    (mirror_root / "alpha" / "weights.ckpt").write_bytes(data)
    with StandinServer(mirror_root) as mirror:
        [result] = download_models(
            site.specs("alpha"), output_dir=out_dir, cache_dir=cache_dir, mirrors=[mirror.url + "/"], **FAST
        ).files
        assert result.source == mirror.url + "/alpha/weights.ckpt"
        assert site.server.requests == []
        (mirror_root / "alpha" / "weights.ckpt").unlink()
        [result] = download_models(
            site.specs("alpha"), output_dir=tmp_path / "o2", cache_dir=tmp_path / "c2", mirrors=[mirror.url], **FAST
        ).files
        assert result.status == "downloaded" and result.source.startswith(site.server.url)
        assert [r.status for r in mirror.requests_for("/alpha/weights.ckpt")] == [200, 404]


def test_offline_miss_is_an_error_and_the_network_is_not_used(site, out_dir, cache_dir):
    site.add("alpha")
    [result] = download_models(site.specs("alpha"), output_dir=out_dir, cache_dir=cache_dir, offline=True, **FAST).files
    assert result.status == "failed"
    assert "--offline forbids the network" in result.error and "not in the cache" in result.error
    assert site.server.url in result.error
    assert site.server.requests == []


def test_offline_uses_cache_and_local_mirror(site, out_dir, cache_dir, tmp_path):
    data = site.add("alpha")
    site.add("beta", data=b"beta-bytes")
    download_models(site.specs("alpha"), output_dir=tmp_path / "first", cache_dir=cache_dir, **FAST)
    mirror = tmp_path / "mirror"
    (mirror / "beta").mkdir(parents=True)
    (mirror / "beta" / "weights.ckpt").write_bytes(b"beta-bytes")
    site.server.clear_log()
    summary = download_models(
        site.specs("alpha", "beta"), output_dir=out_dir, cache_dir=cache_dir, offline=True, mirrors=[str(mirror)], **FAST
    )
    assert [r.status for r in summary.files] == ["cached", "downloaded"]
    assert (out_dir / "alpha" / "weights.ckpt").read_bytes() == data
    assert site.server.requests == []


def test_mirror_list_from_environment_keeps_urls_whole():
    assert split_mirror_list("/srv/a:http://host:8080/m:file:///x/y:https://h/p") == [
        "/srv/a",
        "http://host:8080/m",
        "file:///x/y",
        "https://h/p",
    ]
    assert split_mirror_list("") == []
