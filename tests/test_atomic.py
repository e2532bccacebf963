"""Published files and folders are readable as the user's umask says, not with mkstemp's 0600."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

import pytest

from facezoo.atomic import current_umask, make_publishable, replace_tree, write_bytes_atomic


@pytest.fixture(params=[0o022, 0o027])
def umask(request):
    previous = os.umask(request.param)
    yield request.param
    os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_current_umask_reads_without_changing_it(umask):
    assert current_umask() == umask
    assert current_umask() == umask


def test_an_atomic_write_has_a_plain_new_files_mode(tmp_path, umask):
    plain = tmp_path / "plain.json"
    plain.write_text("{}")
    written = write_bytes_atomic(tmp_path / "report.json", b"{}")
    assert _mode(written) == _mode(plain) == 0o666 & ~umask
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.json", "report.json"]


def test_a_replaced_tree_has_plain_modes_throughout(tmp_path, umask):
    staging = Path(tempfile.mkdtemp(prefix=".model.", dir=tmp_path))  # 0700, as mkdtemp makes it
    (staging / "1").mkdir(mode=0o700)
    weights = staging / "1" / "model.mindir"
    weights.write_bytes(b"weights")
    weights.chmod(0o400)  # as mindspore.export leaves its files
    outside = tmp_path / "outside.txt"
    outside.write_text("x")
    outside.chmod(0o600)
    (staging / "link").symlink_to(outside)
    target = replace_tree(staging, tmp_path / "model")
    assert _mode(target) == _mode(target / "1") == 0o777 & ~umask
    assert _mode(target / "1" / "model.mindir") == 0o666 & ~umask
    assert _mode(outside) == 0o600  # a link is not followed out of the tree


def test_a_single_file_is_made_publishable(tmp_path, umask):
    path = tmp_path / "card.json"
    path.write_text("{}")
    path.chmod(0o400)
    make_publishable(path)
    assert _mode(path) == 0o666 & ~umask
