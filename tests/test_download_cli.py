"""`python downloader.py ...` and `facezoo download ...` as a user runs them."""

from __future__ import annotations

import json

from conftest import run_downloader, sha256
from typer.testing import CliRunner

from facezoo.cli.main import app
from facezoo.registry import load_zoo


def test_omz_spellings_download_and_summary(site, tmp_path):
    data = site.add("alpha")
    site.add("beta")
    out, cache = tmp_path / "out", tmp_path / "cache"
    proc = run_downloader(
        ["--name", "ALPHA", "-o", str(out), "--cache_dir", str(cache), "--num_attempts", "2", "--zoo",
         str(site.zoo_path), "--precisions", "FP16", "-j", "2"],
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert (out / "alpha" / "weights.ckpt").read_bytes() == data
    assert not (out / "beta").exists()
    assert "alpha" in proc.stdout and "downloaded" in proc.stdout  # the summary table
    assert (cache / "sha256" / sha256(data)[:2] / sha256(data)).exists()


def test_print_all(site, tmp_path):
    site.add("alpha")
    site.add("beta")
    proc = run_downloader(["--print_all", "--zoo", str(site.zoo_path)], cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.split() == ["alpha", "beta"]


def test_dry_run_with_list_file(site, tmp_path):
    data = site.add("alpha")
    site.add("beta")
    site.add("gamma")
    listing = tmp_path / "models.lst"
    listing.write_text("# what the demo needs\nalpha   # the first\n\ng*\n", encoding="utf-8")
    proc = run_downloader(["--list", str(listing), "--dry_run", "--zoo", str(site.zoo_path), "-o", "out"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert [line.split()[0] for line in lines] == ["alpha/weights.ckpt", "gamma/weights.ckpt"]
    assert f"size: {len(data)}" in lines[0] and f"sha256: {sha256(data)}" in lines[0]
    assert f"source: {site.server.url_for('alpha/weights.ckpt')}" in lines[0]
    assert not (tmp_path / "out").exists() and site.server.requests == []


def test_unknown_name_is_one_clear_line(site, tmp_path):
    site.add("alpha")
    proc = run_downloader(["--name", "nosuch", "--zoo", str(site.zoo_path)], cwd=tmp_path)
    assert proc.returncode == 1
    assert "no model matches 'nosuch'" in proc.stderr and "known models: alpha" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_nothing_selected_is_an_error(site, tmp_path):
    site.add("alpha")
    proc = run_downloader(["--zoo", str(site.zoo_path)], cwd=tmp_path)
    assert proc.returncode == 1 and "--all" in proc.stderr


def test_real_registry_without_network_fails_cleanly(tmp_path):
    """The packaged registry, no network here: one line naming model, file and URL; exit 1."""
    arcface = load_zoo().get("arcface").files[0]
    proc = run_downloader(
        ["--name", "arcface", "-o", str(tmp_path / "out"), "--cache_dir", str(tmp_path / "cache"),
         "--num_attempts", "1", "--timeout", "5"],
        cwd=tmp_path,
        timeout=90,
    )
    assert proc.returncode == 1
    expected = f"arcface: {arcface.name}: {arcface.sources[0]}: "
    assert expected in proc.stderr, proc.stderr
    assert "FAILED:" in proc.stderr and f"arcface/{arcface.name}" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not (tmp_path / "out" / "arcface" / arcface.name).exists()


def test_json_progress_and_failed_list(site, tmp_path):
    data = site.add("alpha")
    site.add("broken", sources=[site.server.url_for("nowhere/x.ckpt")], serve=False)
    proc = run_downloader(
        ["--all", "--progress_format", "json", "--zoo", str(site.zoo_path), "-o", "out", "--cache_dir", "cache"],
        cwd=tmp_path,
    )
    assert proc.returncode == 1
    events = [json.loads(line) for line in proc.stdout.splitlines()]  # every line is JSON
    alpha = [e for e in events if e.get("model") == "alpha"]
    assert alpha[0]["event"] == "start" and alpha[-1] == {
        "event": "done", "model": "alpha", "file": "weights.ckpt", "bytes": len(data), "total": len(data),
        "status": "downloaded", "source": site.server.url_for("alpha/weights.ckpt"),
    }
    errors = [e for e in events if e["event"] == "error" and e["final"]]
    assert [(e["model"], e["file"]) for e in errors] == [("broken", "weights.ckpt")]
    summary = events[-1]
    assert summary["event"] == "summary" and not summary["ok"]
    assert [f["status"] for f in summary["files"]] == ["downloaded", "failed"]
    assert "FAILED:" in proc.stderr and "broken/weights.ckpt" in proc.stderr


def test_import_unpinned_file_prints_its_sha256(site, tmp_path):
    site.add("manual", "manual.ckpt", pin=False, serve=False)
    by_hand = tmp_path / "from-the-web.ckpt"
    by_hand.write_bytes(b"hand-fetched weights")
    proc = run_downloader(
        ["manual", "--import", str(by_hand), "--zoo", str(site.zoo_path), "-o", "out", "--cache_dir", "cache"],
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    digest = sha256(b"hand-fetched weights")
    assert f"sha256: {digest}" in proc.stdout and "does not pin" in proc.stdout
    assert (tmp_path / "out" / "manual" / "manual.ckpt").read_bytes() == b"hand-fetched weights"


def test_facezoo_download_in_process_dash_spellings_and_mirror_env(site, tmp_path, monkeypatch):
    data = site.add("alpha")
    mirror = tmp_path / "mirror"
    (mirror / "alpha").mkdir(parents=True)
    (mirror / "alpha" / "weights.ckpt").write_bytes(data)
    monkeypatch.setenv("FACEZOO_MIRROR", str(mirror))
    result = CliRunner().invoke(
        app,
        ["download", "alpha", "--output-dir", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"),
         "--zoo", str(site.zoo_path), "--offline", "--progress-format", "json"],
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "alpha" / "weights.ckpt").read_bytes() == data
    assert site.server.requests == []


def test_import_into_several_models_is_refused(site, tmp_path):
    site.add("alpha")
    site.add("beta")
    result = CliRunner().invoke(
        app, ["download", "--all", "--import", str(tmp_path / "x.ckpt"), "--zoo", str(site.zoo_path)]
    )
    assert result.exit_code == 1 and "--import needs exactly one model" in result.output
