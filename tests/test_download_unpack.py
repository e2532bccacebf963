"""Archives (`unpack: zip`, `tar`, `tar.gz`): extracted after verification; unsafe members refused, and
hostile ones (chains of links, files through links, bombs) write nothing outside the model folder."""

from __future__ import annotations

import io
import os
import stat
import zipfile

import pytest
from conftest import FAST, leftovers
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from facezoo.downloader import download_models, extract_tar, extract_zip
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


# ----------------------------------------------------------------------------- hostile archives (#22)


def make_tar(entries: dict[str, bytes], symlinks: dict[str, str] | None = None, mode: str = "w:gz",
             special: dict[str, bytes] | None = None) -> bytes:
    """A tar archive; ``special`` adds members of other types by name: b"hard" (a hard link), b"fifo"."""
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as tf:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, target in (symlinks or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tf.addfile(info)
        for name, kind in (special or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.LNKTYPE if kind == b"hard" else tarfile.FIFOTYPE
            info.linkname = "m/a.txt" if kind == b"hard" else ""
            tf.addfile(info)
    return buffer.getvalue()


def _outside(tmp_path) -> list[str]:
    """Anything written next to the destination, where no member may land."""
    return sorted(p.name for p in tmp_path.iterdir() if p.name not in ("dest", "links.zip", "links.tar.gz"))


def _extract(kind: str, tmp_path, **archive):
    from facezoo.downloader.unpack import unpack

    name = "links.zip" if kind == "zip" else "links.tar.gz"
    (tmp_path / name).write_bytes(make_zip(**archive) if kind == "zip" else make_tar(**archive))
    dest = tmp_path / "dest"
    dest.mkdir(exist_ok=True)
    return unpack(kind, tmp_path / name, dest)


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_a_chain_of_links_cannot_lead_outside(kind, tmp_path):
    """Each link passes the check on its text; the second goes through the first on disk."""
    chain = {"m/a": ".", "m/a/b": "../.."}  # by its text m/a/b -> "."; on disk m/a is m, so m/b -> dest/..
    with pytest.raises(DownloadError, match="'m/a/b': a folder on its path is itself a link"):
        _extract(kind, tmp_path, entries={"m/x.txt": b"x"}, symlinks=chain)
    assert _outside(tmp_path) == [] and list((tmp_path / "dest").iterdir()) == []


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_a_link_through_earlier_links_leading_out_is_refused(kind, tmp_path):
    chain = {"m/up": "..", "m/out": "up/.."}  # the text of m/out stays inside; on disk it is dest/..
    with pytest.raises(DownloadError, match="'m/out': symlink 'up/..' leads outside"):
        _extract(kind, tmp_path, entries={"m/x.txt": b"x"}, symlinks=chain)
    assert list((tmp_path / "dest").iterdir()) == []


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_a_loop_of_links_is_refused(kind, tmp_path):
    """Found by the property below: a link into itself, which Python's realpath resolves to '/m'."""
    with pytest.raises(DownloadError, match="'a': symlink 'a//m' is a loop"):
        _extract(kind, tmp_path, entries={"m/x.txt": b"x"}, symlinks={"a": "a//m"})
    assert list((tmp_path / "dest").iterdir()) == []


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_a_file_never_goes_through_a_link(kind, tmp_path):
    """A file under a link's path is written first, as a real folder; the link then finds it taken."""
    with pytest.raises(DownloadError, match="'m/d': its path is taken"):
        _extract(kind, tmp_path, entries={"m/d/x.txt": b"x", "m/sub/y.txt": b"y"}, symlinks={"m/d": "sub"})
    assert _outside(tmp_path) == [] and list((tmp_path / "dest").iterdir()) == []


def test_tar_is_extracted_by_the_same_rules(tmp_path):
    import tarfile

    dest = tmp_path / "dest"
    for mode, name in (("w:gz", "m.tar.gz"), ("w", "m.tar")):
        (tmp_path / name).write_bytes(make_tar({"m/a.txt": b"a", "m/sub/b.txt": b"b"},
                                               symlinks={"m/alias.txt": "a.txt"}, mode=mode))
        got = extract_tar(tmp_path / name, dest, ["m/a.txt", "m/alias.txt"])
        assert [p.read_bytes() for p in got] == [b"a", b"a"] and (dest / "m" / "alias.txt").is_symlink()
    for kind, reason in ((b"hard", "a hard link"), (b"fifo", "a device or FIFO")):
        (tmp_path / "s.tar").write_bytes(make_tar({"m/a.txt": b"a"}, special={"m/odd": kind}, mode="w"))
        with pytest.raises(DownloadError, match=f"'m/odd': {reason}"):
            extract_tar(tmp_path / "s.tar", tmp_path / "other")
    (tmp_path / "bad.tar.gz").write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(DownloadError, match="bad.tar.gz: not a valid tar archive"):
        extract_tar(tmp_path / "bad.tar.gz", tmp_path / "other")
    assert not (tmp_path / "other").exists() or list((tmp_path / "other").iterdir()) == []
    assert tarfile.is_tarfile(tmp_path / "m.tar")


def test_two_members_with_one_path_and_bombs_are_refused(tmp_path):
    from facezoo.downloader.unpack import MAX_EXPANSION

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("m/a.txt", b"first")
        zf.writestr("m/a.txt", b"second")
    (tmp_path / "twice.zip").write_bytes(buffer.getvalue())
    with pytest.raises(DownloadError, match="'m/a.txt': a second member with the same path"):
        extract_zip(tmp_path / "twice.zip", tmp_path / "dest")
    zeros = make_zip({"m/zeros.bin": bytes(20 << 20)})  # 20 MiB of zeros in ~20 kB
    assert len(zeros) * MAX_EXPANSION < 20 << 20
    (tmp_path / "bomb.zip").write_bytes(zeros)
    with pytest.raises(DownloadError, match="expands past"):
        extract_zip(tmp_path / "bomb.zip", tmp_path / "dest")
    assert list((tmp_path / "dest").iterdir()) == []


def test_the_chained_link_attack_through_facezoo_download_fails_and_writes_nothing_outside(site, tmp_path):
    """A registry entry of a few hundred bytes, as the review wrote it: exit 1, nothing outside -o."""
    from conftest import run_downloader

    data = make_zip({MEMBERS[0]: b"{}", MEMBERS[1]: b"p"}, symlinks={"m/a": ".", "m/a/b": "../..",
                                                                      "m/a/b/pwned.txt": "x"})
    add_archive(site, data)
    out = tmp_path / "out"
    done = run_downloader(["--name", "mx", "--zoo", str(site.zoo_path), "-o", str(out), "--cache_dir",
                           str(tmp_path / "cache")], cwd=tmp_path)
    assert done.returncode == 1 and "refusing archive member" in done.stderr
    assert not list(tmp_path.rglob("pwned.txt"))
    assert not [p for p in out.rglob("*") if p.is_symlink()]
    assert leftovers(out) == []


PARTS = st.lists(st.sampled_from(["m", "a", "b", "..", ".", ""]), min_size=1, max_size=4).map("/".join)


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
@given(members=st.lists(st.tuples(PARTS.filter(lambda name: any(c.isalpha() for c in name)),
                                  st.one_of(st.none(), PARTS)), min_size=1, max_size=6))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_extraction_never_writes_outside_the_folder(kind, members, tmp_path_factory):
    """Any mix of files and links, with any paths and targets: extracted inside, or refused leaving nothing."""
    work = tmp_path_factory.mktemp("hostile")
    files = {name: b"x" for name, target in members if target is None}
    links = {name: target for name, target in members if target is not None}
    try:
        _extract(kind, work, entries=files, symlinks=links)
    except DownloadError:
        assert list((work / "dest").iterdir()) == []
    dest = os.path.realpath(work / "dest")
    for path in (work / "dest").rglob("*"):
        assert os.path.commonpath([dest, os.path.realpath(path)]) == dest, path
    assert _outside(work) == []
