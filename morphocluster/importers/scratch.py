"""An import's working table on disk: what it has seen and what it will write, in bounded memory.

An import of millions of objects cannot hold every id (or row) in memory. Each batch checks
its ids against this SQLite file in the import's work folder (one `IN` query per batch against
its primary key), and the good rows wait here until `Batch.commit` copies them into the
project in one transaction, so the project's write lock is held only for that copy.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

CHUNK = 900  # ids per IN query (far below SQLite's limit on variables)


class Scratch:
    """The seen ids (with where each was first found), rows to add, and updates to apply."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=OFF")  # a crash loses only this import's scratch
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.executescript("""
            CREATE TABLE seen (object_id TEXT PRIMARY KEY, at TEXT) WITHOUT ROWID;
            CREATE TABLE rows (object_id TEXT, path TEXT, width INT, height INT, meta TEXT,
                               label TEXT, status TEXT);
            CREATE TABLE updates (object_id TEXT, change TEXT);
            CREATE TABLE table_ids (object_id TEXT);
        """)
        self.n_rows = self.n_updates = 0

    def first_seen(self, ids: list[str]) -> dict[str, str]:
        """Return id -> where it was first found, for those of `ids` seen before."""
        out: dict[str, str] = {}
        for i in range(0, len(ids), CHUNK):
            part = ids[i:i + CHUNK]
            q = f"SELECT object_id, at FROM seen WHERE object_id IN ({','.join('?' * len(part))})"
            out.update(self.db.execute(q, part))
        return out

    def add_seen(self, pairs: list[tuple[str, str]]) -> None:
        self._many("INSERT INTO seen VALUES (?, ?)", pairs)

    def add_rows(self, rows: list[dict]) -> None:
        self._many("INSERT INTO rows VALUES (?, ?, ?, ?, ?, ?, ?)",
                   [(r["object_id"], r["path"], r["width"], r["height"],
                     None if r["meta"] is None else json.dumps(r["meta"], ensure_ascii=False),
                     r["imported_label"], r["imported_status"]) for r in rows])
        self.n_rows += len(rows)

    def add_update(self, object_id: str, change: dict) -> None:
        self.db.execute("INSERT INTO updates VALUES (?, ?)", (object_id, json.dumps(change)))
        self.n_updates += 1

    def iter_rows(self, import_id: int, size: int = 5000):
        """Yield lists of Object rows (dicts) in the order they were added."""
        cur = self.db.execute("SELECT * FROM rows ORDER BY rowid")
        while chunk := cur.fetchmany(size):
            yield [{"object_id": oid, "path": path, "width": w, "height": h,
                    "meta": None if meta is None else json.loads(meta), "imported_label": label,
                    "imported_status": status, "import_id": import_id}
                   for oid, path, w, h, meta, label, status in chunk]

    def iter_updates(self):
        for oid, change in self.db.execute("SELECT object_id, change FROM updates ORDER BY rowid"):
            yield oid, json.loads(change)

    # --- one EcoTaxa table's ids, to find the objects that span several rows ---------------
    def ids_start(self) -> None:
        self.db.execute("DELETE FROM table_ids")

    def ids_add(self, ids: list[str]) -> None:
        self._many("INSERT INTO table_ids VALUES (?)", [(oid,) for oid in ids])

    def ids_multi(self) -> dict[str, int]:
        """Return id -> number of rows, for the ids added since `ids_start` more than once."""
        q = "SELECT object_id, count(*) FROM table_ids GROUP BY object_id HAVING count(*) > 1"
        out = dict(self.db.execute(q))
        self.db.execute("DELETE FROM table_ids")
        return out

    def _many(self, sql: str, params) -> None:
        self.db.execute("BEGIN")
        self.db.executemany(sql, params)
        self.db.execute("COMMIT")

    def close(self) -> None:
        self.db.close()
