"""Archives with `unpack: zip`: extracted after verification; unsafe members refused."""

from __future__ import annotations

import io
import stat
import zipfile

import pytest
from conftest import FAST, leftovers

from facezoo.downloader import download_models, extract_zip
from facezoo.errors import DownloadError

MEMBERS = ["m/model-symbol.json", "m/model-0000.params"]


def make_zip(entries: dict[str, bytes], symlinks: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.create_system = 3
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return buffer.getvalue()


def add_archive(site, data: bytes, members=MEMBERS):
    site.add("mx", "model.zip", data, framework="mxnet", unpack="zip", members=list(members))
    return site.specs("mx")


def test_zip_is_unpacked_into_the_model_folder(site, out_dir, cache_dir, tmp_path):
    specs = add_archive(site, make_zip({MEMBERS[0]: b"{}", MEMBERS[1]: b"params", "m/readme.txt": b"hi"}))
    [result] = download_models(specs, output_dir=out_dir, cache_dir=cache_dir, **FAST).files
    assert result.status == "downloaded"
    assert result.unpacked == tuple(out_dir / "mx" / m for m in MEMBERS)
    assert (out_dir / "mx" / "m" / "model-0000.params").read_bytes() == b"params"
    assert (out_dir / "mx" / "model.zip").exists()
    assert leftovers(out_dir) == []
    # From the cache, the archive is unpacked again (over the old tree).
    [again] = download_models(specs, output_dir=out_dir, cache_dir=cache_dir, **FAST).files
    assert again.status == "cached" and (out_dir / "mx" / "m" / "readme.txt").read_bytes() == b"hi"


def test_missing_member_is_an_error(site, out_dir, cache_dir):
    specs = add_archive(site, make_zip({MEMBERS[0]: b"{}"}))
    [result] = download_models(specs, output_dir=out_dir, cache_dir=cache_dir, **FAST).failed
    assert "model.zip" in result.error and "'m/model-0000.params' is missing" in result.error
    assert leftovers(out_dir) == []


@pytest.mark.parametrize(
    "member, reason",
    [("../evil.txt", "'..'"), ("m/../../evil.txt", "'..'"), ("/tmp/evil.txt", "absolute path"),
     ("C:/evil.txt", "absolute path")],
)
def test_unsafe_member_paths_are_refused(site, out_dir, cache_dir, member, reason):
    specs = add_archive(site, make_zip({MEMBERS[0]: b"{}", MEMBERS[1]: b"p", member: b"gotcha"}))
    [result] = download_models(specs, output_dir=out_dir, cache_dir=cache_dir, **FAST).failed
    assert f"model.zip: refusing archive member {member!r}" in result.error and reason in result.error
    assert not (out_dir / "evil.txt").exists() and not (out_dir.parent / "evil.txt").exists()
    assert not (out_dir / "mx" / "m").exists()  # nothing extracted at all
    assert leftovers(out_dir) == []


def test_symlink_escaping_the_folder_is_refused(tmp_path):
    archive = tmp_path / "links.zip"
    archive.write_bytes(make_zip({"m/a.txt": b"a"}, symlinks={"m/out": "../../outside"}))
    with pytest.raises(DownloadError, match=r"links.zip: refusing archive member 'm/out': symlink '../../outside' escapes"):
        extract_zip(archive, tmp_path / "dest")
    archive.write_bytes(make_zip({"m/a.txt": b"a"}, symlinks={"m/abs": "/etc/passwd"}))
    with pytest.raises(DownloadError, match="symlink to absolute path"):
        extract_zip(archive, tmp_path / "dest")


def test_symlink_inside_the_folder_is_kept(tmp_path):
    archive = tmp_path / "links.zip"
    archive.write_bytes(make_zip({"m/a.txt": b"a"}, symlinks={"m/alias.txt": "a.txt"}))
    dest = tmp_path / "dest"
    dest.mkdir()
    extract_zip(archive, dest, ["m/alias.txt"])
    assert (dest / "m" / "alias.txt").is_symlink() and (dest / "m" / "alias.txt").read_bytes() == b"a"


def test_not_a_zip(tmp_path):
    archive = tmp_path / "broken.zip"
    archive.write_bytes(b"definitely not a zip")
    with pytest.raises(DownloadError, match="broken.zip: not a valid zip archive"):
        extract_zip(archive, tmp_path)
