"""The blind votes and vote links (SQLite, `<data dir>/votes.sqlite`): one row per person, run and prompt, so a
second vote on the same prompt replaces the first; a vote link is a random token naming one run.

A run is named by its folder's name (unique, and the same after the job table is rebuilt). Who voted is kept here
only; what leaves this table (the tally in the run folder, the card) is counts.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
import time
from pathlib import Path
from typing import Any

_SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS votes (
        run TEXT NOT NULL,
        voter TEXT NOT NULL,
        prompt_key TEXT NOT NULL,
        prompt TEXT NOT NULL,
        reply_a TEXT NOT NULL,
        reply_b TEXT NOT NULL,
        tuned_is TEXT NOT NULL CHECK (tuned_is IN ('a', 'b')),
        verdict TEXT NOT NULL CHECK (verdict IN ('a', 'b', 'tie', 'both_bad')),
        via TEXT NOT NULL,
        created_at REAL NOT NULL,
        PRIMARY KEY (run, voter, prompt_key)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS shares (
        token TEXT PRIMARY KEY,
        run TEXT NOT NULL UNIQUE,
        secret TEXT NOT NULL,
        owner TEXT,
        created_at REAL NOT NULL
    )
    """,
)


def prompt_key(prompt: str) -> str:
    """A prompt's key: the same text is the same prompt, whoever sends it."""
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:32]


class VoteStore:
    """Votes and vote links in SQLite (a fresh connection per call: any thread may use it)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            for statement in _SCHEMA:
                db.execute(statement)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.row_factory = sqlite3.Row
        return db

    def record(
        self, run: str, voter: str, prompt: str, replies: tuple[str, str], tuned_is: str, verdict: str, via: str
    ) -> None:
        """Keep a vote: `replies` as shown (A, B), `tuned_is` the side the tuned answer was on. A person's second
        vote on the same prompt of the same run replaces the first."""
        with self._connect() as db:
            db.execute(
                "INSERT OR REPLACE INTO votes (run, voter, prompt_key, prompt, reply_a, reply_b, tuned_is, verdict, "
                "via, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run, voter, prompt_key(prompt), prompt, *replies, tuned_is, verdict, via, time.time()),
            )

    def votes(self, run: str) -> list[dict[str, Any]]:
        """The run's votes, oldest first."""
        with self._connect() as db:
            rows = db.execute("SELECT * FROM votes WHERE run = ? ORDER BY created_at", (run,)).fetchall()
        return [dict(row) for row in rows]

    def voted(self, run: str, voter: str) -> set[str]:
        """The prompt keys this person has voted on in this run."""
        with self._connect() as db:
            rows = db.execute("SELECT prompt_key FROM votes WHERE run = ? AND voter = ?", (run, voter)).fetchall()
        return {row["prompt_key"] for row in rows}

    def forget(self, run: str) -> None:
        """Drop a run's votes and its vote link (the run is deleted)."""
        with self._connect() as db:
            db.execute("DELETE FROM votes WHERE run = ?", (run,))
            db.execute("DELETE FROM shares WHERE run = ?", (run,))

    # --- vote links

    def share(self, run: str, owner: str | None) -> str:
        """The run's vote link token, made on first use (one link per run; Stop sharing ends it)."""
        with self._connect() as db:
            row = db.execute("SELECT token FROM shares WHERE run = ?", (run,)).fetchone()
            if row is not None:
                return row["token"]
            token = secrets.token_urlsafe(18)
            db.execute(
                "INSERT INTO shares (token, run, secret, owner, created_at) VALUES (?, ?, ?, ?, ?)",
                (token, run, secrets.token_hex(16), owner, time.time()),
            )
            return token

    def shared(self, run: str) -> str | None:
        """The run's vote link token, None when it is not shared."""
        with self._connect() as db:
            row = db.execute("SELECT token FROM shares WHERE run = ?", (run,)).fetchone()
        return row["token"] if row else None

    def unshare(self, run: str) -> None:
        with self._connect() as db:
            db.execute("DELETE FROM shares WHERE run = ?", (run,))

    def run_of(self, token: str) -> str | None:
        """The run a vote link names, None for an unknown (or ended) link."""
        if not isinstance(token, str) or not 8 <= len(token) <= 64:
            return None
        with self._connect() as db:
            row = db.execute("SELECT run FROM shares WHERE token = ?", (token,)).fetchone()
        return row["run"] if row else None

    def tuned_side(self, token: str, voter: str, prompt: str) -> str:
        """Where a vote link shows this person the tuned answer for this prompt, "a" or "b": random-looking, the same
        on every visit, and unknowable without the link's secret (which never leaves the server)."""
        with self._connect() as db:
            row = db.execute("SELECT secret FROM shares WHERE token = ?", (token,)).fetchone()
        if row is None:
            raise KeyError("no such vote link")
        digest = hmac.new(row["secret"].encode(), f"{voter}\0{prompt_key(prompt)}".encode(), hashlib.sha256).digest()
        return "a" if digest[0] % 2 == 0 else "b"
