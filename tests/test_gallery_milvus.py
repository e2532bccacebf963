"""The Milvus gallery store on the real Milvus Lite engine (pymilvus + milvus-lite, never a mock),
through the Gallery API: the same behaviour as the folder store, and the same answers.

The tests share one Milvus Lite database per module (starting one costs about a second); each
gallery is its own collection in it.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest
from pymilvus import DataType, MilvusClient  # a required test dependency: missing, it must fail

from facezoo.gallery import (CorruptGallery, DuplicateFace, EmptyGallery, Face, Gallery, GalleryError, GalleryNotFound,
                             IdentityNotFound, ModelIdentity, ModelMismatch)
from facezoo.gallery import milvus as milvus_store
from facezoo.gallery.milvus import MilvusStore, collection_name

DIM = 32


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    return tmp_path_factory.mktemp("milvus") / "g.db"


@pytest.fixture
def uri(database):
    return f"milvus:{database}"


def _identity(dim: int = DIM, precision: str = "FP32", model: str = "m") -> ModelIdentity:
    return ModelIdentity(model, {"w.ckpt": "ab" * 32}, precision, dim, "cd" * 32)


def _faces(name: str, count: int, start: int = 0) -> list[Face]:
    return [Face(name, hashlib.sha256(f"{name}/{start + k}".encode()).hexdigest(), 0, f"{name}/{start + k}.jpg")
            for k in range(count)]


def _clustered(rng, identities: int, per: int, dim: int = DIM, spread: float = 0.35):
    centres = rng.normal(size=(identities, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    vectors = np.repeat(centres, per, axis=0) + spread / np.sqrt(dim) * rng.normal(size=(identities * per, dim))
    return centres, vectors.astype(np.float32)


def _unit(vectors):
    vectors = np.asarray(vectors, np.float32)
    return vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)


def test_enroll_identify_remove_and_reopen(tmp_path, uri):
    rng = np.random.default_rng(0)
    centres, vectors = _clustered(rng, 6, 3)
    folder = tmp_path / "people"
    with Gallery.create(folder, _identity(), store=uri, threshold=0.6) as gallery:
        assert isinstance(gallery.store, MilvusStore) and gallery.store.index_type == "HNSW"
        with pytest.raises(EmptyGallery):
            gallery.identify(centres[:1], 0.6)
        for i in range(6):
            assert gallery.add(_faces(f"p{i}", 3), vectors[3 * i : 3 * i + 3]) == 3
        assert gallery.count() == 18 and gallery.identities() == {f"p{i}": 3 for i in range(6)}
        assert [f.source for f in gallery.store.faces_of("p2")] == ["p2/0.jpg", "p2/1.jpg", "p2/2.jpg"]

        stranger = _unit(rng.normal(size=(1, DIM)))
        answers = gallery.identify(np.vstack([centres, stranger]), threshold=0.6, top_k=3)
        assert [a.identity for a in answers] == [f"p{i}" for i in range(6)] + [None]
        for i, answer in enumerate(answers[:6]):
            # the best face of the identity, by the cosine computed here
            expected = float(np.max(_unit(vectors[3 * i : 3 * i + 3]) @ centres[i]))
            assert answer.cosine == pytest.approx(expected, abs=1e-5) and answer.cosine > 0.6
            assert len(answer.candidates) == 3 and answer.candidates[0].identity == f"p{i}"
        assert answers[6].cosine is not None and answers[6].cosine < 0.6 and answers[6].candidates

        assert gallery.remove("p3") == 3
        assert "p3" not in gallery.identities() and gallery.count() == 15
        assert gallery.identify(centres[3:4], threshold=0.6)[0].identity is None
        before = [a.as_dict() for a in gallery.identify(centres, threshold=0.6, top_k=2)]

    pointer = json.loads((folder / "gallery.json").read_text())
    assert pointer == {"store": uri, "collection": "people"}
    with Gallery.open(folder) as reopened:
        assert isinstance(reopened.store, MilvusStore)
        assert reopened.count() == 15 and set(reopened.identities()) == {"p0", "p1", "p2", "p4", "p5"}
        assert reopened.info.model == "m" and reopened.info.dim == DIM and reopened.info.threshold == 0.6
        assert reopened.info.store == uri
        after = [a.as_dict() for a in reopened.identify(centres, threshold=0.6, top_k=2)]
        # closing sealed the faces: a sealed segment is scored by another kernel (the last digit may differ)
        assert [(a["identity"], [c["identity"] for c in a["candidates"]]) for a in after] == \
            [(a["identity"], [c["identity"] for c in a["candidates"]]) for a in before]
        assert [a["cosine"] for a in after] == pytest.approx([a["cosine"] for a in before], abs=1e-5)


def test_cosine_is_the_similarity_with_its_sign(tmp_path, uri):
    """Milvus's COSINE "distance" is the cosine itself (larger is nearer): check sign and value."""
    rng = np.random.default_rng(1)
    enrolled = _unit(rng.normal(size=(5, DIM)))
    with Gallery.create(tmp_path / "signs", _identity(), store=uri) as gallery:
        gallery.add([Face(f"id{i}", f"{i:064x}", 0, f"{i}.jpg") for i in range(5)], enrolled)
        orthogonal = rng.normal(size=DIM)
        orthogonal -= (orthogonal @ enrolled[0]) * enrolled[0]
        queries = np.vstack([enrolled[0], -enrolled[0], _unit(orthogonal), rng.normal(size=(4, DIM))])
        hits = gallery.store.search(queries * 3.0, 5)  # not unit length: the store normalizes
        expected = _unit(queries) @ enrolled.T
        for row, (found, want) in enumerate(zip(hits, expected)):
            assert len(found) == 5
            assert [h.cosine for h in found] == sorted((h.cosine for h in found), reverse=True)
            by_name = {h.identity: h.cosine for h in found}
            assert by_name == pytest.approx({f"id{i}": float(want[i]) for i in range(5)}, abs=1e-5), row
        assert hits[0][0].identity == "id0" and hits[0][0].cosine == pytest.approx(1.0, abs=1e-5)
        assert hits[1][-1].identity == "id0" and hits[1][-1].cosine == pytest.approx(-1.0, abs=1e-5)
        assert {h.identity: h.cosine for h in hits[2]}["id0"] == pytest.approx(0.0, abs=1e-5)
        assert len(gallery.store.search(queries[:1], 2)[0]) == 2


def test_duplicates_are_refused_and_nothing_is_added(tmp_path, uri):
    rng = np.random.default_rng(2)
    with Gallery.create(tmp_path / "dups", _identity(), store=uri) as gallery:
        gallery.add(_faces("alice", 2), rng.normal(size=(2, DIM)))
        again = _faces("bob", 2) + [Face("bob", _faces("alice", 1)[0].image_sha256, 0, "copy-of-alice.jpg")]
        with pytest.raises(DuplicateFace, match=r"copy-of-alice\.jpg.*already enrolled as 'alice' \(from alice/0\.jpg\)"):
            gallery.add(again, rng.normal(size=(3, DIM)))
        twice = _faces("carol", 2) + _faces("carol", 1)
        with pytest.raises(DuplicateFace, match=r"carol/0\.jpg.*given twice"):
            gallery.add(twice, rng.normal(size=(3, DIM)))
        assert gallery.count() == 2 and gallery.identities() == {"alice": 2}
        # another face of the same image is a different face
        other = [Face("bob", _faces("alice", 1)[0].image_sha256, 1, "group.jpg")]
        assert gallery.add(other, rng.normal(size=(1, DIM))) == 1
        assert gallery.identities() == {"alice": 2, "bob": 1}


def test_two_writers_past_the_check_enroll_an_image_once(tmp_path, uri, monkeypatch):
    """Both writers passed the check: the later write replaces the earlier; the image is never there twice."""
    rng = np.random.default_rng(3)
    with Gallery.create(tmp_path / "race", _identity(), store=uri) as gallery:
        gallery.add(_faces("alice", 2), rng.normal(size=(2, DIM)))
        monkeypatch.setattr(MilvusStore, "_refuse_duplicates", lambda self, faces, keys: None)
        late = _faces("bob", 3) + [Face("bob", _faces("alice", 1, start=1)[0].image_sha256, 0, "late.jpg")]
        assert gallery.add(late, rng.normal(size=(4, DIM))) == 4
        assert gallery.count() == 5 and gallery.identities() == {"alice": 1, "bob": 4}


def test_a_writer_that_finds_another_writers_face_takes_its_own_back(tmp_path, uri, monkeypatch):
    """Another writer wrote the same image between this add's write and its read-back: this add refuses."""
    rng = np.random.default_rng(13)
    with Gallery.create(tmp_path / "race2", _identity(), store=uri) as gallery:
        gallery.add(_faces("alice", 2), rng.normal(size=(2, DIM)))
        shared = _faces("carol", 1)[0]
        theirs = Face("alice", shared.image_sha256, 0, "alice-too.jpg")
        real_write = MilvusStore._write

        def another_writer_just_after(self, faces, keys, rows):
            real_write(self, faces, keys, rows)
            key = milvus_store.face_key(theirs.image_sha256, theirs.face)
            row = {**rows[0], "key": key, "identity": theirs.identity, "source": theirs.source,
                   "image_sha256": theirs.image_sha256, "face": 0}
            real_write(self, [theirs], [key], [row])

        monkeypatch.setattr(MilvusStore, "_write", another_writer_just_after)
        mine = _faces("carol", 3, start=1) + [shared]
        with pytest.raises(DuplicateFace, match=r"carol/0\.jpg.*enrolled as 'alice' \(from alice-too\.jpg\) by "
                                                r"another writer"):
            gallery.add(mine, rng.normal(size=(4, DIM)))
        assert gallery.count() == 3 and gallery.identities() == {"alice": 3}


def test_an_insert_failing_part_way_leaves_nothing(tmp_path, uri, monkeypatch):
    rng = np.random.default_rng(4)
    with Gallery.create(tmp_path / "partial", _identity(), store=uri) as gallery:
        gallery.add(_faces("alice", 1), rng.normal(size=(1, DIM)))
        client = gallery.store._client
        real_upsert, calls = client.upsert, []

        def second_answer_lost(name, rows, **kwargs):
            # the real engine stores both chunks; the second's answer never comes back
            calls.append(len(rows))
            result = real_upsert(name, rows, **kwargs)
            if len(calls) == 2:
                raise milvus_store._pymilvus().exceptions.MilvusException(message="the server went away")
            return result

        monkeypatch.setattr(milvus_store, "INSERT_ROWS", 2)
        monkeypatch.setattr(client, "upsert", second_answer_lost)
        with pytest.raises(GalleryError, match=r"adding 5 faces failed \(the server went away\); nothing was added"):
            gallery.add(_faces("bob", 5), rng.normal(size=(5, DIM)))
        assert calls == [2, 2]
        assert gallery.count() == 1 and gallery.identities() == {"alice": 1}
        monkeypatch.setattr(client, "upsert", real_upsert)
        assert gallery.add(_faces("bob", 5), rng.normal(size=(5, DIM))) == 5  # nothing left to collide with


def test_unknown_identity_and_awkward_names(tmp_path, uri):
    rng = np.random.default_rng(5)
    names = ['O"Brien', "d'Arcy", "José Müller", "back\\slash", "x) or (identity != \"\""]
    with Gallery.create(tmp_path / "names", _identity(), store=uri) as gallery:
        for name in names:
            gallery.add(_faces(name, 2), rng.normal(size=(2, DIM)))
        with pytest.raises(IdentityNotFound, match=r"no identity 'nobody'"):
            gallery.remove("nobody")
        assert gallery.identities() == {name: 2 for name in sorted(names)}
        assert [f.identity for f in gallery.store.faces_of("José Müller")] == ["José Müller"] * 2
        assert gallery.remove('O"Brien') == 2 and gallery.remove("x) or (identity != \"\"") == 2
        assert gallery.identities() == {name: 2 for name in sorted(names[1:4])}


def test_pages_cover_every_face(tmp_path, uri, monkeypatch):
    monkeypatch.setattr(milvus_store, "PAGE", 4)
    rng = np.random.default_rng(6)
    with Gallery.create(tmp_path / "pages", _identity(), store=uri) as gallery:
        gallery.add(_faces("a", 7) + _faces("b", 5), rng.normal(size=(12, DIM)))
        gallery.remove("b")
        gallery.add(_faces("c", 6), rng.normal(size=(6, DIM)))
        assert gallery.identities() == {"a": 7, "c": 6}
        assert [f.source for f in gallery.store.faces_of("a")] == [f"a/{k}.jpg" for k in range(7)]


def test_open_refuses_what_is_not_a_gallery(tmp_path, uri, database):
    client = MilvusClient(str(database))
    schema = client.create_schema(auto_id=True)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM)
    params = client.prepare_index_params()
    params.add_index(field_name="vector", index_type="FLAT", metric_type="COSINE")
    client.create_collection("plain", schema=schema, index_params=params)
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "gallery.json").write_text(json.dumps({"store": uri, "collection": "plain"}))
    with pytest.raises(GalleryNotFound, match=rf"{uri}: collection plain is not a facezoo gallery"):
        Gallery.open(tmp_path / "plain")
    with pytest.raises(GalleryNotFound, match=rf"{uri}: no collection nothing_here"):
        MilvusStore.open(uri, "nothing_here")
    with pytest.raises(GalleryError, match=r"collection plain already exists"):
        Gallery.create(tmp_path / "new" / "plain", _identity(), store=uri)
    assert not (tmp_path / "new" / "plain").exists()
    # a record collection that is someone else's
    client.create_collection("plain_meta", dimension=4)
    with pytest.raises(GalleryNotFound, match=r"collection plain is not a facezoo gallery \(plain_meta has fields"):
        MilvusStore.open(uri, "plain")
    # a record that does not match its faces collection
    with Gallery.create(tmp_path / "tampered", _identity(), store=uri) as gallery:
        record = json.loads(gallery.info.to_json())
    client.upsert(collection_name("tampered") + "_meta",
                  [{"key": "facezoo.gallery", "value": json.dumps({**record, "dim": 64}), "vector": [0.0, 0.0]}])
    with pytest.raises(CorruptGallery, match=r"collection tampered: 32-d vectors, but its record says 64-d"):
        Gallery.open(tmp_path / "tampered")
    with pytest.raises(GalleryNotFound, match=r"no Milvus Lite database"):
        MilvusStore.open(f"milvus:{tmp_path / 'absent.db'}", "g")
    assert not (tmp_path / "absent.db").exists()


def test_store_uris_and_collection_names(tmp_path, uri, monkeypatch):
    for bad in ("milvus:galleries.sqlite", "milvus:", "milvus:ftp://host", "milvus:http://"):
        with pytest.raises(GalleryError, match="milvus:PATH.db|no host"):
            MilvusStore.open(bad, "g")
    (tmp_path / "old.db").write_bytes(b"SQLite format 3\x00")
    with pytest.raises(GalleryError, match=r"old\.db is a file; Milvus Lite 3 keeps a database in a directory"):
        Gallery.create(tmp_path / "old", _identity(), store=f"milvus:{tmp_path / 'old.db'}")
    with pytest.raises(GalleryError, match=r"cannot connect to Milvus at http://127\.0\.0\.1:1"):
        MilvusStore.open("milvus:http://127.0.0.1:1", "g")

    assert collection_name("people") == "people" and collection_name("_x9") == "_x9"
    names = [collection_name(n) for n in ("my-gallery", "my_gallery", "my gallery", "9lives", "ünï")]
    assert names[1] == "my_gallery" and len(set(names)) == 5
    assert names[0] == collection_name("my-gallery") and names[0].startswith("my_gallery_")
    assert names[3].startswith("g_9lives_")
    assert all(n.isascii() and n.replace("_", "a").isalnum() and not n[0].isdigit() for n in names)
    with pytest.raises(GalleryError, match="choose a shorter folder name"):
        collection_name("x" * 251)
    with pytest.raises(GalleryError, match="empty"):
        collection_name("")

    with Gallery.create(tmp_path / "my-gallery", _identity(), store=uri) as gallery:
        assert gallery.store.name == names[0]
        gallery.add(_faces("a", 1), np.ones((1, DIM)))
    with Gallery.open(tmp_path / "my-gallery") as gallery:
        assert gallery.identities() == {"a": 1}

    monkeypatch.chdir(tmp_path)  # a relative Milvus Lite path is relative to the current directory
    with Gallery.create(tmp_path / "rel", _identity(), store="milvus:sub/rel.db") as gallery:
        gallery.add(_faces("a", 1), np.ones((1, DIM)))
    assert (tmp_path / "sub" / "rel.db").is_dir()


def test_model_mismatch_and_precisions(tmp_path, uri):
    rng = np.random.default_rng(7)
    with Gallery.create(tmp_path / "model", _identity(), store=uri) as gallery:
        with pytest.raises(ModelMismatch, match="holds embeddings of m; other cannot"):
            gallery.check_model(_identity(model="other"))
        with pytest.raises(ModelMismatch, match="32-d"):
            gallery.add(_faces("a", 1), rng.normal(size=(1, 64)), model=_identity(dim=64))
        with pytest.raises(ModelMismatch):
            gallery.check_model(ModelIdentity("m", {"w.ckpt": "ef" * 32}, "FP32", DIM))
        assert "FP16" in gallery.check_model(_identity(precision="FP16"))
        gallery.add(_faces("a", 1), rng.normal(size=(1, DIM)), model=_identity(precision="FP16"))
        assert gallery.count() == 1
    with Gallery.open(tmp_path / "model") as reopened:
        assert reopened.info.precisions == ["FP32", "FP16"]  # save_info reached Milvus
        with pytest.raises(ModelMismatch):
            reopened.identify(rng.normal(size=(1, DIM)), 0.5, model=_identity(model="other"))


def test_agrees_with_the_folder_store(tmp_path, uri):
    """The same faces and queries: the same top-1 identities and cosines (within 1e-3: the folder
    store keeps float16 vectors) in both stores."""
    rng = np.random.default_rng(8)
    centres, vectors = _clustered(rng, 30, 3, spread=0.8)
    faces = [face for i in range(30) for face in _faces(f"p{i}", 3)]
    queries = np.vstack([centres + 0.5 / np.sqrt(DIM) * rng.normal(size=centres.shape), rng.normal(size=(10, DIM))])
    answers = {}
    for kind, store in (("folder", None), ("milvus", uri)):
        with Gallery.create(tmp_path / f"agree-{kind}", _identity(), store=store) as gallery:
            gallery.add(faces[:45], vectors[:45])
            gallery.add(faces[45:], vectors[45:])
            gallery.remove("p4")
            answers[kind] = gallery.identify(queries, threshold=0.5, top_k=3)
    folder, milvus = answers["folder"], answers["milvus"]
    assert sum(a.identity is not None for a in milvus) >= 20  # the comparison is not of empty answers
    for f, m in zip(folder, milvus):
        assert m.identity == f.identity and m.candidates[0].identity == f.candidates[0].identity
        assert abs(m.cosine - f.cosine) < 1e-3
        assert [c.identity for c in m.candidates] == [c.identity for c in f.candidates]
        assert np.allclose([c.cosine for c in m.candidates], [c.cosine for c in f.candidates], atol=1e-3)
    assert all(a.candidates[0].identity != "p4" for a in milvus)


def test_pymilvus_is_imported_only_when_a_milvus_store_is_used(monkeypatch):
    code = "import sys, facezoo, facezoo.gallery, facezoo.gallery.milvus; print('pymilvus' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
    monkeypatch.setitem(sys.modules, "pymilvus", None)  # as if it were not installed
    with pytest.raises(GalleryError, match=r"pip install 'facezoo\[milvus\]'"):
        MilvusStore.open("milvus:/nonexistent/g.db", "g")


def test_a_lite_file_open_in_another_process_is_refused_clearly(tmp_path, uri):
    with Gallery.create(tmp_path / "held", _identity(), store=uri) as gallery:
        gallery.add(_faces("a", 1), np.ones((1, DIM)))
        # this process's Milvus Lite server holds the file until it exits
        code = ("import sys\nfrom facezoo.gallery import Gallery, GalleryError\n"
                "try:\n    Gallery.open(sys.argv[1])\nexcept GalleryError as exc:\n    print(exc)\n")
        result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "held")], capture_output=True, text=True,
                                check=True)
        assert "cannot open the Milvus Lite database" in result.stdout and "one process at a time" in result.stdout
        assert gallery.count() == 1  # and this process goes on


def test_another_process_reopens_what_one_created(tmp_path):
    """Milvus Lite keeps no load state between processes: a gallery made and closed by one opens in the next."""
    store = f"milvus:{tmp_path / 'shared.db'}"
    code = ("import sys, numpy as np\nfrom facezoo.gallery import Face, Gallery, ModelIdentity\n"
            "g = Gallery.create(sys.argv[1], ModelIdentity('m', {}, 'FP32', 4), store=sys.argv[2], threshold=0.5)\n"
            "g.add([Face('a', 'ab', 0, 'a.jpg'), Face('b', 'cd', 0, 'b.jpg')], np.eye(4)[:2])\ng.close()\n")
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "made"), store], check=True, capture_output=True)
    with Gallery.open(tmp_path / "made") as gallery:
        assert gallery.identities() == {"a": 1, "b": 1} and gallery.info.threshold == 0.5
        answer = gallery.identify(np.array([[0.0, 1.0, 0.1, 0.0]]), 0.5)[0]
        assert answer.identity == "b" and answer.cosine == pytest.approx(1 / np.sqrt(1.01), abs=1e-5)


def test_a_checkpoint_seals_and_indexes_what_was_written(tmp_path, uri, monkeypatch):
    """Milvus Lite searches rows not yet sealed by brute force: a checkpoint seals them once there
    are FLUSH_ROWS, waits for their index and loads it; answers are the same before and after."""
    monkeypatch.setattr(milvus_store, "FLUSH_ROWS", 6)
    rng = np.random.default_rng(21)
    centres, vectors = _clustered(rng, 4, 2)
    with Gallery.create(tmp_path / "sealed", _identity(), store=uri) as gallery:
        store = gallery.store
        gallery.add(_faces("p0", 2), vectors[:2])
        assert store.checkpoint() is False  # 2 rows: not worth a segment yet
        for i in range(1, 4):
            gallery.add(_faces(f"p{i}", 2), vectors[2 * i : 2 * i + 2])
        before = [a.identity for a in gallery.identify(centres, threshold=0.5)]
        assert store.checkpoint() is True and store.pending_index_rows() == 0
        assert store.checkpoint() is False and store.checkpoint(force=True) is False  # nothing new to seal
        assert [a.identity for a in gallery.identify(centres, threshold=0.5)] == before == ["p0", "p1", "p2", "p3"]
        gallery.add(_faces("p9", 1), rng.normal(size=(1, DIM)))
        assert store.checkpoint(force=True) is True and gallery.count() == 9
