"""The Milvus gallery store: for galleries that outgrow one machine's folder.

A store URI chooses where the faces live, and the same pymilvus ``MilvusClient`` API serves both:

* ``milvus:PATH.db``: Milvus Lite, embedded in this process, its data in ``PATH.db`` (a
  directory since Milvus Lite 3; a relative path is relative to the current directory). One
  process at a time may open a file (Milvus Lite locks it); its in-process server stays up until
  the process exits, so several stores in one process share it.
* ``milvus:http://HOST:PORT`` or ``milvus:https://...``: a Milvus server or cluster (or Zilliz
  Cloud); a token, if the server needs one, from the environment variable ``MILVUS_TOKEN``.

A gallery is two collections. ``<name>`` holds the faces: an INT64 primary key ``key`` made from
the face's image sha256 and face number (:func:`face_key`), ``identity``, ``image_sha256``,
``face``, ``source``, ``added`` (nanoseconds, for enrolment order) and ``vector`` (FLOAT_VECTOR of
the gallery's dim, metric COSINE, so a hit's "distance" is its cosine, higher is nearer).
``<name>_meta`` holds one row, the gallery's :class:`GalleryInfo` as JSON: a collection without
it is not a facezoo gallery and is never opened as one. ``<name>`` is the gallery folder's
name when Milvus accepts it (ASCII letters, digits and underscores, not starting with a digit);
any other name is mapped by :func:`collection_name` to a valid one plus 8 hex digits of its
sha256 (``my-gallery`` -> ``my_gallery_<hash>``), so that two names never share a collection.

Index: HNSW (M 16, efConstruction 128, ef 1024 or the number of faces asked for). Milvus Lite 3 builds it with FAISS for each sealed segment and searches the rows not yet
sealed by brute force; a server builds it with Knowhere. A server that refuses HNSW (Zilliz Cloud
offers only AUTOINDEX) gets AUTOINDEX. Every collection is created with consistency level
"Strong": a search, count or query sees every insert and delete acknowledged before it.

What is and is not atomic (Milvus has no multi-statement transactions):

* ``add`` looks the whole batch up by key before writing anything (a primary-key lookup: a
  filter over another field scans every row not yet sealed, seconds per call at a few ten
  thousand faces), writes in as few upsert calls as the request size allows
  (:data:`INSERT_ROWS` per call), and on any failure deletes every key it was writing before
  raising: a failed add leaves nothing behind, unless Milvus also refuses that delete (the error
  then says so and names the identities to remove). A reader may see the first part of a large
  add before the rest, or before a rollback.
* A face cannot be enrolled twice: its key is its image and face, and the write is an upsert
  (Milvus has no unique constraint, and a plain insert of a key already there may leave both rows
  on a server). Two processes adding the same image at the same moment can both pass the check;
  the later write replaces the earlier one. After its write each add reads its keys back, and
  one that finds another writer's row there deletes the rest of its own and raises
  DuplicateFace. If the earlier add had already read its rows back, both succeed and the image
  is enrolled once, as the later writer's identity.
* ``remove`` is one delete by filter: Milvus applies it per shard, so a crash can leave some of
  the identity's faces; removing it again finishes the job.
* Creating a gallery writes its faces collection first and its record last, so a gallery whose
  creation failed half-way is never opened (and is dropped when possible).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import threading
import time
from pathlib import Path

import numpy as np

from facezoo.gallery.errors import (CorruptGallery, DuplicateFace, GalleryError, GalleryNotFound,
                                    IdentityNotFound)
from facezoo.gallery.info import GalleryInfo
from facezoo.gallery.store import Face, Hit, checked_batch, normalized

SCHEME = "milvus:"
TOKEN_VARIABLE = "MILVUS_TOKEN"
META_SUFFIX = "_meta"
INFO_KEY = "facezoo.gallery"  # the meta collection's one row
MAX_NAME = 255  # Milvus's limit on a collection name
METRIC = "COSINE"
#: HNSW settings: graph degree 16, candidate list 128 while building (EF_SEARCH while searching)
HNSW = {"M": 16, "efConstruction": 128}
#: measured at 1M synthetic 512-d faces through Milvus Lite (recall@1 against exact search, 128
#: queries): ef 64 gave 0.633, 256 0.977, 1024 1.0, each at about 0.8-1 s a query (benchmarks/results)
EF_SEARCH = 1024
#: VARCHAR limits in bytes (Milvus counts UTF-8 bytes); identity names are at most 256 characters
MAX_BYTES = {"identity": 1024, "image_sha256": 128, "source": 8192}
INSERT_ROWS = 4096  # rows per upsert call: 512-d float32 faces stay near 9 MB, under gRPC's 64 MB
INDEX_WAIT_S = 3600.0  # how long a Milvus Lite checkpoint waits for its segment indexes
FLUSH_ROWS = 16384  # rows written before a checkpoint seals them (Milvus discourages a flush per write)
PAGE = 16384  # rows per query page (Milvus's largest limit), and keys per lookup
MAX_TOP_K = 16384  # Milvus's largest search limit
QUERIES_PER_CALL = 1024
FIELDS = ("key", "identity", "image_sha256", "face", "source", "added", "vector")

_VALID_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def collection_name(gallery: str) -> str:
    """The Milvus collection for a gallery name: itself when valid, else a valid name plus a hash of it."""
    if not gallery:
        raise GalleryError("a Milvus gallery needs a name (its folder's name); got an empty one")
    if _VALID_NAME.match(gallery):
        name = gallery
    else:
        base = re.sub(r"[^A-Za-z0-9_]", "_", gallery)
        if base[0].isdigit():
            base = "g_" + base
        name = f"{base}_{hashlib.sha256(gallery.encode('utf-8')).hexdigest()[:8]}"
    if len(name) + len(META_SUFFIX) > MAX_NAME:
        raise GalleryError(f"gallery name {gallery!r}: its Milvus collection name {name[:40]}... would have "
                           f"{len(name)} characters, and Milvus allows {MAX_NAME - len(META_SUFFIX)} (with the "
                           f"{META_SUFFIX!r} suffix of its record); choose a shorter folder name")
    return name


def face_key(image_sha256: str, face: int) -> int:
    """The primary key of one face of one image: 63 bits of sha256("<image sha256>/<face>")."""
    digest = hashlib.sha256(f"{image_sha256}/{int(face)}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def parse_uri(uri: str) -> tuple[str, bool]:
    """``milvus:...`` -> (what MilvusClient connects to, whether it is a Milvus Lite file)."""
    if not uri.startswith(SCHEME):
        raise GalleryError(f"--store {uri}: not a Milvus store URI (milvus:PATH.db or milvus:http://HOST:PORT)")
    target = uri[len(SCHEME):]
    if target.startswith(("http://", "https://")):
        if len(target.split("://", 1)[1]) == 0:
            raise GalleryError(f"--store {uri}: no host after {target}")
        return target, False
    if not target.endswith(".db") or target == ".db":
        raise GalleryError(f"--store {uri}: expected milvus:PATH.db (a Milvus Lite file) or "
                           f"milvus:http(s)://HOST:PORT (a Milvus server)")
    return os.path.abspath(os.path.expanduser(target)), True


def _literal(value: str) -> str:
    """A string as a Milvus filter literal (double quotes, backslash escapes)."""
    return json.dumps(value, ensure_ascii=False)


def _pymilvus():
    try:
        import pymilvus
    except ImportError as exc:
        raise GalleryError(f"Milvus galleries need pymilvus (with Milvus Lite for milvus:PATH.db): "
                           f"pip install 'facezoo[milvus]' ({exc})") from None
    return pymilvus


@contextlib.contextmanager
def _calls(where: str, what: str):
    """Milvus's errors as GalleryError naming the store and what was being done."""
    from pymilvus.exceptions import MilvusException

    try:
        yield
    except MilvusException as exc:
        raise GalleryError(f"{where}: {what} failed: {getattr(exc, 'message', None) or exc}") from None


class MilvusStore:
    """A gallery in Milvus (Lite or a server): a faces collection and a one-row record collection."""

    def __init__(self, uri: str, gallery: str, client, info: GalleryInfo, index_type: str):
        self.uri = uri
        self.gallery = gallery
        self.name = collection_name(gallery)
        self.meta = self.name + META_SUFFIX
        self.info = info
        self.index_type = index_type
        self._client = client
        self._lock = threading.RLock()  # one writer per store: a server's threads share it
        self.lite = parse_uri(uri)[1]
        self.ef_search = EF_SEARCH  # HNSW's search list: larger finds more of the true nearest, slower
        self._unflushed = 0  # rows written since the last flush

    @property
    def where(self) -> str:
        return f"{self.uri} collection {self.name}"

    # -------------------------------------------------------------------------- create / open --
    @classmethod
    def _connect(cls, uri: str, create: bool):
        _pymilvus()
        from pymilvus import MilvusClient
        from pymilvus.exceptions import MilvusException

        target, lite = parse_uri(uri)
        if lite:
            if not create and not os.path.exists(target):
                raise GalleryNotFound(f"{uri}: no Milvus Lite database at {target}")
            if os.path.isfile(target):
                raise GalleryError(f"{uri}: {target} is a file; Milvus Lite 3 keeps a database in a directory "
                                   f"(a Milvus Lite 2 file must be exported and migrated first)")
            if create:
                Path(target).parent.mkdir(parents=True, exist_ok=True)
        try:
            return MilvusClient(uri=target, token=os.environ.get(TOKEN_VARIABLE, "") if not lite else "")
        except MilvusException as exc:
            why = getattr(exc, "message", None) or str(exc)
            if lite:
                raise GalleryError(f"{uri}: cannot open the Milvus Lite database {target} ({why}); Milvus Lite lets "
                                   f"one process at a time open a file: is another facezoo using it? (several "
                                   f"processes need a Milvus server: milvus:http://HOST:19530)") from None
            raise GalleryError(f"{uri}: cannot connect to Milvus at {target} ({why}); is the server up, and "
                               f"{TOKEN_VARIABLE} set if it needs a token?") from None

    @classmethod
    def create(cls, uri: str, collection: str, info: GalleryInfo) -> "MilvusStore":
        name = collection_name(collection)
        meta = name + META_SUFFIX
        client = cls._connect(uri, create=True)
        where = f"{uri} collection {name}"
        try:
            with _calls(where, "checking for an existing collection"):
                taken = [n for n in (name, meta) if client.has_collection(n)]
            if taken:
                raise GalleryError(f"{uri}: collection {taken[0]} already exists (gallery {collection!r} maps to "
                                   f"{name}, and its record to {meta}); a new gallery needs an unused name "
                                   f"(open it with Gallery.open on its folder, or drop the collection)")
            try:
                index_type = cls._create_faces(client, name, info.dim, where)
                cls._create_meta(client, meta, info, where)
            except BaseException:
                for made in (meta, name):  # neither existed before: drop what this call made
                    with contextlib.suppress(Exception):
                        if client.has_collection(made):
                            client.drop_collection(made)
                raise
        except BaseException:
            client.close()
            raise
        return cls(uri, collection, client, info, index_type)

    @staticmethod
    def _create_faces(client, name: str, dim: int, where: str) -> str:
        """The faces collection, indexed (HNSW, else AUTOINDEX) and loaded; returns the index type."""
        from pymilvus import DataType
        from pymilvus.exceptions import MilvusException

        schema = client.create_schema(auto_id=False, enable_dynamic_field=False,
                                      description="facezoo gallery faces")
        schema.add_field("key", DataType.INT64, is_primary=True)
        schema.add_field("identity", DataType.VARCHAR, max_length=MAX_BYTES["identity"])
        schema.add_field("image_sha256", DataType.VARCHAR, max_length=MAX_BYTES["image_sha256"])
        schema.add_field("face", DataType.INT64)
        schema.add_field("source", DataType.VARCHAR, max_length=MAX_BYTES["source"])
        schema.add_field("added", DataType.INT64)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=int(dim))
        with _calls(where, "creating the faces collection"):
            client.create_collection(name, schema=schema, consistency_level="Strong")
        index_type = "HNSW"
        params = client.prepare_index_params()
        params.add_index(field_name="vector", index_type="HNSW", metric_type=METRIC, params=dict(HNSW))
        try:
            client.create_index(name, params)
        except MilvusException:
            index_type = "AUTOINDEX"  # Zilliz Cloud: no HNSW to choose
            params = client.prepare_index_params()
            params.add_index(field_name="vector", index_type="AUTOINDEX", metric_type=METRIC)
            with _calls(where, "indexing the faces (HNSW refused, then AUTOINDEX)"):
                client.create_index(name, params)
        with _calls(where, "loading the faces collection"):
            client.load_collection(name)
        return index_type

    @staticmethod
    def _create_meta(client, meta: str, info: GalleryInfo, where: str) -> None:
        """The record collection (Milvus wants a vector field in every collection: a 2-d placeholder)."""
        from pymilvus import DataType

        schema = client.create_schema(auto_id=False, enable_dynamic_field=False,
                                      description="facezoo gallery record")
        schema.add_field("key", DataType.VARCHAR, is_primary=True, max_length=64)
        schema.add_field("value", DataType.VARCHAR, max_length=65535)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=2)
        params = client.prepare_index_params()
        params.add_index(field_name="vector", index_type="FLAT", metric_type="L2")
        with _calls(where, "creating the gallery's record collection"):
            client.create_collection(meta, schema=schema, index_params=params, consistency_level="Strong")
            client.insert(meta, [{"key": INFO_KEY, "value": info.to_json(), "vector": [0.0, 0.0]}])

    @classmethod
    def open(cls, uri: str, collection: str) -> "MilvusStore":
        name = collection_name(collection)
        meta = name + META_SUFFIX
        client = cls._connect(uri, create=False)
        where = f"{uri} collection {name}"
        try:
            info, index_type = cls._read(client, uri, collection, name, meta, where)
        except BaseException:
            client.close()
            raise
        return cls(uri, collection, client, info, index_type)

    @staticmethod
    def _read(client, uri: str, collection: str, name: str, meta: str, where: str) -> tuple[GalleryInfo, str]:
        with _calls(where, "looking for the gallery"):
            has_faces, has_meta = client.has_collection(name), client.has_collection(meta)
        if not has_faces:
            raise GalleryNotFound(f"{uri}: no collection {name} (gallery {collection!r}); create the gallery with "
                                  f"`facezoo gallery create FOLDER --store {uri}`")
        not_ours = f"{uri}: collection {name} is not a facezoo gallery"
        if not has_meta:
            raise GalleryNotFound(f"{not_ours} (it has no {meta} record collection)")
        with _calls(where, "reading the gallery's record"):
            meta_fields = {field["name"] for field in client.describe_collection(meta).get("fields", [])}
            if meta_fields != {"key", "value", "vector"}:
                raise GalleryNotFound(f"{not_ours} ({meta} has fields {sorted(meta_fields)}, not a facezoo record's)")
            client.load_collection(meta)  # Milvus Lite forgets what was loaded when its process exits
            rows = client.query(meta, ids=[INFO_KEY], output_fields=["value"])
        if not rows:
            raise GalleryNotFound(f"{not_ours} ({meta} holds no {INFO_KEY} record)")
        info = GalleryInfo.from_json(rows[0]["value"], f"{uri} collection {meta}")
        with _calls(where, "reading the faces collection's schema"):
            described = client.describe_collection(name)
        fields = {field["name"]: field for field in described.get("fields", [])}
        if set(fields) != set(FIELDS):
            raise CorruptGallery(f"{where}: fields {sorted(fields)}, not a facezoo gallery's {sorted(FIELDS)}")
        if described.get("auto_id"):
            raise CorruptGallery(f"{where}: its keys are issued by Milvus (auto_id), not made from the image and "
                                 f"face as a facezoo gallery's are; create the gallery again")
        dim = int((fields["vector"].get("params") or {}).get("dim", -1))
        if dim != info.dim:
            raise CorruptGallery(f"{where}: {dim}-d vectors, but its record says {info.dim}-d")
        with _calls(where, "loading the faces collection"):
            client.load_collection(name)
            index = client.describe_index(name, "vector") or {}
        return info, str(index.get("index_type", "")) or "AUTOINDEX"

    # ------------------------------------------------------------------------------- reading --
    def count(self) -> int:
        with _calls(self.where, "counting faces"):
            rows = self._client.query(self.name, filter="", output_fields=["count(*)"])
        return int(rows[0]["count(*)"])

    def _pages(self, condition: str, fields: list[str]):
        """Every row matching ``condition``, a page at a time (Milvus caps one query; keys are not in
        insert order, so pages come from Milvus's own iterator, which walks the primary key)."""
        with _calls(self.where, "reading faces"):
            pages = self._client.query_iterator(self.name, batch_size=PAGE, filter=condition,
                                                output_fields=["key", *fields])
        try:
            while True:
                with _calls(self.where, "reading faces"):
                    rows = pages.next()
                if not rows:
                    return
                yield from rows
        finally:
            with contextlib.suppress(Exception):
                pages.close()

    def identities(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for row in self._pages("", ["identity"]):
            counts[row["identity"]] = counts.get(row["identity"], 0) + 1
        return dict(sorted(counts.items()))

    def faces_of(self, identity: str) -> list[Face]:
        """The identity's faces in the order they were enrolled."""
        rows = sorted(self._pages(f"identity == {_literal(identity)}", ["image_sha256", "face", "source", "added"]),
                      key=lambda row: (row["added"], row["key"]))
        return [Face(identity, row["image_sha256"], int(row["face"]), row["source"]) for row in rows]

    def search(self, queries: np.ndarray, count: int) -> list[list[Hit]]:
        queries = normalized(queries, self.info.dim, "queries")
        limit = min(int(count), MAX_TOP_K)
        if limit < 1:
            return [[] for _ in range(len(queries))]
        params = {"metric_type": METRIC,
                  "params": {"ef": max(int(self.ef_search), limit)} if self.index_type == "HNSW" else {}}
        hits: list[list[Hit]] = []
        for start in range(0, len(queries), QUERIES_PER_CALL):
            # Milvus Lite: not while a checkpoint has the collection released
            with self._lock if self.lite else contextlib.nullcontext(), _calls(self.where, "searching"):
                results = self._client.search(self.name, data=queries[start : start + QUERIES_PER_CALL].tolist(),
                                              anns_field="vector", limit=limit, output_fields=["identity"],
                                              search_params=params)
            for result in results:
                # COSINE: Milvus reports the cosine itself as the "distance", best (largest) first
                found = [Hit(hit["entity"]["identity"], float(hit["distance"])) for hit in result]
                hits.append(sorted(found, key=lambda hit: -hit.cosine))
        return hits

    # ------------------------------------------------------------------------------- writing --
    def add(self, faces: list[Face], vectors: np.ndarray) -> int:
        vectors = checked_batch(faces, vectors, self.info.dim)
        if not faces:
            return 0
        for face in faces:
            for field in MAX_BYTES:
                if len(getattr(face, field).encode("utf-8")) > MAX_BYTES[field]:
                    raise GalleryError(f"{face.source[:200]}: its {field} is longer than the {MAX_BYTES[field]} bytes "
                                       f"a Milvus gallery keeps; nothing was added")
        keys = [face_key(face.image_sha256, face.face) for face in faces]
        added = time.time_ns()
        rows = [{"key": keys[i], "identity": f.identity, "image_sha256": f.image_sha256, "face": int(f.face),
                 "source": f.source, "added": added + i, "vector": vectors[i]} for i, f in enumerate(faces)]
        with self._lock:
            self._refuse_duplicates(faces, keys)
            self._write(faces, keys, rows)
            self._refuse_raced(faces, keys)
            self._unflushed += len(faces)
        return len(faces)

    def checkpoint(self, force: bool = False) -> bool:
        """Seal what was written since the last flush once it is :data:`FLUSH_ROWS` rows or more
        (or ``force``), so that Milvus indexes it: rows not yet sealed are searched by brute force,
        and Milvus Lite 3 does that slowly (2 s a query at 50k × 512-d here, 22 ms once indexed).
        Milvus Lite also searches a sealed segment by its index only once the collection is loaded
        again, so a Lite store reloads it (a server hands sealed segments over by itself)."""
        with self._lock:
            if self._unflushed == 0 or (not force and self._unflushed < FLUSH_ROWS):
                return False
            with _calls(self.where, "sealing the faces written (flush)"):
                self._client.flush(self.name)
            self._unflushed = 0
            if self.lite:
                self._wait_indexed()
                with _calls(self.where, "loading the faces collection again"):
                    self._client.release_collection(self.name)
                    self._client.load_collection(self.name)
            return True

    def pending_index_rows(self) -> int:
        """Rows sealed but not yet indexed (Milvus builds segment indexes in the background)."""
        with _calls(self.where, "describing the index"):
            described = self._client.describe_index(self.name, "vector") or {}
        return int(described.get("pending_index_rows", 0) or 0)

    def _wait_indexed(self) -> None:
        deadline = time.monotonic() + INDEX_WAIT_S
        while self.pending_index_rows() > 0:
            if time.monotonic() > deadline:
                raise GalleryError(f"{self.where}: Milvus has not finished indexing the faces after "
                                   f"{INDEX_WAIT_S:.0f} s; searches stay correct but slow until it does")
            time.sleep(0.5)

    def _enrolled(self, keys: list[int]) -> dict[int, dict]:
        """The faces already in the gallery under any of these keys."""
        found: dict[int, dict] = {}
        for start in range(0, len(keys), PAGE):
            with _calls(self.where, "looking for faces already enrolled"):
                rows = self._client.query(self.name, ids=keys[start : start + PAGE],
                                          output_fields=["key", "identity", "image_sha256", "face", "source"])
            found.update((int(row["key"]), row) for row in rows)
        return found

    def _refuse_duplicates(self, faces: list[Face], keys: list[int]) -> None:
        enrolled = self._enrolled(keys)
        for face, key in zip(faces, keys):
            row = enrolled.get(key)
            if row is not None:
                raise DuplicateFace(f"{face.source}: this image (sha256 {row['image_sha256'][:12]}…, face {row['face']}) "
                                    f"is already enrolled as {row['identity']!r} (from {row['source']}); nothing was "
                                    f"added")

    def _write(self, faces: list[Face], keys: list[int], rows: list[dict]) -> None:
        """Upsert every row, or none: on a failure, delete every key of the batch and raise."""
        try:
            for start in range(0, len(rows), INSERT_ROWS):
                self._client.upsert(self.name, rows[start : start + INSERT_ROWS])
        except Exception as exc:
            why = getattr(exc, "message", None) or str(exc)
            # which calls took effect is unknown; the keys were checked free, so every one of them is ours
            self._roll_back(faces, keys, f"adding {len(faces)} faces failed ({why})")
            raise GalleryError(f"{self.where}: adding {len(faces)} faces failed ({why}); nothing was added") from None

    def _roll_back(self, faces: list[Face], keys: list[int], what: str) -> None:
        try:
            for start in range(0, len(keys), PAGE):
                self._client.delete(self.name, ids=keys[start : start + PAGE])
        except Exception as exc:  # MilvusException, or the connection's own
            names = sorted({face.identity for face in faces})
            raise GalleryError(f"{self.where}: {what}, and deleting the part already written failed too "
                               f"({getattr(exc, 'message', None) or exc}): some faces of {', '.join(map(repr, names))} "
                               f"may be in the gallery; remove those identities and add them again") from None

    def _refuse_raced(self, faces: list[Face], keys: list[int]) -> None:
        """After the write: a key holding another writer's face means that writer enrolled the image too."""
        enrolled = self._enrolled(keys)
        for face, key in zip(faces, keys):
            row = enrolled.get(key)
            if row is not None and (row["identity"], row["source"]) != (face.identity, face.source):
                message = (f"{face.source}: this image (sha256 {face.image_sha256[:12]}…, face {face.face}) was "
                           f"enrolled as {row['identity']!r} (from {row['source']}) by another writer at the same "
                           f"time; nothing was added")
                mine = [(f, k) for f, k in zip(faces, keys) if enrolled.get(k, {}).get("source") == f.source
                        and enrolled[k]["identity"] == f.identity]
                self._roll_back([f for f, _ in mine], [k for _, k in mine], message)
                raise DuplicateFace(message)

    def remove(self, identity: str) -> int:
        condition = f"identity == {_literal(identity)}"
        with self._lock:
            with _calls(self.where, f"counting the faces of {identity!r}"):
                rows = self._client.query(self.name, filter=condition, output_fields=["count(*)"])
            count = int(rows[0]["count(*)"]) if rows else 0
            if count == 0:
                raise IdentityNotFound(f"{self.where}: no identity {identity!r} in the gallery")
            with _calls(self.where, f"removing {identity!r}"):
                self._client.delete(self.name, filter=condition)
        return count

    def save_info(self, info: GalleryInfo) -> None:
        with self._lock:
            with _calls(f"{self.uri} collection {self.meta}", "saving the gallery's record"):
                self._client.upsert(self.meta, [{"key": INFO_KEY, "value": info.to_json(), "vector": [0.0, 0.0]}])
            self.info = info

    def close(self) -> None:
        """Seals what this store wrote (a process's writes are indexed by the time it is done), then disconnects."""
        with self._lock:
            with contextlib.suppress(Exception):
                if self._unflushed:
                    self._client.flush(self.name)
            with contextlib.suppress(Exception):
                self._client.close()


__all__ = ["INFO_KEY", "META_SUFFIX", "MilvusStore", "collection_name", "face_key", "parse_uri"]
