"""Galleries and 1:N identification: the folder store (SQLite + a sign-bit index) through the API and the CLI.

The CLI tests run the converted stand-in MobileFaceNet on generated faces: its weights are not
trained, so the tests rely only on what holds for any model (a face enrolled is its own nearest
neighbour with cosine 1; another face is not), never on the stand-in telling people apart.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from facezoo.cli.main import app
from facezoo.faces import synthetic_face
from facezoo.gallery import (CorruptGallery, DuplicateFace, EmptyGallery, Face, Gallery, GalleryError,
                             GalleryNotFound, IdentityNotFound, ModelIdentity, ModelMismatch)
from facezoo.gallery import folder as folder_store
from facezoo.gallery import index as gallery_index

MODEL = "mindface-arcface-mobilefacenet"
runner = CliRunner()
DIM = 32


def _identity(dim: int = DIM, precision: str = "FP32", model: str = "m") -> ModelIdentity:
    return ModelIdentity(model, {"w.ckpt": "ab" * 32}, precision, dim, "cd" * 32)


def _faces(name: str, count: int, start: int = 0) -> list[Face]:
    return [Face(name, hashlib.sha256(f"{name}/{start + k}".encode()).hexdigest(), 0, f"{name}/{start + k}.jpg")
            for k in range(count)]


def _clustered(rng, identities: int, per: int, dim: int = DIM, spread: float = 0.35) -> tuple[np.ndarray, np.ndarray]:
    centres = rng.normal(size=(identities, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    vectors = np.repeat(centres, per, axis=0) + spread / np.sqrt(dim) * rng.normal(size=(identities * per, dim))
    return centres, vectors.astype(np.float32)


# ------------------------------------------------------------------------------ the API, no model --

def test_identify_finds_the_enrolled_identity_and_nobody_below_the_threshold(tmp_path):
    rng = np.random.default_rng(0)
    centres, vectors = _clustered(rng, 20, 3)
    with Gallery.create(tmp_path / "g", _identity(), threshold=0.6) as gallery:
        for i in range(20):
            gallery.add(_faces(f"p{i}", 3), vectors[3 * i : 3 * i + 3])
        assert gallery.count() == 60 and gallery.identities()["p7"] == 3
        queries = centres + 0.35 / np.sqrt(DIM) * rng.normal(size=centres.shape)
        answers = gallery.identify(queries, threshold=0.6, top_k=3)
        assert [a.identity for a in answers] == [f"p{i}" for i in range(20)]
        assert all(len(a.candidates) == 3 and a.candidates[0].cosine >= a.candidates[1].cosine for a in answers)
        stranger = rng.normal(size=(1, DIM))
        [nobody] = gallery.identify(stranger, threshold=0.6)
        assert nobody.identity is None and nobody.cosine < 0.6 and nobody.candidates
        assert gallery.threshold(None, 0.3) == (0.6, "gallery") and gallery.threshold(0.2, 0.3) == (0.2, "--threshold")


def test_an_identity_with_several_faces_is_one_candidate(tmp_path):
    rng = np.random.default_rng(1)
    _, vectors = _clustered(rng, 3, 6, spread=0.1)
    with Gallery.create(tmp_path / "g", _identity()) as gallery:
        for i in range(3):
            gallery.add(_faces(f"p{i}", 6), vectors[6 * i : 6 * i + 6])
        [answer] = gallery.identify(vectors[:1], threshold=0.5, top_k=5)
        assert [c.identity for c in answer.candidates][0] == "p0" and len(answer.candidates) == 3
        assert len({c.identity for c in answer.candidates}) == 3


def test_remove_and_reopen(tmp_path):
    rng = np.random.default_rng(2)
    _, vectors = _clustered(rng, 4, 2)
    with Gallery.create(tmp_path / "g", _identity()) as gallery:
        for i in range(4):
            gallery.add(_faces(f"p{i}", 2), vectors[2 * i : 2 * i + 2])
        assert gallery.remove("p1") == 2
        with pytest.raises(IdentityNotFound, match="no identity 'p1'"):
            gallery.remove("p1")
        [answer] = gallery.identify(vectors[2:3], threshold=0.0, top_k=4)
        assert "p1" not in [c.identity for c in answer.candidates]
        gallery.checkpoint()
        gallery.add(_faces("late", 1), vectors[:1] * -1)  # after the snapshot: replayed on open
    with Gallery.open(tmp_path / "g") as again:
        assert again.identities() == {"late": 1, "p0": 2, "p2": 2, "p3": 2}
        assert again.store.index_size == 7
        [answer] = again.identify(-vectors[:1], threshold=0.99)
        assert answer.identity == "late"


def test_duplicates_are_refused_and_nothing_is_written(tmp_path):
    vectors = np.eye(DIM, dtype=np.float32)
    with Gallery.create(tmp_path / "g", _identity()) as gallery:
        gallery.add(_faces("a", 2), vectors[:2])
        again = [_faces("b", 1)[0], _faces("a", 1)[0]]  # a new face, then one of a's
        with pytest.raises(DuplicateFace, match="already enrolled as 'a'"):
            gallery.add(again, vectors[2:4])
        twice = _faces("c", 1) * 2
        with pytest.raises(DuplicateFace, match="given twice"):
            gallery.add(twice, vectors[4:6])
        assert gallery.identities() == {"a": 2} and gallery.count() == 2


def test_models_precisions_and_bad_input(tmp_path):
    with Gallery.create(tmp_path / "g", _identity(), threshold=None) as gallery:
        with pytest.raises(EmptyGallery, match="is empty"):
            gallery.identify(np.ones((1, DIM)), threshold=0.5)
        with pytest.raises(ModelMismatch, match="holds embeddings of m; other cannot"):
            gallery.check_model(_identity(model="other"))
        with pytest.raises(ModelMismatch, match="other weights"):
            gallery.check_model(ModelIdentity("m", {"w.ckpt": "ff" * 32}, "FP32", DIM))
        assert "FP16" in gallery.check_model(_identity(precision="FP16"))
        gallery.add(_faces("a", 1), np.ones((1, DIM)), _identity(precision="FP16"))
        assert gallery.info.precisions == ["FP32", "FP16"]
        with pytest.raises(GalleryError, match=r"expected N×32 embeddings"):
            gallery.add(_faces("b", 1), np.ones((1, DIM + 1)))
        with pytest.raises(GalleryError, match="all zeros"):
            gallery.add(_faces("b", 1), np.zeros((1, DIM)))
        with pytest.raises(GalleryError, match="identity 'x/y'"):
            gallery.add(_faces("x/y", 1), np.ones((1, DIM)))
        with pytest.raises(GalleryError, match="no identification threshold .* --threshold"):
            gallery.threshold(None, None)
    with pytest.raises(GalleryNotFound, match="no such gallery"):
        Gallery.open(tmp_path / "missing")
    with pytest.raises(GalleryError, match="already exists"):
        Gallery.create(tmp_path / "g", _identity())
    with pytest.raises(GalleryError, match="unknown store"):
        Gallery.create(tmp_path / "h", _identity(), store="redis://x")


def test_a_damaged_index_is_named_and_reindex_rebuilds_it(tmp_path):
    rng = np.random.default_rng(3)
    _, vectors = _clustered(rng, 5, 2)
    with Gallery.create(tmp_path / "g", _identity()) as gallery:
        for i in range(5):
            gallery.add(_faces(f"p{i}", 2), vectors[2 * i : 2 * i + 2])
        gallery.checkpoint()
    [index_file] = (tmp_path / "g").glob("index-*.npz")
    data = bytearray(index_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    index_file.write_bytes(bytes(data))
    with pytest.raises(CorruptGallery, match=rf"{index_file.name}: missing or damaged.*gallery reindex"):
        Gallery.open(tmp_path / "g")
    with Gallery.open(tmp_path / "g", load_index=False) as gallery:
        assert gallery.store.reindex() == 10
    with Gallery.open(tmp_path / "g") as gallery:
        assert gallery.identify(vectors[4:5], threshold=0.5)[0].identity == "p2"
    (tmp_path / "g" / folder_store.DATABASE).write_bytes(b"not a database" * 100)
    with pytest.raises(CorruptGallery, match="not a readable gallery database"):
        Gallery.open(tmp_path / "g")


def test_the_sign_bit_search_agrees_with_exact_search(tmp_path, monkeypatch):
    """Past RERANK faces, candidates come from the sign bits: recall@1 against brute force, and a reopened
    snapshot answers the same."""
    monkeypatch.setattr(gallery_index, "RERANK", 16)
    monkeypatch.setattr(gallery_index, "EXACT_UP_TO", 1000)
    rng = np.random.default_rng(4)
    centres, vectors = _clustered(rng, 4000, 1, dim=512, spread=0.6)
    faces = [Face(f"p{i}", hashlib.sha256(str(i).encode()).hexdigest(), 0, str(i)) for i in range(4000)]
    queries = centres[:300] + 0.6 / np.sqrt(512) * rng.normal(size=(300, 512))
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    gallery_vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    exact = np.argmax(queries @ gallery_vectors.T, axis=1)
    assert gallery_index.rerank_candidates(512) == 16  # 512 bits: RERANK itself
    with Gallery.create(tmp_path / "g", _identity(dim=512)) as gallery:
        gallery.add(faces, vectors)
        answers = [a.identity for a in gallery.identify(queries, threshold=0.0, top_k=1)]
        gallery.checkpoint()
    recall = np.mean([answer == f"p{e}" for answer, e in zip(answers, exact)])
    assert recall >= 0.99
    with Gallery.open(tmp_path / "g") as again:
        assert [a.identity for a in again.identify(queries, threshold=0.0, top_k=1)] == answers


def test_fewer_bits_rescore_more_candidates():
    """A 128-d model's 128 sign bits separate angles less sharply: it re-scores 32× more candidates."""
    counts = [gallery_index.rerank_candidates(bits) for bits in (128, 256, 512, 1024)]
    assert counts == [gallery_index.RERANK * 32, gallery_index.RERANK * 8, gallery_index.RERANK, gallery_index.RERANK]


def test_a_reader_sees_a_writers_adds_without_reopening(tmp_path):
    rng = np.random.default_rng(5)
    _, vectors = _clustered(rng, 2, 1)
    writer = Gallery.create(tmp_path / "g", _identity())
    writer.add(_faces("first", 1), vectors[:1])
    reader = Gallery.open(tmp_path / "g")
    try:
        writer.add(_faces("second", 1), vectors[1:2])
        assert reader.identify(vectors[1:2], threshold=0.9)[0].identity == "second"
        writer.remove("first")
        assert reader.identities() == {"second": 1}
        assert reader.identify(vectors[:1], threshold=0.0, top_k=5)[0].candidates[0].identity == "second"
    finally:
        reader.close()
        writer.close()


WRITER = textwrap.dedent("""
    import hashlib, sys
    import numpy as np
    from facezoo.gallery import Face, Gallery
    gallery = Gallery.open(sys.argv[1])
    rng = np.random.default_rng(0)
    for i in range(100000):
        faces = [Face(f"p{i}", hashlib.sha256(f"{i}/{k}".encode()).hexdigest(), 0, f"{i}/{k}") for k in range(5)]
        gallery.add(faces, rng.normal(size=(5, 16)))
        print(i, flush=True)
""")


def test_a_writer_killed_mid_bulk_add_leaves_every_committed_identity(tmp_path):
    Gallery.create(tmp_path / "g", _identity(dim=16)).close()
    process = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path / "g")], stdout=subprocess.PIPE,
                               text=True, cwd=Path(__file__).resolve().parents[1])
    committed = -1
    deadline = time.monotonic() + 120
    while committed < 40 and time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        committed = int(line)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert committed >= 40, "the writer did not get going"
    with Gallery.open(tmp_path / "g") as gallery:
        identities = gallery.identities()
        assert set(identities) >= {f"p{i}" for i in range(committed + 1)}
        assert set(identities.values()) == {5}  # no identity half-added
        assert gallery.store.index_size == gallery.count() == 5 * len(identities)
        gallery.add(_faces("after", 1), np.ones((1, 16)))  # and it takes new faces
        assert gallery.identify(np.ones((1, 16)), threshold=0.99)[0].identity == "after"


# ------------------------------------------------------------------------------ the CLI, a real model --

def _write_faces(folder: Path, identity: int, variations) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for v in variations:
        path = folder / f"{v}.png"
        cv2.imwrite(str(path), synthetic_face(identity, v))
        paths.append(path)
    return paths


def _cli(*args: str):
    result = runner.invoke(app, [str(a) for a in args])
    return result


def test_gallery_commands_end_to_end(converted_standin, tmp_path):
    converted = converted_standin.converted_dir
    g = tmp_path / "people"
    people = tmp_path / "people-folder"
    for k in range(4):
        _write_faces(people / f"person{k}", 10 + k, [0, 1])
    alice = _write_faces(tmp_path / "alice", 3, [0, 1, 2])
    stranger = _write_faces(tmp_path / "stranger", 99, [0])

    made = _cli("gallery", "create", g, "--model", MODEL, "-c", converted, "--threshold", "0.999")
    assert made.exit_code == 0, made.output
    added = _cli("gallery", "add", g, "--identity", "alice", alice[0], alice[1], "-c", converted)
    assert added.exit_code == 0 and "added 2 faces of 1 identity" in added.output, added.output
    added = _cli("gallery", "add", g, "--from-folder", people, "-c", converted, "--precision", "FP16")
    assert added.exit_code == 0 and "added 8 faces of 4 identities" in added.output, added.output
    listed = _cli("gallery", "list", g, "--json")
    document = json.loads(listed.output)
    assert document["model"] == MODEL and document["precisions"] == ["FP32", "FP16"] and document["threshold"] == 0.999
    assert {r["identity"]: r["faces"] for r in document["identities"]} == {
        "alice": 2, "person0": 2, "person1": 2, "person2": 2, "person3": 2}

    out = tmp_path / "who.json"
    found = _cli("identify", g, alice[1], people / "person2" / "0.png", stranger[0], "--top-k", "3", "--json", out,
                 "-c", converted)
    assert found.exit_code == 0, found.output
    results = json.loads(out.read_text())["results"]
    assert [r["identity"] for r in results] == ["alice", "person2", None]  # the stranger is nobody at 0.999
    assert all(set(r) >= {"path", "face", "identity", "cosine", "candidates"} for r in results)
    assert results[0]["cosine"] > 0.999 and len(results[2]["candidates"]) == 3
    assert json.loads(out.read_text())["threshold_source"] == "gallery"

    embedded = _cli("embed", MODEL, alice[1], "-c", converted, "-o", tmp_path / "q.npy")
    assert embedded.exit_code == 0, embedded.output
    by_vector = _cli("identify", g, "--embeddings", tmp_path / "q.npy", "--threshold", "0.5", "--json",
                     tmp_path / "v.json")
    assert by_vector.exit_code == 0, by_vector.output
    assert json.loads((tmp_path / "v.json").read_text())["results"][0]["identity"] == "alice"

    twice = _cli("gallery", "add", g, "--identity", "mallory", alice[0], "-c", converted)
    assert twice.exit_code == 1 and "already enrolled as 'alice'" in twice.output
    removed = _cli("gallery", "remove", g, "--identity", "person1")
    assert removed.exit_code == 0 and "removed person1 (2 faces)" in removed.output
    gone = _cli("gallery", "remove", g, "--identity", "person1")
    assert gone.exit_code == 1 and "no identity 'person1'" in gone.output
    listed = _cli("gallery", "list", g)
    assert listed.exit_code == 0 and "person1" not in listed.output and "4 identities, 8 faces" in listed.output


def test_cli_refusals(converted_standin, tmp_path):
    converted = converted_standin.converted_dir
    g = tmp_path / "g"
    face = _write_faces(tmp_path / "f", 1, [0])[0]
    assert _cli("gallery", "create", g, "--model", MODEL, "-c", converted).exit_code == 0
    empty = _cli("identify", g, face, "-c", converted, "--threshold", "0.5")
    assert empty.exit_code == 1 and "is empty" in empty.output
    assert _cli("gallery", "add", g, "--identity", "a", face, "-c", converted).exit_code == 0
    no_threshold = _cli("identify", g, face, "-c", converted)
    assert no_threshold.exit_code == 1 and "no identification threshold" in no_threshold.output
    np.save(tmp_path / "wrong.npy", np.ones((2, 7), np.float32))
    wrong = _cli("identify", g, "--embeddings", tmp_path / "wrong.npy", "--threshold", "0.5")
    assert wrong.exit_code == 1 and "expected N×" in wrong.output
    missing = _cli("gallery", "list", tmp_path / "nope")
    assert missing.exit_code == 1 and "no such gallery" in missing.output
    both = _cli("gallery", "add", g, "--identity", "a", face, "--from-folder", tmp_path)
    assert both.exit_code == 1 and "give one of" in both.output
    again = _cli("gallery", "create", g, "--model", MODEL, "-c", converted)
    assert again.exit_code == 1 and "already exists" in again.output


def test_photos_through_a_detector(converted_standin, converted_mtcnn, tmp_path):
    """Enrolling a photo takes its largest face; identifying takes every face, each with its box."""
    from facezoo.photos import ASTRONAUT, composite

    converted = converted_standin.converted_dir
    detector = next((converted_mtcnn.converted_dir / "mtcnn" / "FP32").glob("mtcnn-pnet.xml"))
    g = tmp_path / "g"
    assert _cli("gallery", "create", g, "--model", MODEL, "-c", converted, "--threshold", "0.999").exit_code == 0
    added = _cli("gallery", "add", g, "--identity", "eileen", ASTRONAUT, "--detector", detector, "-c", converted)
    assert added.exit_code == 0, added.output
    group = tmp_path / "group.jpg"
    cv2.imwrite(str(group), composite())
    out = tmp_path / "who.json"
    found = _cli("identify", g, ASTRONAUT, group, "--detector", detector, "-c", converted, "--json", out)
    assert found.exit_code == 0, found.output
    results = json.loads(out.read_text())["results"]
    mine = [r for r in results if r["path"] == str(ASTRONAUT)]
    assert len(mine) == 1 and mine[0]["identity"] == "eileen" and mine[0]["cosine"] > 0.999
    crowd = [r for r in results if r["path"] == str(group)]
    assert len(crowd) >= 2 and all(len(r["box"]) == 4 and len(r["landmarks"]) == 5 for r in crowd)
    assert [r["face"] for r in crowd] == list(range(len(crowd)))
    plain = tmp_path / "plain.png"
    cv2.imwrite(str(plain), np.full((200, 200, 3), 128, np.uint8))
    none = _cli("gallery", "add", g, "--identity", "nobody", plain, "--detector", detector, "-c", converted)
    assert none.exit_code == 1 and f"no face found in {plain}" in none.output


def test_from_parquet_takes_identities_from_folders(tmp_path):
    """The rows embed-dataset writes (path, face, embedding, error): the identity is the parent folder,
    error rows are skipped, and the same Parquet added twice is refused."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(6)
    rows = {"path": ["ann/1.jpg", "ann/2.jpg", "bob/1.jpg", "bob/broken.jpg"], "face": [0, 0, 0, -1],
            "embedding": [rng.normal(size=DIM).astype(np.float32).tolist() for _ in range(3)] + [None],
            "error": [None, None, None, "cannot decode the image"]}
    table = pa.table({"path": pa.array(rows["path"]), "face": pa.array(rows["face"], pa.int32()),
                      "embedding": pa.array(rows["embedding"], pa.list_(pa.float32())),
                      "error": pa.array(rows["error"], pa.string())})
    pq.write_table(table, tmp_path / "faces.parquet")
    Gallery.create(tmp_path / "g", _identity()).close()
    added = _cli("gallery", "add", tmp_path / "g", "--from-parquet", tmp_path / "faces.parquet")
    assert added.exit_code == 0 and "added 3 faces of 2 identities" in added.output, added.output
    with Gallery.open(tmp_path / "g") as gallery:
        assert gallery.identities() == {"ann": 2, "bob": 1}
        [answer] = gallery.identify(np.asarray(rows["embedding"][2])[None], threshold=0.99)
        assert answer.identity == "bob"
    again = _cli("gallery", "add", tmp_path / "g", "--from-parquet", tmp_path / "faces.parquet")
    assert again.exit_code == 1 and "already enrolled" in again.output
    (tmp_path / "junk.parquet").write_bytes(b"PAR1 not really")
    junk = _cli("gallery", "add", tmp_path / "g", "--from-parquet", tmp_path / "junk.parquet")
    assert junk.exit_code == 1 and "not an embed-dataset Parquet file" in junk.output


def test_a_milvus_gallery_through_the_cli(tmp_path, monkeypatch):
    """--store milvus:FILE.db keeps the faces in Milvus Lite; the folder holds where, and every
    command after create needs only the folder."""
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(7)
    np.save(tmp_path / "q.npy", rng.normal(size=(2, DIM)).astype(np.float32))
    with Gallery.create(tmp_path / "g", _identity(), store="milvus:lite.db", threshold=0.5) as gallery:
        gallery.add(_faces("ann", 1), np.load(tmp_path / "q.npy")[:1])
    assert json.loads((tmp_path / "g" / "gallery.json").read_text())["store"] == "milvus:lite.db"
    listed = _cli("gallery", "list", tmp_path / "g", "--json")
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.output)["store"] == "milvus:lite.db"
    found = _cli("identify", tmp_path / "g", "--embeddings", tmp_path / "q.npy", "--json", tmp_path / "w.json")
    assert found.exit_code == 0, found.output
    results = json.loads((tmp_path / "w.json").read_text())["results"]
    assert results[0]["identity"] == "ann" and results[0]["cosine"] == pytest.approx(1.0, abs=1e-3)
    reindex = _cli("gallery", "reindex", tmp_path / "g")
    assert reindex.exit_code == 1 and "indexes by itself" in reindex.output


def test_the_index_itself(tmp_path):
    """Keys in database order, exact up to EXACT_UP_TO, removal compacts, save and load round-trip."""
    rng = np.random.default_rng(8)
    vectors = rng.normal(size=(50, 20)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = gallery_index.BinaryRerankIndex(20)  # 20 bits: codes padded to 3 bytes
    index.add(np.arange(1, 51, dtype=np.uint64), vectors)
    with pytest.raises(ValueError, match="increasing order"):
        index.add(np.array([3], np.uint64), vectors[:1])
    keys, cosines = index.search(vectors[:4], 3)
    exact = np.argsort(-(vectors[:4] @ vectors.T), axis=1)[:, :3] + 1
    np.testing.assert_array_equal(keys, exact)  # 50 faces <= EXACT_UP_TO: exact
    np.testing.assert_allclose(cosines[:, 0], 1.0, atol=2e-3)
    assert index.remove(np.array([1, 2, 999], np.uint64)) == 2 and len(index) == 48
    assert list(index.contains(np.array([1, 3], np.uint64))) == [False, True]
    assert 1 not in index.search(vectors[:1], 5)[0]
    index.save(tmp_path / "i.npz")
    again = gallery_index.BinaryRerankIndex.load(tmp_path / "i.npz")
    assert len(again) == 48 and again.nbytes == index.nbytes
    np.testing.assert_array_equal(again.search(vectors[5:9], 4)[0], index.search(vectors[5:9], 4)[0])
    assert index.search(vectors[:2], 0)[0].shape == (2, 0)


def test_shards_are_searched_alike(monkeypatch):
    """Codes split over several FAISS indexes (scanned side by side for a few queries, one after
    the other for many) give candidates as near in Hamming distance as one index gives (which of
    several tied at the cut is kept may differ), and the same nearest face."""
    rng = np.random.default_rng(9)
    vectors = rng.normal(size=(3000, 64)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = vectors[:40] + 0.05 * rng.normal(size=(40, 64)).astype(np.float32)
    monkeypatch.setattr(gallery_index, "EXACT_UP_TO", 100)
    one = gallery_index.BinaryRerankIndex(64)
    one.add(np.arange(1, 3001, dtype=np.uint64), vectors)
    monkeypatch.setattr(gallery_index, "SHARD_ROWS", 700)
    sharded = gallery_index.BinaryRerankIndex(64)
    sharded.add(np.arange(1, 1001, dtype=np.uint64), vectors[:1000])
    sharded.add(np.arange(1001, 3001, dtype=np.uint64), vectors[1000:])
    assert len(sharded._shards) == 5
    codes = gallery_index.sign_codes(vectors)

    def hamming(query_codes, rows):
        return np.sort(np.unpackbits(codes[rows] ^ query_codes[:, None, :], axis=2).sum(axis=2), axis=1)

    for batch in (queries[:1], queries[:3], queries):  # threads for a few queries, FAISS's own for many
        batch_codes = gallery_index.sign_codes(batch)
        np.testing.assert_array_equal(hamming(batch_codes, sharded._candidates(batch_codes, 64)),
                                      hamming(batch_codes, one._candidates(batch_codes, 64)))
        np.testing.assert_array_equal(sharded.search(batch, 1)[0], one.search(batch, 1)[0])
    assert sharded.remove(np.arange(1, 800, dtype=np.uint64)) == 799 and len(sharded._shards) == 4
    np.testing.assert_array_equal(sharded._codes(), gallery_index.sign_codes(vectors[799:]))
