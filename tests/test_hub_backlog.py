"""A hub working through a backlog (after a restart, or behind a burst) closes a merge group once
every copy that arrived within the window after its first copy has been taken, instead of a window
after it took the group's first copy; a group of copies that arrived just now still waits its window."""

from __future__ import annotations

import time

from flowgraphs.hub.ingest import parse_raw
from flowgraphs.hub.merge import Merger

from .test_hub import KEYS, frames, meter_of, raw_message  # noqa: F401 - frames: the fixture


def test_merger_closes_by_arrival_when_told_what_arrived(frames):  # noqa: F811
    m = Merger(window_s=2.0)
    f = frames[0]
    for rx, arrived_ns in (("a", 1_000_000_000), ("b", 2_500_000_000)):
        m.add(parse_raw(raw_message(f, rx).encode(), topic_receiver=rx, arrived_ns=arrived_ns), 10.0, token=rx)
    assert m.due(10.5) == [] and m.due(10.5, arrived_by_ns=2_999_999_999) == []  # a copy may still come
    (rec,) = m.due(10.5, arrived_by_ns=3_000_000_000)  # everything that arrived by first + window is in
    assert {h.receiver for h in rec.hearings} == {"a", "b"} and rec.tokens == ("a", "b") and len(m) == 0


def test_hub_behind_stores_old_copies_at_once_and_fresh_ones_after_their_window(tmp_path, frames):  # noqa: F811
    from flowgraphs.hub.core import Hub
    from flowgraphs.hub.store import open_store
    from mbus.keys import KeyStore

    store = open_store(f"sqlite:///{tmp_path / 'hub.db'}")
    hub = Hub(store, keys=KeyStore.from_file(KEYS), window_s=2.0)
    old, fresh = frames[0], frames[1]
    now = time.time_ns()
    for rx, age_s in (("north", 10.0), ("south", 9.5)):  # both copies waited in the broker
        hub.submit("raw", raw_message(old, rx).encode(), rx, arrived_ns=now - int(age_s * 1e9))
    hub.submit("raw", raw_message(fresh, "north").encode(), "north", arrived_ns=now)
    hub.pump(timeout_s=0)  # takes all three; the old group's window ended long before the last arrival
    rows = store.receptions()
    assert [r["telegram"] for r in rows] == [old["telegram"]]
    assert {h["receiver"] for h in store.hearings(meter_of(old))} == {"north", "south"}
    assert len(hub.merger) == 1  # the fresh one waits: a copy from another receiver may follow
    hub.submit("raw", raw_message(fresh, "south").encode(), "south")
    hub.pump(timeout_s=0)
    assert len(store.receptions()) == 1 and len(hub.merger) == 1
    hub.flush()
    assert {h["receiver"] for h in store.hearings(meter_of(fresh))} == {"north", "south"}
    assert len(store.receptions()) == 2 and not hub.rejects
    store.close()


def test_a_telegram_is_decoded_once_when_its_first_copy_comes(tmp_path, frames, monkeypatch):  # noqa: F811
    """The worker decodes a group's telegram as its first copy is taken (while the window waits for
    the other receivers), once for all copies; the reception stored at the close carries the readings."""
    import flowgraphs.hub.core as core
    from flowgraphs.hub.store import open_store
    from mbus.keys import KeyStore

    calls = []
    real = core.decode
    monkeypatch.setattr(core, "decode", lambda data, **kw: calls.append(data) or real(data, **kw))
    store = open_store(f"sqlite:///{tmp_path / 'hub.db'}")
    hub = core.Hub(store, keys=KeyStore.from_file(KEYS), window_s=30.0)
    f = next(f for f in frames if meter_of(f) == "55443322")
    hub.submit("raw", raw_message(f, "north").encode(), "north")
    hub.pump(timeout_s=0)
    assert len(calls) == 1 and len(hub.merger) == 1 and store.receptions() == []  # decoded, still open
    assert hub.status()["formats"] == 1  # the decode taught the meter's format already
    hub.submit("raw", raw_message(f, "south", rssi_offset_db=3).encode(), "south")
    hub.pump(timeout_s=0)
    hub.flush()
    assert len(calls) == 1 and calls[0].hex() == f["telegram"]
    (rec,) = store.receptions()
    assert rec["best_receiver"] == "south" and {h["receiver"] for h in store.hearings()} == {"north", "south"}
    assert store.readings("55443322") and not hub.rejects
    store.close()


def test_store_rows_one_per_key_in_key_order():
    """A batch's rows of a table: one per key (the better of two, as the table says), in key order;
    rows already unique and in order come through as they are."""
    from flowgraphs.hub.store import _first, _later, _unique

    rows = [("b", 1, "x"), ("a", 2, "y"), ("b", 1, "z"), ("a", 1, "w")]
    assert _unique(rows, 2, _first) == [("a", 1, "w"), ("a", 2, "y"), ("b", 1, "x")]
    assert _unique(rows, 1, _later(1)) == [("a", 2, "y"), ("b", 1, "z")]
    ordered = [("a", 1, "w"), ("a", 2, "y"), ("b", 1, "x")]
    assert _unique(ordered, 2, _first) is ordered
    assert _unique([("a", 1, "w"), ("a", 1, "v")], 2, _later(1)) == [("a", 1, "v")]  # equal keys are no order


def test_receivers_of_batches_written_together_add_up_their_frames():
    """The writer takes the batches that wait as one transaction: each receiver's new frames are
    added up (the store adds them to its count), the rest is the later batch's."""
    from flowgraphs.hub.core import _merge_receivers
    from flowgraphs.hub.store import ReceiverRow

    a = [ReceiverRow(id="north", last_seen_ns=10, frames=3, frames_per_min=30.0, ppm=1.5),
         ReceiverRow(id="south", last_seen_ns=11, frames=1, frames_per_min=10.0)]
    b = [ReceiverRow(id="north", last_seen_ns=20, frames=2, frames_per_min=31.0, dropped_samples=7),
         ReceiverRow(id="east", last_seen_ns=21, frames=4, frames_per_min=40.0)]
    got = {r.id: r for r in _merge_receivers(a, b)}
    assert got["north"] == ReceiverRow(id="north", last_seen_ns=20, frames=5, frames_per_min=31.0, ppm=1.5,
                                       dropped_samples=7)
    assert got["south"] == a[1] and got["east"] == b[1] and len(got) == 3
    assert _merge_receivers([], b) is b and _merge_receivers(a, []) is a
