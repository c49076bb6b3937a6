"""The key-value operations the service needs, on Redis (cluster) or SQLite (embedded).

Values are strings (JSON); `put` and `put_if_absent` take an optional time to live, and
`get_many` reads many keys in one round trip. Conditional writes (`compare_and_set`,
`put_if_absent`) are atomic in both backends, across threads and processes, which is what
makes job state transitions safe when two workers see the same job.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Protocol


class KV(Protocol):
    def get(self, key: str) -> str | None: ...
    def get_many(self, keys: list[str]) -> list[str | None]: ...
    def put(self, key: str, value: str, ttl: float | None = None) -> None: ...
    def put_if_absent(self, key: str, value: str, ttl: float | None = None) -> bool: ...
    def compare_and_set(self, key: str, expected: str | None, value: str) -> bool: ...
    def delete(self, key: str) -> None: ...
    def incr(self, key: str, ttl: float | None = None) -> int: ...
    def append(self, list_key: str, value: str) -> int: ...
    def items(self, list_key: str) -> list[str]: ...
    def remove(self, list_key: str, value: str) -> None: ...
    def acquire(self, key: str, owner: str, ttl: float) -> bool: ...
    def release(self, key: str, owner: str) -> None: ...


_CAS = """
local cur = redis.call('GET', KEYS[1])
if (cur == false and ARGV[1] == '') or cur == ARGV[2] then
  redis.call('SET', KEYS[1], ARGV[3]) return 1 end
return 0
"""
_ACQUIRE = """
local cur = redis.call('GET', KEYS[1])
if cur == false or cur == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisKV:
    """Redis backend; conditional writes are Lua scripts (atomic on the server)."""

    def __init__(self, url: str, namespace: str = "safetylock") -> None:
        import redis

        self._r = redis.Redis.from_url(url, decode_responses=True)
        self._ns = namespace
        self._cas = self._r.register_script(_CAS)
        self._acquire = self._r.register_script(_ACQUIRE)
        self._release = self._r.register_script(_RELEASE)

    def _k(self, key: str) -> str:
        return f"{self._ns}:{key}"

    def get(self, key: str) -> str | None:
        return self._r.get(self._k(key))

    def get_many(self, keys: list[str]) -> list[str | None]:
        """The values of `keys` in order, in one round trip (MGET)."""
        return list(self._r.mget([self._k(k) for k in keys])) if keys else []

    def put(self, key: str, value: str, ttl: float | None = None) -> None:
        self._r.set(self._k(key), value, px=_ms(ttl))

    def put_if_absent(self, key: str, value: str, ttl: float | None = None) -> bool:
        return bool(self._r.set(self._k(key), value, nx=True, px=_ms(ttl)))

    def compare_and_set(self, key: str, expected: str | None, value: str) -> bool:
        flag = "" if expected is None else "1"
        return bool(self._cas(keys=[self._k(key)], args=[flag, expected or "", value]))

    def delete(self, key: str) -> None:
        self._r.delete(self._k(key))

    def incr(self, key: str, ttl: float | None = None) -> int:
        """Add one; a `ttl` starts when the counter is created (a fixed window)."""
        if ttl is None:
            return int(self._r.incr(self._k(key)))
        pipe = self._r.pipeline(transaction=True)
        pipe.incr(self._k(key))
        pipe.pexpire(self._k(key), _ms(ttl), nx=True)
        return int(pipe.execute()[0])

    def append(self, list_key: str, value: str) -> int:
        return int(self._r.rpush(self._k(list_key), value))

    def items(self, list_key: str) -> list[str]:
        return list(self._r.lrange(self._k(list_key), 0, -1))

    def remove(self, list_key: str, value: str) -> None:
        self._r.lrem(self._k(list_key), 0, value)

    def acquire(self, key: str, owner: str, ttl: float) -> bool:
        return bool(self._acquire(keys=[self._k(key)], args=[owner, int(ttl * 1000)]))

    def release(self, key: str, owner: str) -> None:
        self._release(keys=[self._k(key)], args=[owner])


class SqliteKV:
    """SQLite backend for embedded mode: one file, safe across threads and processes."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v TEXT NOT NULL, expires REAL)")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS lists (seq INTEGER PRIMARY KEY AUTOINCREMENT, k TEXT NOT NULL, v TEXT NOT NULL)"
            )
            self._db.execute("CREATE INDEX IF NOT EXISTS lists_k ON lists (k, seq)")

    def _tx(self, fn):
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                result = fn(self._db)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            return result

    @staticmethod
    def _read(db: sqlite3.Connection, key: str) -> str | None:
        row = db.execute("SELECT v, expires FROM kv WHERE k = ?", (key,)).fetchone()
        if row is None or (row[1] is not None and row[1] < time.time()):
            return None
        return row[0]

    def get(self, key: str) -> str | None:
        return self._tx(lambda db: self._read(db, key))

    def get_many(self, keys: list[str]) -> list[str | None]:
        return self._tx(lambda db: [self._read(db, k) for k in keys])

    def put(self, key: str, value: str, ttl: float | None = None) -> None:
        self._tx(lambda db: db.execute("INSERT OR REPLACE INTO kv VALUES (?, ?, ?)", (key, value, _expiry(ttl))))

    def put_if_absent(self, key: str, value: str, ttl: float | None = None) -> bool:
        def op(db: sqlite3.Connection) -> bool:
            if self._read(db, key) is not None:
                return False
            db.execute("INSERT OR REPLACE INTO kv VALUES (?, ?, ?)", (key, value, _expiry(ttl)))
            return True

        return self._tx(op)

    def compare_and_set(self, key: str, expected: str | None, value: str) -> bool:
        def op(db: sqlite3.Connection) -> bool:
            if self._read(db, key) != expected:
                return False
            db.execute("INSERT OR REPLACE INTO kv VALUES (?, ?, NULL)", (key, value))
            return True

        return self._tx(op)

    def delete(self, key: str) -> None:
        self._tx(lambda db: db.execute("DELETE FROM kv WHERE k = ?", (key,)))

    def incr(self, key: str, ttl: float | None = None) -> int:
        def op(db: sqlite3.Connection) -> int:
            current = self._read(db, key)
            if current is None:
                db.execute("INSERT OR REPLACE INTO kv VALUES (?, '1', ?)", (key, _expiry(ttl)))
                return 1
            db.execute("UPDATE kv SET v = ? WHERE k = ?", (str(int(current) + 1), key))
            return int(current) + 1

        return self._tx(op)

    def append(self, list_key: str, value: str) -> int:
        def op(db: sqlite3.Connection) -> int:
            db.execute("INSERT INTO lists (k, v) VALUES (?, ?)", (list_key, value))
            return db.execute("SELECT COUNT(*) FROM lists WHERE k = ?", (list_key,)).fetchone()[0]

        return self._tx(op)

    def items(self, list_key: str) -> list[str]:
        rows = self._tx(lambda db: db.execute("SELECT v FROM lists WHERE k = ? ORDER BY seq", (list_key,)).fetchall())
        return [r[0] for r in rows]

    def remove(self, list_key: str, value: str) -> None:
        self._tx(lambda db: db.execute("DELETE FROM lists WHERE k = ? AND v = ?", (list_key, value)))

    def acquire(self, key: str, owner: str, ttl: float) -> bool:
        def op(db: sqlite3.Connection) -> bool:
            if self._read(db, key) not in (None, owner):
                return False
            db.execute("INSERT OR REPLACE INTO kv VALUES (?, ?, ?)", (key, owner, time.time() + ttl))
            return True

        return self._tx(op)

    def release(self, key: str, owner: str) -> None:
        self._tx(lambda db: db.execute("DELETE FROM kv WHERE k = ? AND v = ?", (key, owner)))


def _ms(ttl: float | None) -> int | None:
    return None if ttl is None else max(1, int(ttl * 1000))


def _expiry(ttl: float | None) -> float | None:
    return None if ttl is None else time.time() + ttl


def open_kv(redis_url: str | None, sqlite_path: Path) -> KV:
    """Redis when a URL is given, else the embedded SQLite file."""
    return RedisKV(redis_url) if redis_url else SqliteKV(sqlite_path)
