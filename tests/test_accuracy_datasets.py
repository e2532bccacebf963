"""insightface .bin and LFW folder loaders: layouts, safety, and errors that name file and line."""

from __future__ import annotations

import os
import pickle
import shutil

import cv2
import numpy as np
import pytest

from facezoo.accuracy.datasets import (
    DatasetError,
    identity_of,
    list_images,
    load_dataset,
    load_insightface_bin,
    load_lfw_folder,
    write_insightface_bin,
)
from facezoo.accuracy.synthetic import person_name, plan_pairs, write_synthetic_bin, write_synthetic_lfw
from facezoo.faces import synthetic_face


@pytest.fixture(scope="module")
def encoded():
    """Four JPEG-encoded faces: two pairs (same, different)."""
    out = []
    for identity, variation in ((1, 0), (1, 1), (2, 0), (3, 0)):
        ok, data = cv2.imencode(".jpg", synthetic_face(identity, variation))
        assert ok
        out.append(data.tobytes())
    return out


@pytest.fixture(scope="module")
def synthetic_lfw(tmp_path_factory):
    return write_synthetic_lfw(tmp_path_factory.mktemp("lfw") / "lfw_synth", folds=10, per_fold=2)


# ----------------------------------------------------------------------------- .bin


def test_synthetic_bin_round_trip(tmp_path):
    path = write_synthetic_bin(tmp_path / "lfw.bin", folds=10, per_fold=2)
    data = load_insightface_bin(path)
    assert data.kind == "insightface-bin" and data.name == "lfw"
    assert data.image_count == 80 and len(data.issame) == 40
    np.testing.assert_array_equal(data.pairs[:3], [[0, 1], [2, 3], [4, 5]])
    expected = [p.same for p in plan_pairs(10, 2)]
    assert data.issame.tolist() == expected
    image = data.image(0)
    assert image.shape == (112, 112, 3) and image.dtype == np.uint8
    assert data.synthetic and data.synthetic["synthetic"] is True
    starts = [start for start, _ in data.batches(32)]
    assert starts == [0, 32, 64]


def test_bin_without_marker_is_not_synthetic(tmp_path, encoded):
    path = write_insightface_bin(tmp_path / "cfp_fp.bin", encoded, [True, False])
    data = load_dataset(path)
    assert data.synthetic is None and data.issame.tolist() == [True, False]


def test_python2_style_bin_and_numpy_bool_array(tmp_path, encoded):
    # Python 2 wrote the JPEGs as `str`; read with latin1 they arrive as str and must become bytes again
    as_str = [b.decode("latin1") for b in encoded]
    path = tmp_path / "agedb_30.bin"
    path.write_bytes(pickle.dumps((as_str, [True, False]), protocol=2))
    data = load_insightface_bin(path)
    assert data.image(1).shape == (112, 112, 3)
    # some copies hold issame as a numpy bool array
    for protocol in (2, 4):
        path.write_bytes(pickle.dumps((encoded, np.array([False, True])), protocol=protocol))
        assert load_insightface_bin(path).issame.tolist() == [False, True]


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _EvalEvil:
    def __reduce__(self):
        return (eval, ("__import__('os').getcwd()",))


@pytest.mark.parametrize("make_payload, refused", [
    (lambda marker: (_Evil(marker), [True]), "system"),
    (lambda marker: ([b"x", b"y"], [_Evil(marker)]), "system"),
    (lambda marker: (_EvalEvil(), [True]), "eval"),
])
def test_malicious_pickle_is_refused_without_running(tmp_path, make_payload, refused):
    marker = tmp_path / "pwned"
    path = tmp_path / "lfw.bin"
    path.write_bytes(pickle.dumps(make_payload(marker), protocol=2))
    with pytest.raises(DatasetError) as info:
        load_insightface_bin(path)
    message = str(info.value)
    assert str(path) in message and refused in message and "refusing" in message
    assert not marker.exists()


def test_numpy_globals_other_than_plain_bool_arrays_are_refused(tmp_path, encoded):
    path = tmp_path / "x.bin"
    # an object array could smuggle anything: its dtype is refused
    path.write_bytes(pickle.dumps((encoded[:2], np.array([True], dtype=object)), protocol=2))
    with pytest.raises(DatasetError, match="dtype"):
        load_insightface_bin(path)
    # numpy scalars go through numpy.core.multiarray.scalar, which is not on the list
    path.write_bytes(pickle.dumps((encoded[:2], [np.bool_(True)]), protocol=2))
    with pytest.raises(DatasetError, match=r"multiarray\.scalar"):
        load_insightface_bin(path)


@pytest.mark.parametrize("payload, message", [
    (([b"a", b"b", b"c"], [True]), "3 images for 1 pairs"),
    (("images", [True]), "expected a list of encoded images"),
    (([b"a", 5], [True]), r"images\[1\]"),
    (([b"a", b"b"], ["yes"]), "issame"),
    ({"images": []}, "expected a pickled"),
    (([], []), "no pairs"),
])
def test_malformed_bin_names_the_file(tmp_path, payload, message):
    path = tmp_path / "bad.bin"
    path.write_bytes(pickle.dumps(payload))
    with pytest.raises(DatasetError, match=message) as info:
        load_insightface_bin(path)
    assert str(path) in str(info.value)


def test_truncated_bin_and_undecodable_image(tmp_path, encoded):
    path = tmp_path / "cut.bin"
    path.write_bytes(pickle.dumps((encoded, [True, False]))[:100])
    with pytest.raises(DatasetError, match="not a readable verification pickle"):
        load_insightface_bin(path)
    path.write_bytes(pickle.dumps(([b"not a jpeg", encoded[0]], [True])))
    data = load_insightface_bin(path)
    with pytest.raises(DatasetError, match="image 0: not a decodable image"):
        data.image(0)


# ----------------------------------------------------------------------------- LFW folder


def test_synthetic_lfw_folder_loads(synthetic_lfw):
    data = load_dataset(synthetic_lfw)
    assert data.kind == "lfw-folder" and data.folds_hint == 10
    assert len(data.issame) == 40 and data.same_pairs == 20 and data.different_pairs == 20
    # View 2 order: per fold, the same pairs first
    assert data.issame[:4].tolist() == [True, True, False, False]
    assert data.image_count == len(set(map(tuple, data.pairs.reshape(-1, 1).tolist())))
    assert data.image(int(data.pairs[0, 0])).shape == (112, 112, 3)
    assert data.synthetic is not None
    # the pairs file itself is accepted too
    assert len(load_dataset(synthetic_lfw / "pairs.txt").issame) == 40


def test_lfw_tarball_layout_and_separate_pairs_file(tmp_path, synthetic_lfw):
    root = tmp_path / "download"
    shutil.copytree(synthetic_lfw, root / "lfw", ignore=shutil.ignore_patterns("pairs.txt"))
    shutil.copy(synthetic_lfw / "pairs.txt", root / "pairs.txt")
    assert len(load_lfw_folder(root).issame) == 40  # images under root/lfw/
    elsewhere = tmp_path / "my_pairs.txt"
    shutil.copy(synthetic_lfw / "pairs.txt", elsewhere)
    assert len(load_lfw_folder(root / "lfw", elsewhere).issame) == 40


def _lfw_with_pairs(tmp_path, synthetic_lfw, text):
    """Two people with images 1 and 2 each, and `text` as pairs.txt."""
    root = tmp_path / "lfw"
    for identity in (5000, 5001):
        folder = root / person_name(identity)
        folder.mkdir(parents=True)
        for number in (1, 2):
            cv2.imwrite(str(folder / f"{person_name(identity)}_{number:04d}.jpg"), synthetic_face(identity, number))
    (root / "pairs.txt").write_text(text, encoding="utf-8")
    return root


def test_bare_count_header(tmp_path, synthetic_lfw):
    a, b = person_name(5000), person_name(5001)
    text = f"2\n{a}\t1\t2\n{b}\t1\t2\n{a}\t1\t{b}\t1\n{a}\t2\t{b}\t2\n"
    root = _lfw_with_pairs(tmp_path, synthetic_lfw, text)
    data = load_lfw_folder(root)
    assert data.issame.tolist() == [True, True, False, False] and data.folds_hint is None


@pytest.mark.parametrize("make_text, where, message", [
    (lambda a, b: "ten\n", 1, "expected a header"),
    (lambda a, b: f"1 1\n{a} 1 2 3 4 5\n{a} 1 {b} 1\n", 2, "expected 'name i j'"),
    (lambda a, b: f"1 1\n{a} one 2\n{a} 1 {b} 1\n", 2, "expected 'name i j'"),
    (lambda a, b: f"1 1\n{a} 1 2\n{a} 1 {b} 99\n", 3, "does not exist"),
    (lambda a, b: f"1 1\n{a} 0 2\n{a} 1 {b} 1\n", 2, "start at 1"),
    (lambda a, b: f"1 2\n{a} 1 2\n{a} 1 {b} 1\n", 1, "header declares 1 folds"),
    (lambda a, b: f"1 1\n{a} 1 {b} 1\n{a} 1 2\n", 2, "fold 1 expects a same-person"),
    (lambda a, b: f"3\n{a} 1 2\n{a} 1 {b} 1\n", 1, "header declares 3 pairs"),
])
def test_malformed_pairs_name_file_and_line(tmp_path, synthetic_lfw, make_text, where, message):
    a, b = person_name(5000), person_name(5001)
    root = _lfw_with_pairs(tmp_path, synthetic_lfw, make_text(a, b))
    with pytest.raises(DatasetError, match=message) as info:
        load_lfw_folder(root)
    assert f"{root / 'pairs.txt'}:{where}:" in str(info.value)


def test_missing_pairs_file_and_unknown_path(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="pairs file not found"):
        load_dataset(tmp_path / "empty")
    with pytest.raises(DatasetError, match="no such file"):
        load_dataset(tmp_path / "nothing.bin")
    (tmp_path / "x.dat").write_bytes(b"123")
    with pytest.raises(DatasetError, match="expected an insightface .bin"):
        load_dataset(tmp_path / "x.dat")


def test_image_folder_identities(tmp_path):
    (tmp_path / "Ann").mkdir()
    for name in ("Ann/Ann_0001.jpg", "Ann/Ann_0002.png", "Bob_0001.jpg", "carol.png", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    files = list_images(tmp_path)
    assert [f.relative_to(tmp_path).as_posix() for f in files] == [
        "Ann/Ann_0001.jpg", "Ann/Ann_0002.png", "Bob_0001.jpg", "carol.png"]
    assert [identity_of(f, tmp_path) for f in files] == ["Ann", "Ann", "Bob", "carol"]


def _raw_pickle_with_codec(codec: str) -> bytes:
    """(images=[_codecs.encode('abc', codec)], issame=[True]) written opcode by opcode (protocol 2)."""
    def unicode(text):
        data = text.encode()
        return b"X" + len(data).to_bytes(4, "little") + data

    return (b"\x80\x02]" + b"c_codecs\nencode\n" + unicode("abc") + unicode(codec) + b"\x86R" + b"a"
            + b"]\x88a" + b"\x86.")


def test_protocol_2_bytes_only_through_latin1(tmp_path):
    path = tmp_path / "p2.bin"
    path.write_bytes(_raw_pickle_with_codec("latin1"))
    with pytest.raises(DatasetError, match="1 images for 1 pairs"):  # read fine, then the count is wrong
        load_insightface_bin(path)
    path.write_bytes(_raw_pickle_with_codec("rot13"))
    with pytest.raises(DatasetError, match="refusing _codecs.encode"):
        load_insightface_bin(path)
