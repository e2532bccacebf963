"""The embedded gallery store: a folder, no server.

* ``gallery.sqlite`` (WAL mode) is the truth: the gallery's record, identities, and every face
  (identity, image sha256, face index, source, vector as float16). An add or remove is one SQLite
  transaction, so a process killed in the middle of a bulk add leaves every committed identity
  and nothing of the rest; readers in other processes query while a writer adds (WAL).
* ``index-<generation>.npz`` is a snapshot of the search index (:mod:`facezoo.gallery.index`: sign
  bits scanned for candidates, float16 vectors to rank them by cosine) with ``index.json`` naming
  it, its size, sha256, and how far it reaches into the database (the last face key and the last
  removal). Opening loads the snapshot
  and replays what came after it from the database, so a snapshot is written only now and then
  (:data:`CHECKPOINT_SHARE`), never on every add. A snapshot is written to a new file and
  published by replacing ``index.json``; a crash at any moment leaves the old or the new one.
* One writer at a time (a file lock); an open store sees other processes' adds and removals at
  its next search (:meth:`FolderStore.refresh`).

A gallery of up to :data:`~facezoo.gallery.index.EXACT_UP_TO` faces is searched exactly; a larger
one re-ranks :data:`~facezoo.gallery.index.RERANK` candidates per query (more for a model of
fewer than 512 dimensions: :func:`~facezoo.gallery.index.rerank_candidates`).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facezoo.gallery.errors import (CorruptGallery, DuplicateFace, GalleryError, GalleryNotFound,
                                    IdentityNotFound)
from facezoo.gallery.index import EXACT_UP_TO, RERANK, BinaryRerankIndex
from facezoo.gallery.info import GalleryInfo
from facezoo.gallery.store import Face, Hit, checked_batch, normalized

DATABASE = "gallery.sqlite"
POINTER = "index.json"
LOCK = ".write.lock"
INDEX_SETTINGS = {"index": "sign bits (FAISS IndexBinaryFlat) + float16 re-rank", "rerank": RERANK,
                  "exact_up_to": EXACT_UP_TO}
#: a snapshot is written when the faces added or removed since the last one reach this share of
#: the gallery (or the gallery is small): replaying them from SQLite on open stays cheap
CHECKPOINT_SHARE = 0.05
SMALL_GALLERY = 50_000
WRITE_TIMEOUT_S = 60.0
SQL_CHUNK = 900  # keys per IN (...) list

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS identities (id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL);
CREATE TABLE IF NOT EXISTS faces (
    key INTEGER PRIMARY KEY AUTOINCREMENT,
    identity INTEGER NOT NULL REFERENCES identities(id),
    image_sha256 TEXT NOT NULL,
    face INTEGER NOT NULL,
    source TEXT NOT NULL,
    vector BLOB NOT NULL,
    UNIQUE (image_sha256, face)
);
CREATE INDEX IF NOT EXISTS faces_by_identity ON faces(identity);
CREATE TABLE IF NOT EXISTS removed (seq INTEGER PRIMARY KEY AUTOINCREMENT, key INTEGER NOT NULL);
"""


@dataclass(frozen=True)
class Snapshot:
    """What ``index.json`` says of the published index file."""

    file: str
    bytes: int
    sha256: str
    max_key: int  # every face with a key up to this is in the file...
    removed_seq: int  # ...less the removals up to this one
    count: int
    settings: dict

    @classmethod
    def read(cls, folder: Path) -> "Snapshot | None":
        path = folder / POINTER
        if not path.exists():
            return None
        try:
            return cls(**json.loads(path.read_text(encoding="utf-8")))
        except (OSError, TypeError, ValueError) as exc:
            raise CorruptGallery(f"{path}: unreadable ({exc}); the faces are safe in {folder / DATABASE}: "
                                 f"run `facezoo gallery reindex {folder}` to rebuild the index") from None


class FolderStore:
    """A gallery in a folder: SQLite for the faces, a sign-bit + float16 index for the search."""

    def __init__(self, folder: Path, info: GalleryInfo, connection: sqlite3.Connection):
        self.folder = Path(folder)
        self.info = info
        self._db = connection
        self._lock = threading.RLock()  # one connection and index, shared by a server's threads
        self._index = BinaryRerankIndex(info.dim)
        self._max_key = 0
        self._removed_seq = 0
        self._snapshot: Snapshot | None = None
        self._seen: tuple[int, int] | None = None  # (data_version, total_changes) at the last refresh

    # -------------------------------------------------------------------------- create / open --
    @classmethod
    def create(cls, folder: Path, info: GalleryInfo) -> "FolderStore":
        folder = Path(folder)
        if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
            raise GalleryError(f"{folder}: already exists; a new gallery needs a new (or empty) folder")
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / f".{DATABASE}.partial"
        partial.unlink(missing_ok=True)
        connection = sqlite3.connect(partial)
        try:
            connection.executescript(_SCHEMA)
            connection.execute("INSERT INTO meta VALUES ('info', ?)", (info.to_json(),))
            connection.commit()
        finally:
            connection.close()
        os.replace(partial, folder / DATABASE)  # the gallery exists once its database does
        return cls.open(folder)

    @classmethod
    def open(cls, folder: Path, load_snapshot: bool = True) -> "FolderStore":
        """The gallery in ``folder``; ``load_snapshot=False`` skips the index file (to rebuild it)."""
        folder = Path(folder)
        database = folder / DATABASE
        if not database.is_file():
            raise GalleryNotFound(f"{folder}: no gallery here (no {DATABASE}); create one with "
                                  f"`facezoo gallery create {folder} --model MODEL`")
        try:
            connection = sqlite3.connect(database, check_same_thread=False, timeout=WRITE_TIMEOUT_S,
                                         isolation_level=None)  # transactions are explicit: BEGIN IMMEDIATE
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            row = connection.execute("SELECT value FROM meta WHERE key = 'info'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise CorruptGallery(f"{database}: not a readable gallery database ({exc})") from None
        if row is None:
            raise CorruptGallery(f"{database}: the gallery's record is missing")
        store = cls(folder, GalleryInfo.from_json(row[0], str(database)), connection)
        if load_snapshot:
            store._load_snapshot()
            store.refresh()
        return store

    def _load_snapshot(self) -> None:
        from facezoo.downloader.verify import sha256_file

        snapshot = Snapshot.read(self.folder)
        if snapshot is None:
            return
        path = self.folder / snapshot.file
        recover = (f"the faces are safe in {self.folder / DATABASE}: run `facezoo gallery reindex "
                   f"{self.folder}` to rebuild the index from them")
        if not path.is_file() or path.stat().st_size != snapshot.bytes or sha256_file(path) != snapshot.sha256:
            raise CorruptGallery(f"{path}: missing or damaged (its size or sha256 is not what {POINTER} "
                                 f"recorded); {recover}")
        try:
            index = BinaryRerankIndex.load(path)
        except (OSError, ValueError, KeyError) as exc:  # numpy's and zipfile's errors on a bad file
            raise CorruptGallery(f"{path}: cannot be loaded ({exc}); {recover}") from None
        if len(index) != snapshot.count or index.ndim != self.info.dim:
            raise CorruptGallery(f"{path}: not the index {POINTER} describes; {recover}")
        self._index = index
        self._max_key, self._removed_seq, self._snapshot = snapshot.max_key, snapshot.removed_seq, snapshot
        self._seen = None

    # ------------------------------------------------------------------------------- reading --
    def refresh(self) -> int:
        """Bring the in-memory index up to the database: faces added and removed since (by any
        process). Returns how many changes were applied."""
        with self._lock:
            # unchanged since the last refresh: no other connection committed (data_version) and
            # this one wrote nothing (total_changes); saves two queries on every search
            seen = (self._db.execute("PRAGMA data_version").fetchone()[0], self._db.total_changes)
            if seen == self._seen:
                return 0
            self._db.execute("BEGIN")  # both reads from one snapshot of the database
            try:
                rows = self._db.execute("SELECT key, vector FROM faces WHERE key > ? ORDER BY key",
                                        (self._max_key,)).fetchall()
                removed = self._db.execute("SELECT seq, key FROM removed WHERE seq > ? ORDER BY seq",
                                           (self._removed_seq,)).fetchall()
            finally:
                self._db.execute("COMMIT")
            if removed:  # first: a key removed and re-added cannot happen (keys are never reused)
                keys = np.array([key for _, key in removed], np.uint64)
                present = keys[self._index.contains(keys)]
                if len(present):
                    self._index.remove(present)
                self._removed_seq = int(removed[-1][0])
            if rows:
                keys = np.array([key for key, _ in rows], np.uint64)
                vectors = np.frombuffer(b"".join(blob for _, blob in rows), np.float16).reshape(len(rows), -1)
                self._index.add(keys, vectors.astype(np.float32))
                self._max_key = int(keys[-1])
            self._seen = seen
            return len(rows) + len(removed)

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM faces").fetchone()[0])

    def identities(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT i.name, COUNT(f.key) FROM identities i JOIN faces f ON f.identity = i.id "
                                    "GROUP BY i.id ORDER BY i.name").fetchall()
        return {name: int(n) for name, n in rows}

    def faces_of(self, identity: str) -> list[Face]:
        with self._lock:
            rows = self._db.execute("SELECT f.image_sha256, f.face, f.source FROM faces f JOIN identities i "
                                    "ON f.identity = i.id WHERE i.name = ? ORDER BY f.key", (identity,)).fetchall()
        return [Face(identity, sha, int(face), source) for sha, face, source in rows]

    def search(self, queries: np.ndarray, count: int) -> list[list[Hit]]:
        queries = normalized(queries, self.info.dim, "queries")
        with self._lock:
            self.refresh()
            if len(self._index) == 0:
                return [[] for _ in range(len(queries))]
            keys, cosines = self._index.search(queries, count)
            names = self._names_of({int(k) for k in keys.reshape(-1)})
        return [[Hit(names[int(k)], float(c)) for k, c in zip(row, scores) if int(k) in names]
                for row, scores in zip(keys, cosines)]

    def _names_of(self, keys: set[int]) -> dict[int, str]:
        ordered = sorted(keys)
        names: dict[int, str] = {}
        for start in range(0, len(ordered), SQL_CHUNK):
            chunk = ordered[start : start + SQL_CHUNK]
            rows = self._db.execute(f"SELECT f.key, i.name FROM faces f JOIN identities i ON f.identity = i.id "
                                    f"WHERE f.key IN ({','.join('?' * len(chunk))})", chunk).fetchall()
            names.update({int(key): name for key, name in rows})
        return names  # a key another process removed since our refresh is simply not there

    # ------------------------------------------------------------------------------- writing --
    def _write_lock(self):
        from filelock import FileLock, Timeout

        lock = FileLock(str(self.folder / LOCK), timeout=WRITE_TIMEOUT_S)
        try:
            lock.acquire()
        except Timeout:
            raise GalleryError(f"{self.folder}: another process has been writing to the gallery for "
                               f"{WRITE_TIMEOUT_S:.0f} s; try again when it is done") from None
        return lock

    @contextlib.contextmanager
    def _transaction(self):
        """One SQLite write transaction: committed whole, or rolled back on any error."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def add(self, faces: list[Face], vectors: np.ndarray) -> int:
        vectors = checked_batch(faces, vectors, self.info.dim)
        if not faces:
            return 0
        lock = self._write_lock()
        try:
            with self._lock:
                with self._transaction():
                    self._refuse_duplicates(faces)
                    ids = self._identity_ids({face.identity for face in faces})
                    blobs = vectors.astype(np.float16)
                    self._db.executemany(
                        "INSERT INTO faces (identity, image_sha256, face, source, vector) VALUES (?, ?, ?, ?, ?)",
                        [(ids[f.identity], f.image_sha256, int(f.face), f.source, blobs[i].tobytes())
                         for i, f in enumerate(faces)])
                self.refresh()
        finally:
            lock.release()
        return len(faces)

    def _refuse_duplicates(self, faces: list[Face]) -> None:
        wanted = {(face.image_sha256, face.face): face for face in faces}
        shas = sorted({sha for sha, _ in wanted})
        for start in range(0, len(shas), SQL_CHUNK):
            chunk = shas[start : start + SQL_CHUNK]
            rows = self._db.execute(
                f"SELECT f.image_sha256, f.face, f.source, i.name FROM faces f JOIN identities i ON f.identity = i.id "
                f"WHERE f.image_sha256 IN ({','.join('?' * len(chunk))})", chunk).fetchall()
            for sha, index, source, name in rows:
                face = wanted.get((sha, int(index)))
                if face is not None:
                    raise DuplicateFace(f"{face.source}: this image (sha256 {sha[:12]}…, face {index}) is already "
                                        f"enrolled as {name!r} (from {source}); nothing was added")

    def _identity_ids(self, names: set[str]) -> dict[str, int]:
        self._db.executemany("INSERT OR IGNORE INTO identities (name) VALUES (?)", [(n,) for n in sorted(names)])
        ids = {}
        for name in names:
            ids[name] = int(self._db.execute("SELECT id FROM identities WHERE name = ?", (name,)).fetchone()[0])
        return ids

    def remove(self, identity: str) -> int:
        lock = self._write_lock()
        try:
            with self._lock:
                with self._transaction():
                    row = self._db.execute("SELECT id FROM identities WHERE name = ?", (identity,)).fetchone()
                    if row is None:
                        raise IdentityNotFound(f"{self.folder}: no identity {identity!r} in the gallery")
                    keys = [k for (k,) in self._db.execute("SELECT key FROM faces WHERE identity = ?", row)]
                    self._db.executemany("INSERT INTO removed (key) VALUES (?)", [(k,) for k in keys])
                    self._db.execute("DELETE FROM faces WHERE identity = ?", row)
                    self._db.execute("DELETE FROM identities WHERE id = ?", row)
                self.refresh()
        finally:
            lock.release()
        return len(keys)

    def save_info(self, info: GalleryInfo) -> None:
        lock = self._write_lock()
        try:
            with self._lock:
                self._db.execute("UPDATE meta SET value = ? WHERE key = 'info'", (info.to_json(),))
                self.info = info
        finally:
            lock.release()

    # ----------------------------------------------------------------------------- snapshots --
    def pending(self) -> int:
        """Faces added or removed since the published snapshot (what an open has to replay)."""
        snapshot = self._snapshot
        with self._lock:
            added = self._db.execute("SELECT COUNT(*) FROM faces WHERE key > ?",
                                     (snapshot.max_key if snapshot else 0,)).fetchone()[0]
            removed = self._db.execute("SELECT COUNT(*) FROM removed WHERE seq > ?",
                                       (snapshot.removed_seq if snapshot else 0,)).fetchone()[0]
        return int(added) + int(removed)

    def checkpoint(self, force: bool = False) -> bool:
        """Publish a snapshot of the index when enough has changed since the last (or ``force``)."""
        pending = self.pending()
        if pending == 0 and not force:
            return False
        if not force and len(self._index) > SMALL_GALLERY and pending < CHECKPOINT_SHARE * len(self._index):
            return False
        lock = self._write_lock()
        try:
            with self._lock:
                self.refresh()
                self._publish()
        finally:
            lock.release()
        return True

    def _publish(self, generation: int | None = None) -> None:
        from facezoo.downloader.verify import sha256_file

        if generation is None:
            generation = _generation(self._snapshot.file) + 1 if self._snapshot else 1
        name = f"index-{generation}.npz"
        partial = self.folder / f".{name}.partial"
        self._index.save(partial)
        with open(partial, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(partial, self.folder / name)
        snapshot = Snapshot(file=name, bytes=(self.folder / name).stat().st_size, sha256=sha256_file(self.folder / name),
                            max_key=self._max_key, removed_seq=self._removed_seq, count=len(self._index),
                            settings=dict(INDEX_SETTINGS))
        pointer = self.folder / f".{POINTER}.partial"
        pointer.write_text(json.dumps(snapshot.__dict__, indent=1), encoding="utf-8")
        os.replace(pointer, self.folder / POINTER)
        old = self._snapshot
        self._snapshot = snapshot
        if old is not None and old.file != name:
            (self.folder / old.file).unlink(missing_ok=True)

    def reindex(self) -> int:
        """Rebuild the index from the database alone (after a damaged snapshot) and publish it."""
        lock = self._write_lock()
        try:
            with self._lock:
                self._index = BinaryRerankIndex(self.info.dim)
                self._max_key = 0
                last = self._db.execute("SELECT MAX(seq) FROM removed").fetchone()[0]
                self._removed_seq = int(last or 0)  # removed faces are gone from the database already
                self._snapshot = None
                self._seen = None
                self.refresh()
                self._publish(generation=1 + max([_generation(p.name) for p in self.folder.glob("index-*.npz")],
                                                 default=0))
                for stale in self.folder.glob("index-*.npz"):
                    if stale.name != self._snapshot.file:
                        stale.unlink(missing_ok=True)
                return len(self._index)
        finally:
            lock.release()

    @property
    def index_size(self) -> int:
        return len(self._index)

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _generation(name: str) -> int:
    """index-<generation>.npz → generation (0 for a name not of that form)."""
    try:
        return int(name.split("-", 1)[1].split(".", 1)[0])
    except (IndexError, ValueError):
        return 0


__all__ = ["CHECKPOINT_SHARE", "DATABASE", "FolderStore", "INDEX_SETTINGS", "POINTER"]
