"""The hub's store: SQLite (stdlib, the embedded default) or PostgreSQL (psycopg 3, ``pip install
'wmbus-sdr[hub]'``), one schema, one set of statements.

Every insert is idempotent: a reception's key is (meter, telegram, bucket) — the canonical hex in
the column ``telegram`` and the merge window's time bucket — so two hub instances writing the same
telegram (each with the receivers it was given) end with one reception, one row per receiver in
``hearings`` and one set of ``readings``; the best receiver is the strongest of all of them.

Tables: receptions, hearings (one per receiver of a reception), readings (one per record with a
value), meters (latest state, learned interval, alarm), meter_receivers (RSSI of each receiver
for each meter), receivers (health), alarms (history: raised, cleared)."""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from dataclasses import dataclass
from itertools import pairwise
from urllib.parse import urlparse

from .ingest import Heard

log = logging.getLogger(__name__)

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS receptions (
        meter TEXT NOT NULL, telegram TEXT NOT NULL, bucket BIGINT NOT NULL, time_ns BIGINT NOT NULL,
        manufacturer TEXT, device_type TEXT, mode TEXT, frame_format TEXT, decryption TEXT,
        best_receiver TEXT, best_rssi_dbfs DOUBLE PRECISION, source TEXT, hub TEXT,
        PRIMARY KEY (meter, telegram, bucket))""",
    "CREATE INDEX IF NOT EXISTS receptions_meter_time ON receptions (meter, time_ns)",
    """CREATE TABLE IF NOT EXISTS hearings (
        meter TEXT NOT NULL, telegram TEXT NOT NULL, bucket BIGINT NOT NULL, receiver TEXT NOT NULL,
        time_ns BIGINT, rssi_dbfs DOUBLE PRECISION, snr_db DOUBLE PRECISION, freq_offset_hz DOUBLE PRECISION,
        ppm DOUBLE PRECISION, PRIMARY KEY (meter, telegram, bucket, receiver))""",
    """CREATE TABLE IF NOT EXISTS readings (
        meter TEXT NOT NULL, telegram TEXT NOT NULL, bucket BIGINT NOT NULL, idx INTEGER NOT NULL,
        time_ns BIGINT NOT NULL, quantity TEXT, unit TEXT, value DOUBLE PRECISION, storage INTEGER,
        tariff INTEGER, subunit INTEGER, PRIMARY KEY (meter, telegram, bucket, idx))""",
    "CREATE INDEX IF NOT EXISTS readings_meter_time ON readings (meter, time_ns)",
    """CREATE TABLE IF NOT EXISTS meters (
        id TEXT PRIMARY KEY, manufacturer TEXT, device_type TEXT, version INTEGER,
        first_seen_ns BIGINT, last_seen_ns BIGINT, last_time_ns BIGINT, interval_s DOUBLE PRECISION,
        last_reading TEXT, decryption TEXT, alarm INTEGER NOT NULL DEFAULT 0, alarm_since_ns BIGINT)""",
    """CREATE TABLE IF NOT EXISTS meter_receivers (
        meter TEXT NOT NULL, receiver TEXT NOT NULL, rssi_dbfs DOUBLE PRECISION, last_seen_ns BIGINT,
        PRIMARY KEY (meter, receiver))""",
    """CREATE TABLE IF NOT EXISTS receivers (
        id TEXT PRIMARY KEY, last_seen_ns BIGINT, frames BIGINT NOT NULL DEFAULT 0,
        frames_per_min DOUBLE PRECISION, ppm DOUBLE PRECISION, dropped_samples BIGINT, source TEXT,
        status TEXT, status_ns BIGINT)""",
    """CREATE TABLE IF NOT EXISTS alarms (
        meter TEXT NOT NULL, kind TEXT NOT NULL, raised_ns BIGINT NOT NULL, cleared_ns BIGINT,
        interval_s DOUBLE PRECISION, last_seen_ns BIGINT, PRIMARY KEY (meter, kind, raised_ns))""",
]

# Inserts: (table, columns with their PostgreSQL types, conflict clause). SQLite runs them with
# executemany over VALUES (?, ...); PostgreSQL as one statement per table and batch, over
# unnest() of one array per column (a few statements per batch instead of one per row).
# Rows of one batch are made unique per conflict key first (PostgreSQL refuses to update a row
# twice in one statement).
_INSERTS = {
    "receptions": (
        (("meter", "text"), ("telegram", "text"), ("bucket", "bigint"), ("time_ns", "bigint"),
         ("manufacturer", "text"), ("device_type", "text"), ("mode", "text"), ("frame_format", "text"),
         ("decryption", "text"), ("best_receiver", "text"), ("best_rssi_dbfs", "float8"), ("source", "text"),
         ("hub", "text")),
        """ON CONFLICT (meter, telegram, bucket) DO UPDATE SET
    best_receiver = CASE WHEN excluded.best_rssi_dbfs > receptions.best_rssi_dbfs
                         OR receptions.best_rssi_dbfs IS NULL THEN excluded.best_receiver
                         ELSE receptions.best_receiver END,
    best_rssi_dbfs = CASE WHEN excluded.best_rssi_dbfs > receptions.best_rssi_dbfs
                         OR receptions.best_rssi_dbfs IS NULL THEN excluded.best_rssi_dbfs
                         ELSE receptions.best_rssi_dbfs END,
    time_ns = CASE WHEN excluded.time_ns < receptions.time_ns THEN excluded.time_ns ELSE receptions.time_ns END"""),
    "hearings": (
        (("meter", "text"), ("telegram", "text"), ("bucket", "bigint"), ("receiver", "text"), ("time_ns", "bigint"),
         ("rssi_dbfs", "float8"), ("snr_db", "float8"), ("freq_offset_hz", "float8"), ("ppm", "float8")),
        "ON CONFLICT (meter, telegram, bucket, receiver) DO NOTHING"),
    "readings": (
        (("meter", "text"), ("telegram", "text"), ("bucket", "bigint"), ("idx", "integer"), ("time_ns", "bigint"),
         ("quantity", "text"), ("unit", "text"), ("value", "float8"), ("storage", "integer"), ("tariff", "integer"),
         ("subunit", "integer")),
        "ON CONFLICT (meter, telegram, bucket, idx) DO NOTHING"),
    "meters": (
        (("id", "text"), ("manufacturer", "text"), ("device_type", "text"), ("version", "integer"),
         ("first_seen_ns", "bigint"), ("last_seen_ns", "bigint"), ("last_time_ns", "bigint"), ("interval_s", "float8"),
         ("last_reading", "text"), ("decryption", "text")),
        """ON CONFLICT (id) DO UPDATE SET manufacturer = excluded.manufacturer,
    device_type = excluded.device_type, version = excluded.version,
    last_reading = CASE WHEN excluded.last_time_ns >= meters.last_time_ns AND excluded.last_reading IS NOT NULL
                        THEN excluded.last_reading ELSE meters.last_reading END,
    decryption = CASE WHEN excluded.last_time_ns >= meters.last_time_ns THEN excluded.decryption
                      ELSE meters.decryption END,
    last_time_ns = {greatest}(meters.last_time_ns, excluded.last_time_ns),
    last_seen_ns = {greatest}(meters.last_seen_ns, excluded.last_seen_ns),
    interval_s = COALESCE(excluded.interval_s, meters.interval_s)"""),
    "meter_receivers": (
        (("meter", "text"), ("receiver", "text"), ("rssi_dbfs", "float8"), ("last_seen_ns", "bigint")),
        """ON CONFLICT (meter, receiver) DO UPDATE SET
    rssi_dbfs = CASE WHEN excluded.last_seen_ns >= meter_receivers.last_seen_ns THEN excluded.rssi_dbfs
                     ELSE meter_receivers.rssi_dbfs END,
    last_seen_ns = {greatest}(meter_receivers.last_seen_ns, excluded.last_seen_ns)"""),
    "receivers": (
        (("id", "text"), ("last_seen_ns", "bigint"), ("frames", "bigint"), ("frames_per_min", "float8"),
         ("ppm", "float8"), ("dropped_samples", "bigint"), ("source", "text")),
        """ON CONFLICT (id) DO UPDATE SET
    last_seen_ns = {greatest}(COALESCE(receivers.last_seen_ns, 0), excluded.last_seen_ns),
    frames = receivers.frames + excluded.frames, frames_per_min = excluded.frames_per_min,
    ppm = COALESCE(excluded.ppm, receivers.ppm),
    dropped_samples = COALESCE(excluded.dropped_samples, receivers.dropped_samples), source = excluded.source"""),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadingRow:
    idx: int
    quantity: str
    unit: str
    value: float
    storage: int = 0
    tariff: int = 0
    subunit: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class HearingRow:
    receiver: str
    time_ns: int | None
    rssi_dbfs: float | None
    snr_db: float | None = None
    freq_offset_hz: float | None = None
    ppm: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ReceptionRow:
    """One merged, decoded reception as the store keeps it."""

    meter: str
    telegram: str  # canonical hex
    bucket: int
    time_ns: int
    seen_ns: int  # the hub's clock when the reception closed (silence alarms run on it)
    manufacturer: str
    device_type: str
    version: int
    mode: str | None
    frame_format: str | None
    decryption: str
    source: str
    hub: str
    hearings: tuple[HearingRow | Heard, ...]  # the hub hands over its Heard: the same fields, one object fewer
    readings: tuple[ReadingRow, ...] = ()
    interval_s: float | None = None

    @property
    def best(self) -> HearingRow | Heard:
        return max(self.hearings, key=lambda h: -1e9 if h.rssi_dbfs is None else h.rssi_dbfs)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReceiverRow:
    id: str
    last_seen_ns: int
    frames: int  # new frames since the last write (added up across hubs)
    frames_per_min: float
    ppm: float | None = None
    dropped_samples: int | None = None
    source: str = "raw"


@dataclass(slots=True)
class _Dialect:
    placeholder: str
    greatest: str
    arrays: bool  # one unnest() statement per table (PostgreSQL) instead of executemany

    def q(self, text: str) -> str:
        text = text.replace("{greatest}", self.greatest)
        return text if self.placeholder == "?" else text.replace("?", self.placeholder)

    def insert(self, table: str, *, new_only: bool = False) -> str:
        """The table's idempotent insert; ``new_only``: rows whose key is stored are left alone."""
        columns, conflict = _INSERTS[table]
        if new_only:
            conflict = "ON CONFLICT DO NOTHING"
        names = ", ".join(name for name, _ in columns)
        if self.arrays:
            arrays = ", ".join(f"%b::{kind}[]" for _, kind in columns)  # binary: no text escaping
            return f"INSERT INTO {table} ({names}) SELECT * FROM unnest({arrays}) {self.q(conflict)}"
        return f"INSERT INTO {table} ({names}) VALUES ({', '.join('?' * len(columns))}) {self.q(conflict)}"


_KEY_COLUMNS = {"receptions": 3, "hearings": 4, "readings": 4, "meters": 1, "meter_receivers": 2, "receivers": 1}


def _unique(rows: list[tuple], key_len: int, better) -> list[tuple]:
    """One row per key (the first ``key_len`` columns), keeping the ``better(old, new)`` one, in key order."""
    keys = [row[:key_len] for row in rows]
    if all(a < b for a, b in pairwise(keys)):  # already unique and in order: the common case
        return rows
    by_key: dict = {}
    for row in rows:
        key = row[:key_len]
        old = by_key.get(key)
        by_key[key] = row if old is None else better(old, row)
    return [by_key[key] for key in sorted(by_key)]


def _reception_key(r) -> tuple:
    return r.meter, r.telegram, r.bucket


def _receiver_of(h) -> str:
    return h.receiver


def _first(old: tuple, new: tuple) -> tuple:
    return old


def _stronger(old: tuple, new: tuple) -> tuple:
    """Of two rows of one reception (a late copy in the same batch), the one with the best RSSI."""
    return new if new[10] is not None and (old[10] is None or new[10] > old[10]) else old


def _later(col: int):
    return lambda old, new: new if (new[col] or 0) >= (old[col] or 0) else old


def _last_reading(readings: tuple[ReadingRow, ...]) -> str | None:
    current = [r for r in readings if r.storage == 0 and r.tariff == 0 and r.subunit == 0]
    if not current:
        return None
    return json.dumps([{"quantity": r.quantity, "unit": r.unit, "value": r.value} for r in current[:6]])


class Store:
    """Base of both stores: the statements; subclasses give connections and the dialect."""

    dialect: _Dialect
    url: str

    def __init__(self) -> None:
        self._write_lock = threading.Lock()
        self._read_lock = threading.Lock()

    # --- connections (subclasses) -------------------------------------------------------------
    def _writer(self):
        raise NotImplementedError

    def _reader(self):
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    # --- writing ------------------------------------------------------------------------------
    def _create(self, conn) -> None:
        cur = conn.cursor()
        for statement in SCHEMA:
            cur.execute(statement)
        conn.commit()

    def _neighbours(self, cur, receptions: list[ReceptionRow], window_ns: int) -> list[ReceptionRow]:
        """Receptions moved into the bucket next door when the same telegram is stored there
        less than a window earlier or later (two receivers' copies on both sides of a bucket
        boundary, or two hubs' halves of one reception)."""
        d = self.dialect
        lo = min(r.bucket for r in receptions) - 1
        hi = max(r.bucket for r in receptions) + 1
        meters = sorted({r.meter for r in receptions})
        telegrams = sorted({r.telegram for r in receptions})
        known: dict[tuple[str, str], list[tuple[int, int]]] = {}
        for i in range(0, len(telegrams), 500):
            chunk = telegrams[i:i + 500]
            if d.arrays:  # meter ids and telegrams are hex digits: comma-separated, one string each
                cur.execute("SELECT meter, telegram, bucket, time_ns FROM receptions "
                            "WHERE meter = ANY(string_to_array(%s, ',')) AND telegram = ANY(string_to_array(%s, ',')) "
                            "AND bucket BETWEEN %s AND %s", (",".join(meters), ",".join(chunk), lo, hi))
            else:
                cur.execute(f"SELECT meter, telegram, bucket, time_ns FROM receptions WHERE meter IN "  # noqa: S608
                            f"({', '.join('?' * len(meters))}) AND telegram IN ({', '.join('?' * len(chunk))}) "
                            "AND bucket BETWEEN ? AND ?", (*meters, *chunk, lo, hi))
            for meter, telegram, bucket, time_ns in cur.fetchall():
                known.setdefault((meter, telegram), []).append((bucket, time_ns))
        out = []
        for r in receptions:
            stored = known.setdefault((r.meter, r.telegram), [])
            if all(b != r.bucket for b, _ in stored):
                near = [b for b, t in stored if abs(b - r.bucket) == 1 and abs(t - r.time_ns) < window_ns]
                if near:
                    r = dataclasses.replace(r, bucket=near[0])
            stored.append((r.bucket, r.time_ns))
            out.append(r)
        return out

    def write(self, receptions: list[ReceptionRow], receivers: list[ReceiverRow] = (), *,
              window_ns: int | None = None) -> frozenset[int]:
        """Store a batch in one transaction (idempotent: writing it again changes nothing). With
        ``window_ns``, a reception joins the same telegram stored in the neighbouring bucket less
        than a window away. Returns the indices (into ``receptions``) of the receptions this write
        created, one per reception: the others were already stored, by this hub or another, or
        repeat one of the batch (the hub that created a reception is the one that republishes it)."""
        if not receptions and not receivers:
            return frozenset()
        with self._write_lock:
            conn = self._writer()
            try:
                self._begin(conn)
                placed = self._neighbours(conn.cursor(), receptions, window_ns) if window_ns and receptions \
                    else receptions
                created = self._write(conn, placed, receivers)
            except BaseException:
                conn.rollback()
                self._rolled_back()
                raise
        first: dict[tuple, int] = {}
        for i, r in enumerate(placed):
            first.setdefault((r.meter, r.telegram, r.bucket), i)
        return frozenset(i for key, i in first.items() if key in created)

    def _begin(self, conn) -> None:
        """Start the write transaction (PostgreSQL: at the first statement, by the driver)."""

    def _rolled_back(self) -> None:
        """After a write transaction was rolled back."""

    def _write(self, conn, receptions: list[ReceptionRow], receivers: list[ReceiverRow]) -> set[tuple]:
        rec_rows, hear_rows, read_rows, meter_rows, mr_rows = [], [], [], [], []
        # receptions in key order, each one's hearings by receiver: the rows of every table come out in
        # key order as made (unless a batch repeats a key), and _unique has nothing to sort
        for r in sorted(receptions, key=_reception_key):
            best = r.best
            rec_rows.append((r.meter, r.telegram, r.bucket, r.time_ns, r.manufacturer, r.device_type, r.mode,
                             r.frame_format, r.decryption, best.receiver, best.rssi_dbfs, r.source, r.hub))
            for h in sorted(r.hearings, key=_receiver_of) if len(r.hearings) > 1 else r.hearings:
                hear_rows.append((r.meter, r.telegram, r.bucket, h.receiver, h.time_ns, h.rssi_dbfs, h.snr_db,
                                  h.freq_offset_hz, h.ppm))
                mr_rows.append((r.meter, h.receiver, h.rssi_dbfs, r.seen_ns))
            for x in r.readings:
                read_rows.append((r.meter, r.telegram, r.bucket, x.idx, r.time_ns, x.quantity, x.unit, x.value,
                                  x.storage, x.tariff, x.subunit))
            meter_rows.append((r.meter, r.manufacturer, r.device_type, r.version, r.seen_ns, r.seen_ns, r.time_ns,
                               r.interval_s, r.readings, r.decryption))  # the readings' JSON: for the kept row only
        recv_rows = [(x.id, x.last_seen_ns, x.frames, x.frames_per_min, x.ppm, x.dropped_samples, x.source)
                     for x in receivers]
        # every table's rows in key order: writers on one store (hub instances, --workers) take their
        # row locks in the same order and wait for each other instead of deadlocking
        cur = conn.cursor()
        k = _KEY_COLUMNS
        created = self._insert_receptions(cur, _unique(rec_rows, k["receptions"], _stronger))
        meters = [(*m[:8], _last_reading(m[8]), m[9]) for m in _unique(meter_rows, k["meters"], _later(6))]
        batches = (("hearings", _unique(hear_rows, k["hearings"], _first)),
                   ("readings", _unique(read_rows, k["readings"], _first)),
                   ("meters", meters),
                   ("meter_receivers", _unique(mr_rows, k["meter_receivers"], _later(3))),
                   ("receivers", _unique(recv_rows, k["receivers"], _later(1))))
        for table, rows in batches:
            if rows:
                self._insert_table(cur, table, rows)
        conn.commit()
        return created

    def _insert_table(self, cur, table: str, rows: list[tuple]) -> None:
        """The idempotent insert of ``rows`` (in key order) into ``table``."""
        self._insert(cur, self.dialect.insert(table), rows)

    def _insert(self, cur, statement: str, rows: list[tuple]) -> None:
        if self.dialect.arrays:
            cur.execute(statement, [list(col) for col in zip(*rows, strict=True)])
        else:
            cur.executemany(statement, rows)

    def _insert_receptions(self, cur, rows: list[tuple]) -> set[tuple]:
        """Insert what is new (its keys come back: created here), then merge the rest into the
        stored receptions (best receiver, earliest time)."""
        d = self.dialect
        if not rows:
            return set()
        if d.arrays:
            cur.execute(d.insert("receptions", new_only=True) + " RETURNING meter, telegram, bucket",
                        [list(col) for col in zip(*rows, strict=True)])
            created = set(cur.fetchall())
        else:
            created = set()
            statement = d.insert("receptions", new_only=True)
            for row in rows:
                cur.execute(statement, row)
                if cur.rowcount == 1:
                    created.add(row[:3])
        rest = [row for row in rows if row[:3] not in created]
        if rest:
            self._insert(cur, d.insert("receptions"), rest)
        return created

    def set_receiver_status(self, receiver: str, status: str, now_ns: int) -> None:
        """The edge's availability (``PREFIX/status/<receiver>``: online / offline)."""
        q = self.dialect.q
        with self._write_lock:
            conn = self._writer()
            try:
                conn.cursor().execute(q("INSERT INTO receivers (id, frames, status, status_ns) VALUES (?, 0, ?, ?) "
                                        "ON CONFLICT (id) DO UPDATE SET status = excluded.status, "
                                        "status_ns = excluded.status_ns"), (receiver, status, now_ns))
                conn.commit()
            except BaseException:
                conn.rollback()
                raise

    def set_alarm(self, meter: str, *, active: bool, now_ns: int, interval_s: float | None,
                  last_seen_ns: int | None) -> bool:
        """Raise or clear the silence alarm; False when it already was in that state (another hub)."""
        q = self.dialect.q
        with self._write_lock:
            conn = self._writer()
            cur = conn.cursor()
            try:
                if active:
                    cur.execute(q("UPDATE meters SET alarm = 1, alarm_since_ns = ? WHERE id = ? AND alarm = 0"),
                                (now_ns, meter))
                    changed = cur.rowcount == 1
                    if changed:
                        cur.execute(q("INSERT INTO alarms (meter, kind, raised_ns, interval_s, last_seen_ns) "
                                      "VALUES (?, 'silent', ?, ?, ?) ON CONFLICT DO NOTHING"),
                                    (meter, now_ns, interval_s, last_seen_ns))
                else:
                    cur.execute(q("UPDATE meters SET alarm = 0, alarm_since_ns = NULL WHERE id = ? AND alarm = 1"),
                                (meter,))
                    changed = cur.rowcount == 1
                    if changed:
                        cur.execute(q("UPDATE alarms SET cleared_ns = ? WHERE meter = ? AND kind = 'silent' "
                                      "AND cleared_ns IS NULL"), (now_ns, meter))
                conn.commit()
            except BaseException:
                conn.rollback()
                raise
        return changed

    # --- reading ------------------------------------------------------------------------------
    def query(self, sql: str, params: tuple = ()) -> list[dict]:
        with self._read_lock:
            conn = self._reader()
            cur = conn.cursor()
            cur.execute(self.dialect.q(sql), params)
            names = [d[0] for d in cur.description]
            rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
            conn.commit()  # end the read transaction so the next query sees new rows
        return rows

    def meters(self) -> list[dict]:
        rows = self.query("SELECT id, manufacturer, device_type, version, first_seen_ns, last_seen_ns, last_time_ns, "
                          "interval_s, last_reading, decryption, alarm, alarm_since_ns FROM meters ORDER BY id")
        by_meter: dict[str, list] = {}
        for x in self.query("SELECT meter, receiver, rssi_dbfs, last_seen_ns FROM meter_receivers "
                            "ORDER BY meter, rssi_dbfs DESC"):
            by_meter.setdefault(x["meter"], []).append({"id": x["receiver"], "rssi": x["rssi_dbfs"],
                                                        "last_seen_ns": x["last_seen_ns"]})
        for row in rows:
            row["last_reading"] = json.loads(row["last_reading"]) if row["last_reading"] else None
            row["alarm"] = bool(row["alarm"])
            row["receivers"] = by_meter.get(row["id"], [])
        return rows

    def readings(self, meter: str, *, limit: int = 5000) -> list[dict]:
        return self.query("SELECT time_ns, quantity, unit, value, storage, tariff, subunit, idx FROM readings "
                          "WHERE meter = ? ORDER BY time_ns, idx LIMIT ?", (meter, limit))

    def receptions(self, meter: str | None = None, *, limit: int = 100000) -> list[dict]:
        where, params = ("WHERE meter = ?", (meter, limit)) if meter else ("", (limit,))
        return self.query(f"SELECT meter, telegram, bucket, time_ns, manufacturer, device_type, mode, frame_format, "
                          f"decryption, best_receiver, best_rssi_dbfs, source, hub FROM receptions {where} "
                          "ORDER BY time_ns LIMIT ?", params)

    def hearings(self, meter: str | None = None) -> list[dict]:
        where, params = ("WHERE meter = ?", (meter,)) if meter else ("", ())
        return self.query(f"SELECT meter, telegram, bucket, receiver, time_ns, rssi_dbfs, snr_db, ppm FROM hearings "
                          f"{where} ORDER BY time_ns, receiver", params)

    def receivers(self) -> list[dict]:
        return self.query("SELECT id, last_seen_ns, frames, frames_per_min, ppm, dropped_samples, source, status, "
                          "status_ns FROM receivers ORDER BY id")

    def alarms(self) -> list[dict]:
        return self.query("SELECT meter, kind, raised_ns, cleared_ns, interval_s, last_seen_ns FROM alarms "
                          "ORDER BY raised_ns")

    def silence_candidates(self) -> list[dict]:
        return self.query("SELECT id, last_seen_ns, interval_s, alarm FROM meters WHERE interval_s IS NOT NULL")

    def counts(self) -> dict:
        out = {}
        for table in ("receptions", "hearings", "readings", "meters", "receivers", "alarms"):
            out[table] = self.query(f"SELECT COUNT(*) AS n FROM {table}")[0]["n"]  # noqa: S608 - fixed names
        return out


class SqliteStore(Store):
    def __init__(self, path: str):
        import sqlite3

        super().__init__()
        self.url = f"sqlite:///{path}"
        self.dialect = _Dialect(placeholder="?", greatest="MAX", arrays=False)
        self._path = path
        try:
            self._w = sqlite3.connect(path, check_same_thread=False, timeout=30)
            self._r = sqlite3.connect(path, check_same_thread=False, timeout=30)
        except sqlite3.Error as err:
            raise ValueError(f"--db {self.url}: {err}") from None
        for conn in (self._w, self._r):
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
        self._create(self._w)

    def _writer(self):
        return self._w

    def _reader(self):
        return self._r

    def _begin(self, conn) -> None:
        # the write lock from the start: the neighbour look-up and the inserts see one state even
        # with several writer processes (--workers)
        if not conn.in_transaction:
            conn.execute("BEGIN IMMEDIATE")

    def close(self) -> None:
        self._w.close()
        self._r.close()


class PostgresStore(Store):
    def __init__(self, url: str):
        try:
            import psycopg  # noqa: PLC0415 - optional
        except ImportError:
            raise ValueError("--db postgresql://... needs psycopg 3: pip install 'wmbus-sdr[hub]'") from None
        super().__init__()
        self.url = url
        self.dialect = _Dialect(placeholder="%s", greatest="GREATEST", arrays=True)
        self._psycopg = psycopg
        self._staged: set[str] = set()  # staging tables made on the writer connection
        try:
            self._w = psycopg.connect(url)
            self._r = psycopg.connect(url)
        except psycopg.Error as err:
            raise ValueError(f"--db {_redact(url)}: cannot connect: {err}") from None
        # two hubs starting at once both run CREATE ... IF NOT EXISTS: serialise on an advisory lock
        with self._w.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(160516)")
            try:
                self._create(self._w)
            finally:
                cur.execute("SELECT pg_advisory_unlock(160516)")
                self._w.commit()

    def _writer(self):
        if self._w.closed:  # the server went away: connect again (the failed batch is retried by the hub)
            self._w = self._psycopg.connect(self.url)
            self._staged.clear()
        return self._w

    # A batch reaches PostgreSQL by COPY into a temporary staging table per table (psycopg writes
    # COPY rows in C; binding one array per column went through its Python array dumper, value by
    # value: a fifth of the hub's time), then one INSERT ... SELECT with the table's conflict clause.
    # The staging tables live as long as the connection and empty themselves at each commit.
    def _stage(self, cur, table: str, rows: list[tuple]) -> tuple[str, str, str]:
        """(staging table, column list, key column list) with ``rows`` copied in."""
        columns, _ = _INSERTS[table]
        stage = f"wmbus_stage_{table}"
        if table not in self._staged:
            cur.execute(f"CREATE TEMPORARY TABLE IF NOT EXISTS {stage} (LIKE {table} INCLUDING DEFAULTS) "
                        "ON COMMIT DELETE ROWS")
            self._staged.add(table)
        names = ", ".join(name for name, _ in columns)
        with cur.copy(f"COPY {stage} ({names}) FROM STDIN") as copy:  # noqa: S608 - fixed names
            for row in rows:
                copy.write_row(row)
        return stage, names, ", ".join(name for name, _ in columns[:_KEY_COLUMNS[table]])

    def _insert_table(self, cur, table: str, rows: list[tuple]) -> None:
        stage, names, key = self._stage(cur, table, rows)
        _, conflict = _INSERTS[table]
        # in key order, as the rows came: writers on one store take their row locks in one order
        cur.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM {stage} ORDER BY {key} "  # noqa: S608
                    f"{self.dialect.q(conflict)}")

    def _insert_receptions(self, cur, rows: list[tuple]) -> set[tuple]:
        if not rows:
            return set()
        stage, names, key = self._stage(cur, "receptions", rows)
        cur.execute(f"INSERT INTO receptions ({names}) SELECT {names} FROM {stage} ORDER BY {key} "  # noqa: S608
                    "ON CONFLICT DO NOTHING RETURNING meter, telegram, bucket")
        created = set(cur.fetchall())
        rest = [row for row in rows if row[:3] not in created]
        if rest:  # stored before: merged into the stored receptions (best receiver, earliest time)
            self._insert(cur, self.dialect.insert("receptions"), rest)
        return created

    def _rolled_back(self) -> None:
        self._staged.clear()  # created in the transaction that was rolled back: gone with it

    def _reader(self):
        if self._r.closed:
            self._r = self._psycopg.connect(self.url)
        return self._r

    def close(self) -> None:
        self._w.close()
        self._r.close()


def _redact(url: str) -> str:
    u = urlparse(url)
    if u.password:
        return url.replace(f":{u.password}@", ":***@")
    return url


def open_store(url: str) -> Store:
    """``sqlite:///PATH`` (also a bare path) or ``postgresql://...``; ValueError for anything else."""
    u = urlparse(url)
    if u.scheme in ("postgresql", "postgres"):
        return PostgresStore(url)
    if u.scheme == "sqlite":
        path = url[len("sqlite:///"):] if url.startswith("sqlite:///") else ""
        if not path:
            raise ValueError(f"--db {url!r}: use sqlite:///PATH (sqlite:////ABSOLUTE/PATH)")
        return SqliteStore(path)
    if not u.scheme:
        return SqliteStore(url)
    raise ValueError(f"--db {_redact(url)!r}: use sqlite:///PATH or postgresql://USER@HOST:PORT/DB")
