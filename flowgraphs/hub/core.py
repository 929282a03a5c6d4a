"""The hub's work, independent of where frames come from: check (:mod:`.ingest`) -> merge
(:mod:`.merge`) -> decrypt and decode centrally (one key store, one compact-format cache for all
receivers) -> store (:mod:`.store`, one transaction per batch) -> acknowledge -> republish.

Frames are acknowledged (``ack(token)``, the MQTT PUBACK) only after their reception is committed,
so a hub that stops or crashes at any point gets the unacknowledged ones again from the broker's
persistent session; the idempotent store makes the second copy harmless.

One worker thread runs :meth:`Hub.run`; the MQTT network thread and stdin readers only
:meth:`Hub.submit` into a bounded queue."""

from __future__ import annotations

import dataclasses
import json
import logging
import queue
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from mbus.compact import FormatCache
from mbus.errors import DecodeError
from mbus.telegram import Telegram, decode

from ..sinks.base import utc_iso as iso
from .alarms import IntervalTracker, silence_changes
from .ingest import BadInput, Heard, heard_from_tuple, parse_line, parse_raw
from .merge import Merger, Reception
from .store import ReadingRow, ReceiverRow, ReceptionRow, Store

log = logging.getLogger(__name__)

KEPT_OUTCOMES = ("ok", "not_encrypted", "no_key", "unsupported_mode")  # others: the bytes are not a good telegram
PENDING_PER_METER = 16
PENDING_METERS = 10_000
IN_TRANSIT_NS = 200_000_000  # a frame taken by an intake process reaches the queue within this
# receivers' health goes to the store with each batch of receptions; without receptions (frames
# waiting in the merger) at most this often: alone, it was a transaction every pump
RECEIVERS_EVERY_S = 0.5
WRITES_PENDING = 16  # batches handed to run()'s writer thread before the worker waits
WRITE_MAX = 5000  # receptions the writer takes into one transaction at most (more when one batch is larger)


@dataclass(slots=True)
class _ReceiverState:
    new_frames: int = 0
    recent: deque = field(default_factory=lambda: deque(maxlen=200_000))  # arrival times (s), last minute
    last_seen_ns: int = 0
    ppm: float | None = None
    dropped_samples: int | None = None
    source: str = "raw"
    dirty: bool = False


def _merge_receivers(first: list[ReceiverRow], then: list[ReceiverRow]) -> list[ReceiverRow]:
    """Receivers' rows of two batches written as one: a receiver's new frames added up, the rest as
    the later batch has it."""
    if not first or not then:
        return first or then
    out = {r.id: r for r in first}
    for r in then:
        old = out.get(r.id)
        out[r.id] = r if old is None else dataclasses.replace(
            r, frames=old.frames + r.frames, last_seen_ns=max(old.last_seen_ns, r.last_seen_ns),
            ppm=r.ppm if r.ppm is not None else old.ppm,
            dropped_samples=r.dropped_samples if r.dropped_samples is not None else old.dropped_samples)
    return list(out.values())


Publish = Callable[[str, str, bool], None]  # (topic below the prefix, payload, retain)
Listener = Callable[[ReceptionRow, Telegram], None]


class Hub:
    def __init__(self, store: Store, *, keys=None, window_s: float = 2.0, hub_id: str = "hub",
                 missed_intervals: float = 3.0, alarm_check_s: float = 1.0, min_interval_s: float = 0.5,
                 queue_size: int = 200_000, batch_max: int = 2000, alarms: bool = True):
        self.store = store
        self.keys = keys
        self.hub_id = hub_id
        self.merger = Merger(window_s)
        self.formats = FormatCache()
        self.intervals = IntervalTracker(min_gap_s=min(min_interval_s, window_s))
        self.missed_intervals = missed_intervals
        self.alarm_check_s = alarm_check_s
        self.alarms = alarms  # False: another process of this hub (--workers) checks for silent meters
        self.batch_max = batch_max
        self.stats: Counter = Counter()
        self.rejects: Counter = Counter()
        self.queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self.queue_size = queue_size
        self._batched = 0  # frames queued in submit_many batches (bounded by queue_size as well)
        self._room = threading.Condition()
        self.ack: Callable[[object], None] | None = None
        self.ack_many: Callable[[list], None] | None = None  # the same for a list of tokens (optional)
        self.publish: Publish | None = None
        # the same for a list of (topic, payload, retain) (optional; an --intake process publishes them)
        self.publish_many: Callable[[list[tuple[str, str | dict, bool]]], None] | None = None
        self.publish_objects = False  # True: publish_many takes the readings' payloads as dicts (JSON elsewhere)
        # Listeners get every stored reception with its telegram; meter_fields add fields to the
        # PREFIX/meter/<id> message. --ha-discovery: flowgraphs.sinks.ha.HaDiscovery plugs in
        # here (one device set for the fleet), see flowgraphs/cli/hub.py.
        self.listeners: list[Listener] = []
        self.meter_fields: list[Callable[[Telegram], dict]] = []
        self._receivers: dict[str, _ReceiverState] = {}
        self._pending: dict[str, deque] = {}  # compact frames waiting for their meter's format
        self._unwritten: list[tuple[list[ReceptionRow], list, list]] = []  # (rows, tokens, decoded)
        self._next_alarm_check = 0.0
        self._next_receivers = 0.0  # monotonic time from which receivers alone may be written again
        self._taken_ns: int | None = None  # arrival time of the last frame taken from the queue
        # each open group's telegram decoded when its first copy came (the worker decodes while the
        # merge window waits for the other copies, not all at once when it closes): Telegram or
        # the DecodeError, taken when the group closes
        self._early: dict[bytes, Telegram | DecodeError] = {}
        self._writes: queue.Queue | None = None  # run(): batches for its writer thread
        self._done: queue.Queue | None = None  # run(): stored batches to acknowledge and republish
        self._writing = 0  # batches handed to the writer thread and not yet stored
        self._stop = threading.Event()
        self.idle = threading.Event()  # set while the queue is empty and nothing waits in the merger

    # --- input (any thread) -----------------------------------------------------------------------
    def submit(self, kind: str, payload: bytes | str, receiver: str | None, token=None, *,
               arrived_ns: int | None = None) -> None:
        """kind "raw" (edge JSON; receiver = the topic's), "line" (rtl_433 JSON / rtlwmbus) or "status"
        (the edge's availability: online / offline). ``arrived_ns``: when an intake process took it."""
        self.idle.clear()
        self.queue.put((kind, payload, receiver, time.time_ns() if arrived_ns is None else arrived_ns, token))

    def submit_many(self, items: list) -> None:
        """A batch of ``(kind, payload, receiver, arrived_ns, token)`` as one queue entry (an intake
        process's batch: one queue operation instead of one per frame). Kinds as :meth:`submit`,
        plus "heard" (payload: a :func:`~.ingest.heard_tuple` the intake parsed) and "bad" (payload:
        ``(reason, message)`` of a message the intake rejected). Blocks while ``queue_size`` frames wait."""
        with self._room:
            while self._batched >= self.queue_size and not self._stop.is_set():
                self._room.wait(0.5)
            self._batched += len(items)
        self.idle.clear()
        self.queue.put(("many", items, None, 0, None))

    # --- the worker ---------------------------------------------------------------------------------
    def run(self) -> None:
        """The worker thread's loop until :meth:`stop`. Stores in a writer thread of its own: while
        the database takes one batch, the worker decodes the next (the database's time was a third
        of the worker's); called directly, :meth:`pump` and :meth:`flush` store before they return."""
        writer = threading.Thread(target=self._write_loop, name="hub-writer", daemon=True)
        # batches handed over; the writer takes all that wait as one transaction (small while it
        # keeps up, large while the database is behind); the worker waits when this many are pending
        self._writes = queue.Queue(maxsize=WRITES_PENDING)
        # stored batches are acknowledged and republished by a thread of their own, in the order they
        # were stored, while the writer waits on the database with the next one
        done = threading.Thread(target=self._committed_loop, name="hub-committed", daemon=True)
        self._done = queue.Queue(maxsize=4)
        writer.start()
        done.start()
        try:
            while not self._stop.is_set():
                try:
                    self.pump(timeout_s=0.1)
                except Exception:  # a bug of ours must not stop the fleet: log it loudly, count it, go on
                    self.stats["internal_errors"] += 1
                    log.exception("hub worker")
                    time.sleep(0.5)
            self.pump(timeout_s=0)
            self.flush()
        finally:
            self._writes.put(None)
            writer.join()
            done.join()
            self._writes = None

    def _write_loop(self) -> None:
        """The writer thread of :meth:`run`: stores each handed-over batch (retrying while the store is
        away; given up at shutdown: unacknowledged, the broker delivers it again), then hands it to
        the thread that acknowledges it."""
        last = False
        try:
            while not last and (batch := self._writes.get()) is not None:
                rows, receivers, tokens, decoded = batch
                n = 1
                while len(rows) < WRITE_MAX:  # what else waits goes in the same transaction
                    try:
                        more = self._writes.get_nowait()
                    except queue.Empty:
                        break
                    if more is None:
                        last = True
                        break
                    rows, tokens, decoded = rows + more[0], tokens + more[2], decoded + more[3]
                    receivers = _merge_receivers(receivers, more[1])
                    n += 1
                while True:
                    created = self._store_write(rows, receivers)
                    if created is None:
                        if self._stop.is_set():
                            break
                        time.sleep(0.5)
                        continue
                    self._done.put((n, (rows, tokens, decoded, created)))
                    break
                if created is None:  # given up at shutdown: never acknowledged
                    with self._room:
                        self._writing -= n
        finally:
            self._done.put(None)

    def _committed_loop(self) -> None:
        """The thread of :meth:`run` that acknowledges and republishes each stored batch, in order."""
        while (done := self._done.get()) is not None:
            n, batch = done
            try:
                self._committed(*batch)
            except Exception:  # a bug of ours: log it loudly, count it, go on
                self.stats["internal_errors"] += 1
                log.exception("hub writer")
            with self._room:
                self._writing -= n

    def _store_write(self, rows: list[ReceptionRow], receivers: list) -> frozenset[int] | None:
        """``store.write`` of one batch: what it created, or None when the store failed (counted and
        logged; the caller keeps the batch and acknowledges nothing)."""
        try:
            return self.store.write(rows, receivers, window_ns=int(self.merger.window_s * 1e9))
        except Exception as err:  # noqa: BLE001 - any driver error: keep the batch, retry, never ack
            self.stats["store_errors"] += 1
            log.error("store %s: %s (%d receptions kept for the next try)", type(err).__name__, err, len(rows))
            return None

    def _receivers_counted(self) -> None:
        """The receivers' new counts are in a batch now: start counting afresh."""
        for state in self._receivers.values():
            if state.dirty:
                state.new_frames = 0
                state.dirty = False

    def stop(self) -> None:
        self._stop.set()

    def pump(self, timeout_s: float = 0.1) -> None:
        """Take what is queued (waiting up to ``timeout_s`` for the first), then close due groups."""
        try:
            item = self.queue.get(timeout=timeout_s) if timeout_s > 0 else self.queue.get_nowait()
        except queue.Empty:
            item = None
        n = 0
        while item is not None:
            if item[0] == "many":
                batch = item[1]
                for one in batch:
                    self._take(*one)
                n += len(batch)
                with self._room:
                    self._batched -= len(batch)
                    self._room.notify_all()
            else:
                self._take(*item)
                n += 1
            if n >= self.batch_max:
                break
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                item = None
        self.step(time.monotonic())
        if self.queue.empty() and not len(self.merger) and not self._unwritten and not self._writing and not any(
                state.dirty for state in self._receivers.values()):
            self.idle.set()

    def flush(self) -> None:
        """Close every open group now and store it (at shutdown)."""
        self.step(None)

    def _take(self, kind: str, payload, receiver: str | None, arrived_ns: int, token) -> None:
        if kind == "status":
            self._status(payload, receiver, arrived_ns, token)
            return
        self.stats["frames_in"] += 1
        if kind == "heard":  # parsed and checked by an intake process
            heard = heard_from_tuple(payload)
            self._note_receiver(heard)
            self._taken_ns = heard.arrived_ns
            if self.merger.add(heard, time.monotonic(), token):
                self._early[heard.telegram] = self._decode_bytes(heard.telegram)
            return
        if kind == "bad":
            reason, message = payload
            self._reject(reason, f"raw from {receiver}: {message}", (token,))
            return
        try:
            if kind == "raw":
                heard = parse_raw(payload, topic_receiver=receiver, arrived_ns=arrived_ns)
            else:
                text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload
                heard = parse_line(text, receiver=receiver or "stdin", arrived_ns=arrived_ns)
        except BadInput as err:
            self._reject(err.reason, f"{kind} from {receiver or 'stdin'}: {err}", (token,))
            return
        self._note_receiver(heard)
        self._taken_ns = heard.arrived_ns
        if self.merger.add(heard, time.monotonic(), token):
            self._early[heard.telegram] = self._decode_bytes(heard.telegram)

    def _decode_bytes(self, telegram: bytes) -> Telegram | DecodeError:
        try:
            return decode(telegram, keys=self.keys, frame_format=None, formats=self.formats, describe=False)
        except DecodeError as err:
            return err

    def _status(self, payload: bytes, receiver: str | None, arrived_ns: int, token) -> None:
        text = payload.decode("utf-8", "replace").strip() if isinstance(payload, bytes) else str(payload)
        if text not in ("online", "offline") or not receiver:
            self._reject("bad_status", f"status of {receiver}: {text[:40]!r} is not online/offline", (token,))
            return
        try:
            self.store.set_receiver_status(receiver, text, arrived_ns)
        except Exception as err:  # noqa: BLE001 - the store may be away: the broker delivers it again
            self.stats["store_errors"] += 1
            log.error("store %s: %s (receiver status not stored)", type(err).__name__, err)
            return
        if token is not None and self.ack is not None:
            self.ack(token)

    def _reject(self, reason: str, message: str, tokens: tuple) -> None:
        self.rejects[reason] += 1
        self.stats["rejected"] += 1
        log.warning("rejected %s", message[:300])
        for token in tokens:
            if token is not None and self.ack is not None:
                self.ack(token)  # bad input is dropped, not redelivered forever

    def _note_receiver(self, heard: Heard) -> None:
        state = self._receivers.get(heard.receiver)
        if state is None:
            state = self._receivers[heard.receiver] = _ReceiverState()
        state.new_frames += 1
        state.recent.append(heard.arrived_ns / 1e9)
        state.last_seen_ns = max(state.last_seen_ns, heard.arrived_ns)
        if heard.ppm is not None:
            state.ppm = heard.ppm
        if heard.dropped_samples is not None:
            state.dropped_samples = heard.dropped_samples
        state.source = heard.source
        state.dirty = True

    def _receiver_rows(self) -> list[ReceiverRow]:
        now_s = time.time()
        rows = []
        for rid, state in self._receivers.items():
            while state.recent and state.recent[0] < now_s - 60:
                state.recent.popleft()
            if not state.dirty:
                continue
            rows.append(ReceiverRow(id=rid, last_seen_ns=state.last_seen_ns, frames=state.new_frames,
                                    frames_per_min=float(len(state.recent)), ppm=state.ppm,
                                    dropped_samples=state.dropped_samples, source=state.source))
        return rows

    def _arrived_by(self) -> int | None:
        """A time (wall clock, ns) before which every frame that arrived has been taken into the
        merger: the arrival of the last frame taken (the queue is in arrival order; an --intake
        keeps the broker's order), or, with the queue empty, a moment ago (a frame may still be
        on its way from an intake process). None before the first frame. A clock that jumps
        forward can close a group before a late copy is taken: the store folds that copy into
        the same reception."""
        taken = self._taken_ns
        if taken is None:
            return None
        if self.queue.empty():
            return max(taken, time.time_ns() - IN_TRANSIT_NS)
        return taken

    def step(self, now_s: float | None) -> None:
        receptions = self.merger.due(now_s, self._arrived_by())
        rows: list[ReceptionRow] = []
        decoded: list[tuple[ReceptionRow, Telegram]] = []
        for rec in receptions:
            row_t = self._decode(rec)
            if row_t is not None:
                rows.append(row_t[0])
                decoded.append(row_t)
        rows.extend(self._retry_pending(decoded))
        mono = time.monotonic()
        receivers = []
        if rows or now_s is None or mono >= self._next_receivers:
            receivers = self._receiver_rows()
            if receivers:
                self._next_receivers = mono + RECEIVERS_EVERY_S
        tokens = [t for rec in receptions for t in rec.tokens]
        if self._writes is not None and (rows or receivers):  # run(): its writer thread stores them
            self._receivers_counted()  # their counts travel with the batch (kept on a retry)
            with self._room:
                self._writing += 1
            self._writes.put((rows, receivers, tokens, decoded))
        elif rows or receivers or self._unwritten:
            self._unwritten.append((rows, tokens, decoded))
            all_rows = [r for batch, _, _ in self._unwritten for r in batch]
            created = self._store_write(all_rows, receivers)
            if created is None:
                time.sleep(0.5)
                return
            self._receivers_counted()
            tokens = [t for _, batch_tokens, _ in self._unwritten for t in batch_tokens]
            done = [d for _, _, batch_decoded in self._unwritten for d in batch_decoded]
            self._unwritten.clear()
            self._committed(all_rows, tokens, done, created)
        elif tokens:  # every group of this step was rejected
            self._ack_all(tokens)
        self._check_alarms()

    def _committed(self, all_rows: list[ReceptionRow], tokens: list, done: list, created: frozenset[int]) -> None:
        """After the commit of ``all_rows``: acknowledge, count, republish, tell the listeners."""
        self._ack_all(tokens)
        self.stats["stored"] += len(all_rows)
        index = {id(r): i for i, r in enumerate(all_rows)}
        out: list[tuple[str, str, bool]] = []
        for row, t in done:
            # a reception goes out on PREFIX/meter/<id> once for the fleet: from the hub (or
            # worker) whose insert created it, not again from one that added a later hearing
            if index[id(row)] in created:
                if self.publish is not None or self.publish_many is not None:
                    out.append(self._republish(row, t))
            else:
                self.stats["republish_left_to_creator"] += 1
            for listener in self.listeners:
                listener(row, t)
        if out:
            if self.publish_many is not None:  # (publish_objects only with publish_many)
                self.publish_many(out)
            else:
                for topic, payload, retain in out:
                    self.publish(topic, payload, retain)

    def _ack_all(self, tokens: list) -> None:
        tokens = [t for t in tokens if t is not None]
        if not tokens:
            return
        if self.ack_many is not None:
            self.ack_many(tokens)
        elif self.ack is not None:
            for token in tokens:
                self.ack(token)

    def _decode(self, rec: Reception) -> tuple[ReceptionRow, Telegram] | None:
        t = self._early.pop(rec.telegram, None)
        if t is None:
            t = self._decode_bytes(rec.telegram)
        if isinstance(t, DecodeError):
            self._reject("undecodable", f"telegram from {rec.best.receiver}: {t}", ())
            return None
        if t.decryption not in KEPT_OUTCOMES or (t.records_outcome == "error" and not t.records):
            why = t.problems[0] if t.problems else t.decryption
            self._reject("undecodable", f"telegram of meter {t.link.address.id} from {rec.best.receiver}: {why}", ())
            return None
        self.stats["decoded_" + t.decryption] += 1
        seen_ns = min(h.arrived_ns for h in rec.hearings)
        meter = t.meter.id
        interval = self.intervals.heard(meter, seen_ns)
        if t.records_outcome == "format_unknown":
            if meter not in self._pending and len(self._pending) >= PENDING_METERS:
                self._pending.pop(next(iter(self._pending)))  # bounded: the longest-waiting meter gives way
            waiting = self._pending.setdefault(meter, deque(maxlen=PENDING_PER_METER))
            waiting.append(rec)
        return self._row(rec, t, seen_ns, interval), t

    def _row(self, rec: Reception, t: Telegram, seen_ns: int, interval: float | None) -> ReceptionRow:
        readings = tuple([ReadingRow(idx=i, quantity=r.quantity, unit=r.unit, value=float(r.value),
                                     storage=r.storage, tariff=r.tariff, subunit=r.subunit)
                          for i, r in enumerate(t.records) if r.value is not None])
        best = rec.best
        m = t.meter  # a property that looks through the layers: once
        return ReceptionRow(meter=m.id, telegram=rec.telegram.hex(), bucket=rec.bucket, time_ns=rec.time_ns,
                            seen_ns=seen_ns, manufacturer=m.manufacturer_code,
                            device_type=m.device_type_name, version=m.version, mode=best.mode,
                            frame_format=best.frame_format, decryption=t.decryption, source=best.source,
                            hub=self.hub_id, hearings=rec.hearings, readings=readings, interval_s=interval)

    def _retry_pending(self, decoded) -> list[ReceptionRow]:
        """Compact frames stored before their format was known get their readings now."""
        out = []
        for row, t in decoded:
            waiting = self._pending.get(row.meter)
            if not waiting or t.records_outcome != "ok":
                continue
            del self._pending[row.meter]
            for rec in waiting:
                again = decode(rec.telegram, keys=self.keys, frame_format=None, formats=self.formats, describe=False)
                if again.records_outcome == "ok":
                    self.stats["compact_late"] += 1
                    out.append(self._row(rec, again, min(h.arrived_ns for h in rec.hearings), None))
        return out

    def _republish(self, row: ReceptionRow, t: Telegram) -> tuple[str, str | dict, bool]:
        """The PREFIX/meter/<id> message of a stored reception: (topic below the prefix, payload, retain);
        the payload as a dict with ``publish_objects`` (an intake process writes the JSON)."""
        best = row.best
        payload = {"id": row.meter, "manufacturer": row.manufacturer, "device_type": row.device_type,
                   "time": iso(row.time_ns), "telegram": row.telegram, "decryption": row.decryption,
                   "best_receiver": best.receiver,
                   "receivers": [{"id": h.receiver, "rssi_dbfs": h.rssi_dbfs, "snr_db": h.snr_db}
                                 for h in row.hearings],
                   "records": [r.to_json() for r in t.records]}
        for fields in self.meter_fields:
            payload.update(fields(t))
        return f"meter/{row.meter}", payload if self.publish_objects else json.dumps(payload), False

    def _check_alarms(self, *, force: bool = False) -> None:
        if not self.alarms:
            return
        now = time.monotonic()
        if not force and now < self._next_alarm_check:
            return
        self._next_alarm_check = now + self.alarm_check_s
        try:
            candidates = self.store.silence_candidates()
        except Exception as err:  # noqa: BLE001 - the database may be away for a while; try again later
            log.error("alarm check: %s: %s", type(err).__name__, err)
            return
        for change in silence_changes(candidates, time.time_ns(), missed=self.missed_intervals):
            if not self.store.set_alarm(change.meter, active=change.active, now_ns=change.now_ns,
                                        interval_s=change.interval_s, last_seen_ns=change.last_seen_ns):
                continue  # another hub instance got there first
            self.stats["alarms_raised" if change.active else "alarms_cleared"] += 1
            log.warning("meter %s: silence alarm %s (interval %.1f s)", change.meter,
                        "raised" if change.active else "cleared", change.interval_s)
            if self.publish is not None:
                self.publish(f"alarm/{change.meter}", json.dumps(change.to_json()), True)

    def status(self) -> dict:
        return {"hub": self.hub_id, "stats": dict(self.stats), "rejects": dict(self.rejects),
                "queue": self.queue.qsize(), "open_groups": len(self.merger), "formats": len(self.formats)}
