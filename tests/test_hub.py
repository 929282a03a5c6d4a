"""The fleet hub (``wmbus-sdr hub``) against real components started here on free ports: mosquitto,
PostgreSQL (Debian's initdb/pg_ctl, run as the postgres user when we are root) and headless
Chromium. Receivers are simulated by publishing the edge's raw JSON with paho-mqtt; the telegrams
are the bundled recording's frames as ``wmbus-sdr decode`` gives them."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from flowgraphs.hub.ingest import BadInput, parse_line, parse_raw, parse_rtl433, parse_rtlwmbus
from flowgraphs.hub.merge import Merger
from mbus.frame import build_format_a

from .conftest import REPO

RECORDING = REPO / "recordings" / "example_868.625M_2M4.sigmf-meta"
KEYS = REPO / "recordings" / "keys.txt"
PY = sys.executable
ENV = {**os.environ, "PYTHONPATH": str(REPO)}
PREFIX = "fleet"
TIMEOUT_S = 60.0


# --- the recording's frames -----------------------------------------------------------------------
@pytest.fixture(scope="session")
def frames() -> list[dict]:
    """The 8 frames of the bundled recording (jsonl output of decode)."""
    p = subprocess.run([PY, "-m", "flowgraphs.cli", "decode", str(RECORDING), "--keys", str(KEYS), "--output",
                        "jsonl", "--quiet"], capture_output=True, text=True, env=ENV, timeout=300, check=True)
    out = [json.loads(line) for line in p.stdout.splitlines()]
    assert len(out) == 8 and all(f["crc_ok"] for f in out)
    return out


@pytest.fixture(scope="session")
def rtlwmbus_lines() -> list[str]:
    p = subprocess.run([PY, "-m", "flowgraphs.cli", "decode", str(RECORDING), "--output", "rtlwmbus", "--quiet"],
                       capture_output=True, text=True, env=ENV, timeout=300, check=True)
    return p.stdout.splitlines()


def raw_message(frame: dict, receiver: str, *, rssi_offset_db: float = 0.0, time_text: str | None = "keep",
                telegram: str | None = None) -> str:
    """The edge's raw JSON for one frame as ``receiver`` heard it."""
    return json.dumps({"v": 1, "receiver": receiver, "telegram": telegram or frame["telegram"], "mode": frame["mode"],
                       "format": frame["format"],
                       "time": "2026-12-01T19:55:00.123456Z" if time_text == "keep" else time_text,
                       "time_ns": None, "sample": frame["sample"], "sample_rate_hz": 2.4e6,
                       "rssi_dbfs": round(frame["rssi_dbfs"] + rssi_offset_db, 2), "snr_db": frame["snr_db"],
                       "freq_offset_hz": frame["freq_offset_hz"], "chip_rate_hz": frame["chip_rate_hz"],
                       "channel_hz": frame["channel_hz"], "ppm": 1.5})


def frame_time(i: int) -> str:
    """Distinct edge times for the frames (as a receiver with a clock stamps them)."""
    when = datetime(2026, 12, 1, 19, 55, 10, tzinfo=UTC) + timedelta(seconds=5 * i, microseconds=i)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def meter_of(frame: dict) -> str:
    return frame["decoded"]["id"]


# --- real components --------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition, what: str, timeout_s: float = TIMEOUT_S, every_s: float = 0.1):
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(every_s)


def _port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


@pytest.fixture
def broker(tmp_path):
    """A real mosquitto on a free port (make test installs it)."""
    exe = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin")
    if exe is None:
        pytest.skip("mosquitto is not installed (make test installs it)")
    pytest.importorskip("paho.mqtt.client")
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\nlog_dest stderr\n"
                    "max_queued_messages 100000\n")
    proc = subprocess.Popen([exe, "-c", str(conf)], stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: _port_open(port), "mosquitto", 15)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


class Receivers:
    """Simulated edge receivers: one paho client publishing raw JSON with QoS 1."""

    def __init__(self, port: int):
        import paho.mqtt.client as mqtt

        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"sim-{time.time_ns()}")
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def publish(self, receiver: str, payload: str | bytes, topic: str | None = None) -> None:
        info = self.client.publish(topic or f"{PREFIX}/raw/{receiver}", payload, qos=1)
        info.wait_for_publish(timeout=10)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


class Listener:
    """Collects messages of a topic filter (retained ones too)."""

    def __init__(self, port: int, topics: str):
        import paho.mqtt.client as mqtt

        self.got: list[tuple[str, dict | None]] = []
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.client.on_message = lambda c, u, m: self.got.append(
            (m.topic, json.loads(m.payload) if m.payload else None))
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(topics, qos=1)
        self.client.loop_start()
        time.sleep(0.3)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


class HubProcess:
    """``wmbus-sdr hub`` as a subprocess; stderr to a file we poll."""

    def __init__(self, tmp_path: Path, *args: str, name: str = "hub", stdin=None):
        self.log = tmp_path / f"{name}-{time.time_ns()}.log"
        self._log = self.log.open("w")
        self.proc = subprocess.Popen([PY, "-m", "flowgraphs.cli", "-v", "hub", "--hub-id", name, *args],
                                     stdin=stdin, stdout=subprocess.DEVNULL, stderr=self._log, env=ENV)
        self.url = None

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, *, mqtt: bool = True, http: bool = False) -> HubProcess:
        def ready():
            text = self.text()
            assert self.proc.poll() is None, f"hub exited early:\n{text}"
            # the CLI's line (after every worker and intake is ready), not a session's own log line
            return (not mqtt or "wmbus-sdr hub: subscribed to" in text) and (not http or "dashboard at" in text)
        wait_for(ready, "the hub to start", 60)
        if http:
            self.url = self.text().split("dashboard at ", 1)[1].split()[0]
        return self

    def api(self, path: str):
        with urllib.request.urlopen(self.url.rstrip("/") + path, timeout=10) as r:
            return json.loads(r.read())

    def stop(self, sig=signal.SIGTERM) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.text()


@pytest.fixture
def hubs(tmp_path):
    started: list[HubProcess] = []

    def start(*args: str, name: str = "hub", mqtt: bool = True, http: bool = False) -> HubProcess:
        h = HubProcess(tmp_path, *args, name=name)
        started.append(h)
        return h.wait_ready(mqtt=mqtt, http=http)
    yield start
    for h in started:
        h.stop(signal.SIGKILL)


def sqlite_rows(path: Path, sql: str, params: tuple = ()) -> list[tuple]:
    if not path.exists():
        return []
    conn = sqlite3.connect(path, timeout=30)
    try:
        return conn.execute(sql, params).fetchall()
    except sqlite3.OperationalError:  # tables not created yet
        return []
    finally:
        conn.close()


def count(path: Path, table: str) -> int:
    rows = sqlite_rows(path, f"SELECT COUNT(*) FROM {table}")  # noqa: S608 - fixed names
    return rows[0][0] if rows else 0


# --- units: parsing and merging ---------------------------------------------------------------------
def test_raw_message_parses_to_the_canonical_telegram(frames):
    f = frames[1]
    heard = parse_raw(raw_message(f, "attic").encode(), topic_receiver="attic", arrived_ns=1)
    assert heard.telegram.hex() == f["telegram"] and heard.receiver == "attic"
    assert heard.rssi_dbfs == round(f["rssi_dbfs"], 2) and heard.ppm == 1.5
    assert heard.time_ns == 1_796_154_900_123_456_000  # 2026-12-01T19:55:00.123456Z
    # the same frame with its format A CRCs is accepted and brought to canonical form
    with_crcs = build_format_a(bytes.fromhex(f["telegram"])).hex()
    assert parse_raw(raw_message(f, "attic", telegram=with_crcs).encode(), topic_receiver="attic",
                     arrived_ns=1).telegram.hex() == f["telegram"]


@pytest.mark.parametrize(("payload", "reason"), [
    (b"not json at all", "not_json"),
    (b"\xff\xfe", "not_json"),
    (b"[1, 2]", "bad_field"),
    (b'{"v": 1, "receiver": "a"}', "bad_field"),
    (b'{"v": 2, "receiver": "a", "telegram": "00", "mode": "T1", "rssi_dbfs": -20}', "bad_field"),
    (b'{"v": 1, "receiver": "a", "telegram": "zz44", "mode": "T1", "rssi_dbfs": -20}', "bad_hex"),
    (b'{"v": 1, "receiver": "a", "telegram": "2e4", "mode": "T1", "rssi_dbfs": -20}', "bad_hex"),
    (b'{"v": 1, "receiver": "a", "telegram": "0a44", "mode": "T1", "rssi_dbfs": -20}', "too_short"),
    (b'{"v": 1, "receiver": "a", "telegram": "2e4493157856341233037a2a00", "mode": "T1", "rssi_dbfs": -20}',
     "bad_crc"),
    (b'{"v": 1, "receiver": "b", "telegram": "0b4493157856341233037a", "mode": "T1", "rssi_dbfs": -20}',
     "bad_field"),  # the topic says receiver a
    (b'{"v": 1, "receiver": "a", "telegram": "0a4493157856341233037a", "mode": "T1", "rssi_dbfs": "x"}',
     "bad_field"),
])
def test_bad_raw_messages_are_rejected_with_a_reason(payload, reason):
    with pytest.raises(BadInput) as err:
        parse_raw(payload, topic_receiver="a", arrived_ns=1)
    assert err.value.reason == reason


def rtl433_line(canonical_hex: str, mode: str = "T") -> str:
    """What rtl_433's m_bus.c prints for a format A frame: L-2 first, the frame without CRCs, then
    the last block's CRC (facts from its m_bus_output_data)."""
    c = bytes.fromhex(canonical_hex)
    data = bytes([c[0] - 2]) + c[1:] + build_format_a(c)[-2:]
    return json.dumps({"time": "2026-12-01 19:55:00", "model": "Wireless-MBus", "mode": mode, "M": "HMS",
                       "id": int(c[4:8][::-1].hex()), "version": c[8], "type": f"0x{c[9]:02X}",
                       "type_string": "Heat", "C": f"0x{c[1]:02X}", "data_length": len(c) + 2,
                       "data": data.hex(), "mic": "CRC", "rssi": -12.5, "snr": 18.0})


def test_rtl433_and_rtlwmbus_lines_parse(frames, rtlwmbus_lines):
    for f in frames:
        heard = parse_rtl433(rtl433_line(f["telegram"]), receiver="r433", arrived_ns=1)
        assert heard.telegram.hex() == f["telegram"] and heard.rssi_dbfs == -12.5 and heard.source == "rtl433"
    bad = json.loads(rtl433_line(frames[0]["telegram"]))
    bad["data"] = bad["data"][:-4] + ("0000" if not bad["data"].endswith("0000") else "1111")
    with pytest.raises(BadInput, match="bad_crc"):
        parse_rtl433(json.dumps(bad), receiver="r433", arrived_ns=1)
    with pytest.raises(BadInput, match="not_mbus"):
        parse_line('{"model": "Acurite-Tower", "id": 1}', receiver="r433", arrived_ns=1)
    assert len(rtlwmbus_lines) == 8
    for line, f in zip(rtlwmbus_lines, frames, strict=True):
        heard = parse_rtlwmbus(line, receiver="wm", arrived_ns=1)
        assert heard.telegram.hex() == f["telegram"] and heard.mode == f["mode"]
    with pytest.raises(BadInput, match="bad_crc"):
        parse_line(rtlwmbus_lines[0].replace(";1;1;", ";0;1;", 1), receiver="wm", arrived_ns=1)


def test_merger_keeps_every_receiver_and_names_the_best(frames):
    m = Merger(window_s=2.0)
    f = frames[0]
    for rx, offset in (("a", -3.0), ("b", 0.0), ("c", -9.0)):
        m.add(parse_raw(raw_message(f, rx, rssi_offset_db=offset).encode(), topic_receiver=rx, arrived_ns=5),
              10.0, token=rx)
    assert m.due(11.9) == []
    (rec,) = m.due(12.0)
    assert {h.receiver for h in rec.hearings} == {"a", "b", "c"} and rec.best.receiver == "b"
    assert rec.tokens == ("a", "b", "c") and len(m) == 0


# --- the hub with mosquitto and SQLite ----------------------------------------------------------------
def publish_fleet(rx: Receivers, frames: list[dict], which=None, *, receivers=(("north", 0.0), ("south", -6.0))):
    for i, f in enumerate(frames):
        if which is not None and i not in which:
            continue
        for name, offset in receivers:
            rx.publish(name, raw_message(f, name, rssi_offset_db=offset, time_text=frame_time(i)))


def publish_fleet_and_variants(rx, frames, n: int = 40) -> list[str]:
    """The fleet's frames from both receivers, then ``n`` more telegrams of the gas meter heard by
    both (north 6 dB stronger); the extra telegrams' hex."""
    publish_fleet(rx, frames)
    extra = variants(n)
    gas = next(f for f in frames if meter_of(f) == "55443322")
    for i, telegram in enumerate(extra):
        for name, offset in (("north", 0.0), ("south", -6.0)):
            rx.publish(name, raw_message(gas, name, rssi_offset_db=offset, time_text=frame_time(60 + i),
                                         telegram=telegram))
    return extra


def check_fleet_store(db: Path, frames: list[dict], receivers=("north", "south")) -> None:
    rows = sqlite_rows(db, "SELECT telegram, meter, best_receiver, best_rssi_dbfs FROM receptions")
    assert sorted(r[0] for r in rows) == sorted(f["telegram"] for f in frames)  # each telegram once
    for telegram, meter, best, best_rssi in rows:
        hearings = dict(sqlite_rows(db, "SELECT receiver, rssi_dbfs FROM hearings WHERE telegram = ?", (telegram,)))
        assert set(hearings) == set(receivers)
        f = next(x for x in frames if x["telegram"] == telegram)
        assert hearings["north"] == round(f["rssi_dbfs"], 2)
        assert hearings["south"] == pytest.approx(round(f["rssi_dbfs"] - 6.0, 2))
        assert best == "north" and best_rssi == hearings["north"] and meter == meter_of(f)


@pytest.mark.parametrize("layout", [("--intake", "0"), ("--intake", "1")], ids=["one", "intake"])
def test_two_receivers_one_reception_each_with_both_rssis(broker, hubs, tmp_path, frames, layout):
    """With --intake the intake process parses the raw JSON and publishes the core's readings."""
    db = tmp_path / "hub.db"
    hubs("--mqtt", f"mqtt://127.0.0.1:{broker}/{PREFIX}", "--db", f"sqlite:///{db}", "--keys", str(KEYS),
         "--window", "1", *layout)
    out = Listener(broker, f"{PREFIX}/meter/#")
    rx = Receivers(broker)
    publish_fleet(rx, frames)
    wait_for(lambda: count(db, "hearings") == 16 and len(out.got) >= 8, "16 hearings and 8 republished readings")
    check_fleet_store(db, frames)
    # central decryption and decoding: the heat meter's energy, and the compact frame of 20261126
    # decoded with the format its full frame taught (the full frame came first)
    assert sqlite_rows(db, "SELECT value, unit FROM readings WHERE meter = '31415926' AND quantity = 'energy'") \
        == [(4711.0, "kWh")]
    volumes = sqlite_rows(db, "SELECT value FROM readings WHERE meter = '20261126' AND quantity = 'volume' "
                              "ORDER BY time_ns")
    assert [v for (v,) in volumes] == [4.242, 4.25]
    assert count(db, "meters") == 7
    heat = next(m for t, m in out.got if t == f"{PREFIX}/meter/31415926")
    assert heat["decryption"] == "ok" and heat["best_receiver"] == "north"
    assert {r["id"] for r in heat["receivers"]} == {"north", "south"}
    assert any(r["quantity"] == "energy" and r["value"] == 4711 for r in heat["records"])
    assert sorted(t for t, _ in out.got) == sorted(f"{PREFIX}/meter/{meter_of(f)}" for f in frames)  # each once
    recv = dict(sqlite_rows(db, "SELECT id, frames FROM receivers"))
    assert recv == {"north": 8, "south": 8}
    out.close()
    rx.close()


@pytest.mark.parametrize("layout", [("--intake", "0"), ("--intake", "1"), ("--workers", "2")],
                         ids=["one", "intake", "workers"])
def test_hub_restart_mid_run_loses_nothing(broker, hubs, tmp_path, frames, layout):
    """Killed (SIGKILL) while frames wait in its merge window, and down while more arrive: the
    persistent session (QoS 1, acknowledged only once stored) brings them all; with intake or
    worker processes too (they end when the first process is gone, their sessions keep the rest)."""
    db = tmp_path / "hub.db"
    args = ("--mqtt", f"mqtt://127.0.0.1:{broker}/{PREFIX}", "--db", f"sqlite:///{db}", "--keys", str(KEYS),
            "--window", "1.5", "--client-id", "hub-restart", *layout)
    hub = hubs(*args)
    rx = Receivers(broker)
    publish_fleet(rx, frames, range(0, 3))
    wait_for(lambda: count(db, "hearings") == 6, "the first 3 telegrams stored")
    publish_fleet(rx, frames, range(3, 5))
    time.sleep(0.3)  # delivered to the hub, but its 1.5 s window is still open: nothing stored nor acked
    hub.stop(signal.SIGKILL)
    assert count(db, "receptions") == 3
    publish_fleet(rx, frames, range(5, 8))  # while the hub is down
    hubs(*args, name="hub2")
    wait_for(lambda: count(db, "hearings") == 16, "all 16 hearings after the restart")
    check_fleet_store(db, frames)
    rx.close()


def test_silence_alarm_raised_after_three_intervals_and_cleared(broker, hubs, tmp_path, frames):
    db = tmp_path / "hub.db"
    hubs("--mqtt", f"mqtt://127.0.0.1:{broker}/{PREFIX}", "--db", f"sqlite:///{db}", "--keys", str(KEYS),
         "--window", "0.3", "--alarm-check", "0.1")
    alarms = Listener(broker, f"{PREFIX}/alarm/#")
    rx = Receivers(broker)
    gas = next(f for f in frames if meter_of(f) == "55443322")
    interval_s = 1.0
    for i in range(4):  # learns a 1 s interval
        if i:
            time.sleep(interval_s)
        rx.publish("north", raw_message(gas, "north", time_text=None))
    last = time.monotonic()
    raised = wait_for(lambda: [m for t, m in alarms.got if m and m["active"]], "the alarm")
    silent_for = time.monotonic() - last
    assert silent_for >= 3 * interval_s - 0.1  # not before 3 intervals
    assert raised[0]["meter"] == "55443322" and raised[0]["interval_s"] == pytest.approx(interval_s, abs=0.3)
    assert sqlite_rows(db, "SELECT alarm FROM meters WHERE id = '55443322'") == [(1,)]
    assert len(sqlite_rows(db, "SELECT * FROM alarms WHERE meter = '55443322' AND cleared_ns IS NULL")) == 1
    rx.publish("north", raw_message(gas, "north", time_text=None))  # heard again
    wait_for(lambda: [m for t, m in alarms.got if m and not m["active"]], "the alarm to clear")
    assert sqlite_rows(db, "SELECT alarm FROM meters WHERE id = '55443322'") == [(0,)]
    assert len(sqlite_rows(db, "SELECT * FROM alarms WHERE meter = '55443322' AND cleared_ns IS NOT NULL")) == 1
    alarms.close()
    # the alarm topic is retained: a late subscriber sees the last state (cleared)
    late = Listener(broker, f"{PREFIX}/alarm/#")
    wait_for(lambda: late.got, "the retained alarm state")
    assert late.got[-1][1]["active"] is False
    late.close()
    rx.close()


@pytest.mark.parametrize("layout", [("--intake", "0"), ("--intake", "1")], ids=["one", "intake"])
def test_bad_input_is_counted_and_never_stored(broker, hubs, tmp_path, frames, layout):
    """With --intake the intake process finds the bad raw messages; the core counts and logs them."""
    db = tmp_path / "hub.db"
    hub = hubs("--mqtt", f"mqtt://127.0.0.1:{broker}/{PREFIX}", "--db", f"sqlite:///{db}", "--keys", str(KEYS),
               "--window", "0.5", "--http", "127.0.0.1:0", *layout, http=True)
    rx = Receivers(broker)
    heat = next(f for f in frames if meter_of(f) == "31415926")
    good = raw_message(heat, "north")
    flipped = bytearray(build_format_a(bytes.fromhex(heat["telegram"])))
    flipped[40] ^= 0x10  # a bit error inside a block: its CRC fails
    corrupt = bytearray.fromhex(heat["telegram"])
    corrupt[50] ^= 0x01  # canonical, so no CRC to check: the AFL MAC over the encrypted data fails
    bad = [b"garbage", b"\x00\xff\x80", b'{"v": 1}', b"[]", json.dumps({"v": 1, "receiver": "north"}).encode(),
           raw_message(heat, "north", telegram="5044zz").encode(),
           raw_message(heat, "north", telegram="12345").encode(),
           raw_message(heat, "north", telegram=flipped.hex()).encode(),
           raw_message(heat, "north", telegram=corrupt.hex()).encode(),
           raw_message(heat, "south").encode()]  # published on north's topic: a receiver mismatch
    for payload in bad:
        rx.publish("north", payload)
    rx.publish("north", b"maybe", topic=f"{PREFIX}/status/north")  # availability is online or offline
    rx.publish("north", good)
    wait_for(lambda: count(db, "receptions") == 1, "the good telegram stored")
    status = wait_for(lambda: (s := hub.api("/api/status"))["stats"].get("rejected") == len(bad) + 1 and s,
                      "every bad message counted")
    assert status["rejects"] == {"not_json": 2, "bad_field": 4, "bad_hex": 2, "bad_crc": 1, "undecodable": 1,
                                 "bad_status": 1}
    assert sqlite_rows(db, "SELECT telegram FROM receptions") == [(heat["telegram"],)]
    assert count(db, "hearings") == 1 and hub.proc.poll() is None
    text = hub.stop()
    assert "rejected: bad_crc 1, bad_field 4, bad_hex 2, bad_status 1, not_json 2, undecodable 1" in text
    assert "Traceback" not in text
    rx.close()


def test_rtl433_and_rtlwmbus_lines_join_from_stdin_and_mqtt(broker, hubs, tmp_path, frames, rtlwmbus_lines):
    db = tmp_path / "hub.db"
    lines = [rtl433_line(f["telegram"]) for f in frames[:4]] + rtlwmbus_lines[4:] + ["not a line", "{}"]
    p = subprocess.run([PY, "-m", "flowgraphs.cli", "hub", "--stdin", "--receiver-id", "attic", "--db",
                        f"sqlite:///{db}", "--keys", str(KEYS), "--window", "0.2"],
                       input="\n".join(lines) + "\n", capture_output=True, text=True, env=ENV, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "8 receptions stored" in p.stderr and "rejected: bad_line 1, not_mbus 1" in p.stderr
    assert sorted(t for (t,) in sqlite_rows(db, "SELECT telegram FROM receptions")) == \
        sorted(f["telegram"] for f in frames)
    assert dict(sqlite_rows(db, "SELECT source, COUNT(*) FROM receptions GROUP BY source")) == \
        {"rtl433": 4, "rtlwmbus": 4}
    assert sqlite_rows(db, "SELECT value FROM readings WHERE meter = '31415926' AND quantity = 'energy'") == \
        [(4711.0,)]
    # the same lines on an MQTT topic: the receiver is the topic's last level
    db2 = tmp_path / "hub2.db"
    hubs("--mqtt", f"mqtt://127.0.0.1:{broker}/{PREFIX}", "--db", f"sqlite:///{db2}", "--keys", str(KEYS),
         "--window", "0.3", "--lines-topic", "rtl433/+")
    rx = Receivers(broker)
    for line in lines[:6]:
        rx.publish("", line, topic="rtl433/cellar")
    wait_for(lambda: count(db2, "receptions") == 6, "6 receptions from the lines topic")
    assert {r for (r,) in sqlite_rows(db2, "SELECT receiver FROM hearings")} == {"cellar"}
    rx.close()


# --- PostgreSQL: two hubs on one database -----------------------------------------------------------
def _pg_bin(name: str) -> str | None:
    for d in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (d / name).exists():
            return str(d / name)
    return shutil.which(name)


@pytest.fixture
def postgres():
    """A real PostgreSQL (Debian's postgresql package) in a temporary data directory, trust auth on
    127.0.0.1 and a free port, run as the postgres user when we are root; yields its URL."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if initdb is None or pg_ctl is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    pytest.importorskip("psycopg", reason="psycopg 3 is not installed (pip install 'wmbus-sdr[hub]')")
    # not under pytest's basetemp: that is private to root, and PostgreSQL runs as its own user
    base = Path(tempfile.mkdtemp(prefix="wmbus-hub-pg-"))
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    prefix: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser: cannot start PostgreSQL as another user")
        prefix = ["runuser", "-u", "postgres", "--"]
        shutil.chown(base, "postgres")
        shutil.chown(sock, "postgres")
        os.chmod(base, 0o755)
    port = free_port()
    subprocess.run([*prefix, initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"],
                   check=True, capture_output=True, timeout=120)
    subprocess.run([*prefix, pg_ctl, "-D", str(data), "-l", str(base / "pg.log"), "-w", "-t", "60", "-o",
                    f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off", "start"],
                   check=True, capture_output=True, timeout=120)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"], capture_output=True,
                       timeout=60)
        shutil.rmtree(base, ignore_errors=True)


def pg_rows(url: str, sql: str) -> list[tuple]:
    import psycopg

    with psycopg.connect(url) as conn:
        try:
            return conn.execute(sql).fetchall()
        except psycopg.errors.UndefinedTable:
            return []


def variants(n: int) -> list[str]:
    """``n`` different unencrypted gas-meter telegrams (the recording's, other ids and counters)."""
    base = bytearray.fromhex("27446d1e22334455330372223344556d1e3303050000000c1427048502046d1e05593b02fd170000")
    out = []
    for i in range(n):
        t = bytearray(base)
        t[4:8] = bytes.fromhex(f"{90000000 + i:08d}")[::-1]
        t[11:15] = t[4:8]
        t[19] = i & 0xFF  # access number
        t[23] = (i * 7) & 0xFF  # a volume digit pair (BCD)
        t[23] = int(f"{(i * 7) % 100:02d}", 16)
        out.append(t.hex())
    return out


def test_two_hubs_sharing_the_load_on_postgres_store_each_telegram_once(broker, hubs, postgres, tmp_path, frames):
    common = ("--mqtt", f"mqtt://127.0.0.1:{broker}/{PREFIX}", "--db", postgres, "--keys", str(KEYS),
              "--window", "1", "--share", "hubs")
    a = hubs(*common, "--client-id", "hub-a", name="hub-a")
    b = hubs(*common, "--client-id", "hub-b", name="hub-b")
    out = Listener(broker, f"{PREFIX}/meter/#")
    rx = Receivers(broker)
    extra = publish_fleet_and_variants(rx, frames)
    total = 2 * (len(frames) + len(extra))
    wait_for(lambda: pg_rows(postgres, "SELECT COUNT(*) FROM hearings")[0][0] == total if pg_rows(
        postgres, "SELECT 1 FROM hearings LIMIT 1") else False, f"{total} hearings in PostgreSQL")
    rows = pg_rows(postgres, "SELECT telegram, best_receiver FROM receptions")
    telegrams = [t for t, _ in rows]
    assert len(telegrams) == len(set(telegrams)) == len(frames) + len(extra)  # each exactly once
    assert set(telegrams) == {f["telegram"] for f in frames} | set(extra)
    assert {best for _, best in rows} == {"north"}  # named best even when the copies went to different hubs
    per_telegram = pg_rows(postgres, "SELECT telegram, COUNT(*) FROM hearings GROUP BY telegram")
    assert {n for _, n in per_telegram} == {2}
    assert pg_rows(postgres, "SELECT COUNT(*) FROM readings WHERE meter = '31415926' AND quantity = 'energy'") \
        == [(1,)]
    rx.close()
    summaries = [h.stop() for h in (a, b)]
    frames_in = [int(s.rsplit("wmbus-sdr hub: ", 1)[1].split()[0]) for s in summaries]
    assert sum(frames_in) == total and min(frames_in) > 0  # the broker split the frames between the hubs
    # republished once for the fleet: by the hub whose insert created the reception
    wait_for(lambda: len(out.got) >= len(telegrams), f"{len(telegrams)} readings on {PREFIX}/meter/#")
    time.sleep(1.0)  # a second copy would come within this
    out.close()
    assert sorted(m["telegram"] for _, m in out.got) == sorted(telegrams)


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_two_workers_store_each_telegram_once_with_both_hearings(broker, hubs, tmp_path, frames, store, request):
    """``--workers 2``: two processes in one shared subscription, so the two hearings of a telegram
    often reach different workers; the store still ends with one reception per telegram, both
    hearings, the best receiver named, and PREFIX/meter/<id> carries each telegram once."""
    if store == "postgresql":
        url = request.getfixturevalue("postgres")
        def rows(sql: str) -> list[tuple]:
            return pg_rows(url, sql)
    else:
        url = f"sqlite:///{tmp_path / 'hub.db'}"
        def rows(sql: str) -> list[tuple]:
            return sqlite_rows(tmp_path / "hub.db", sql)
    hub = hubs("--mqtt", f"mqtt://127.0.0.1:{broker}/{PREFIX}", "--db", url, "--keys", str(KEYS), "--window", "1",
               "--workers", "2", "--client-id", "hub-w")
    assert "(2 workers)" in hub.text()
    out = Listener(broker, f"{PREFIX}/meter/#")
    rx = Receivers(broker)
    extra = publish_fleet_and_variants(rx, frames)
    telegrams = sorted([f["telegram"] for f in frames] + extra)
    total = 2 * len(telegrams)
    wait_for(lambda: (rows("SELECT COUNT(*) FROM hearings") or [(0,)])[0][0] == total
             and len(out.got) >= len(telegrams), f"{total} hearings and {len(telegrams)} republished readings")
    got = rows("SELECT telegram, best_receiver FROM receptions")
    assert sorted(t for t, _ in got) == telegrams  # each exactly once
    assert {best for _, best in got} == {"north"}  # the best even when the hearings went to different workers
    per_telegram = rows("SELECT telegram, COUNT(*), MIN(receiver), MAX(receiver) FROM hearings GROUP BY telegram")
    assert {(n, lo, hi) for _, n, lo, hi in per_telegram} == {(2, "north", "south")}
    assert rows("SELECT value FROM readings WHERE meter = '31415926' AND quantity = 'energy'") == [(4711.0,)]
    rx.close()
    summary = hub.stop().rsplit("wmbus-sdr hub: ", 1)[1]
    time.sleep(1.0)  # a second copy on PREFIX/meter/# would come within this
    out.close()
    assert sorted(m["telegram"] for _, m in out.got) == telegrams  # republished once
    split = [int(n) for n in summary.split("(workers: ", 1)[1].split(")")[0].split(" + ")]
    assert len(split) == 2 and sum(split) == total and min(split) > 0  # both workers took frames
    stored = int(summary.split("), ", 1)[1].split()[0])
    assert stored > len(telegrams)  # some receptions were written by both workers, merged by the store


@pytest.mark.parametrize("layout", [("--workers", "2"), ("--intake", "2")])
def test_a_killed_worker_is_started_again_and_its_frames_arrive(broker, hubs, tmp_path, frames, layout):
    """A worker or intake process that dies (SIGKILL) is started again by the first process with
    the same MQTT session, so the frames the broker kept for it are stored after all; with intake
    processes the one core merges the two hearings of every telegram itself."""
    db = tmp_path / "hub.db"
    hub = hubs("--mqtt", f"mqtt://127.0.0.1:{broker}/{PREFIX}", "--db", f"sqlite:///{db}", "--keys", str(KEYS),
               "--window", "1", *layout, "--client-id", "hub-k")
    children = Path(f"/proc/{hub.proc.pid}/task/{hub.proc.pid}/children")
    helpers = 1 if layout[0] == "--workers" else 2

    def helper_pids() -> list[int] | None:
        pids = [int(p) for p in children.read_text().split()] if children.exists() else []
        pids = [p for p in pids if "spawn_main" in Path(f"/proc/{p}/cmdline").read_text(errors="replace")]
        return pids if len(pids) == helpers else None
    before = wait_for(helper_pids, "the helper processes")
    os.kill(before[0], signal.SIGKILL)
    rx = Receivers(broker)
    publish_fleet(rx, frames)  # some of these are queued for the dead process's session
    wait_for(lambda: count(db, "hearings") == 16, "16 hearings")
    check_fleet_store(db, frames)
    assert "ended (exit code -9); starting it again" in hub.text()
    after = wait_for(helper_pids, "the helper processes again")
    assert before[0] not in after
    rx.close()
    summary = hub.stop().rsplit("wmbus-sdr hub: ", 1)[1]
    assert int(summary.split()[0]) == 16


# --- the dashboard in headless Chromium -------------------------------------------------------------
def chromium(*args: str, tmp: Path, timeout_s: float = 120) -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
           f"--user-data-dir={tmp}", "--virtual-time-budget=5000", *args]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    assert p.returncode == 0, p.stderr[-2000:]
    return p.stdout


def test_dashboard_in_headless_chromium(broker, hubs, tmp_path, frames):
    db = tmp_path / "hub.db"
    hub = hubs("--mqtt", f"mqtt://127.0.0.1:{broker}/{PREFIX}", "--db", f"sqlite:///{db}", "--keys", str(KEYS),
               "--window", "0.5", "--http", "127.0.0.1:0", http=True)
    rx = Receivers(broker)
    rx.client.publish(f"{PREFIX}/status/north", "online", qos=1, retain=True).wait_for_publish(10)
    rx.client.publish(f"{PREFIX}/status/south", "offline", qos=1, retain=True).wait_for_publish(10)
    publish_fleet(rx, frames)
    # the heat meter again, later, with new readings: a line on its plot
    heat = next(f for f in frames if meter_of(f) == "31415926")
    for i in range(3):  # the same bytes again: after the merge window, or they would merge
        wait_for(lambda n=8 + i: count(db, "receptions") == n, f"{8 + i} receptions")
        rx.publish("north", raw_message(heat, "north", time_text=f"2026-12-01T20:{10 + 10 * i}:00.000000Z"))
    wait_for(lambda: count(db, "receptions") == 11, "11 receptions")
    meters = hub.api("/api/meters")
    assert len(meters) == 7 and all(len(m["id"]) == 8 for m in meters)
    m = next(x for x in meters if x["id"] == "31415926")
    assert m["manufacturer"] == "HMS" and m["last_seen"].endswith("Z")
    assert {r["id"] for r in m["receivers"]} == {"north", "south"}
    assert m["receivers"][0]["id"] == "north" and all(isinstance(r["rssi"], float) for r in m["receivers"])
    readings = hub.api("/api/meters/31415926/readings")
    assert [r["value"] for r in readings if r["quantity"] == "energy"] == [4711.0] * 4
    wait_for(lambda: {r["id"]: r["status"] for r in hub.api("/api/receivers")} == {"north": "online",
                                                                                     "south": "offline"},
             "the receivers' availability")
    assert {r["id"]: r["frames"] for r in hub.api("/api/receivers")} == {"north": 11, "south": 8}

    pages = {"": "meters", "meter/31415926": "meter", "receivers": "receivers"}
    for path, kind in pages.items():
        dom = chromium("--dump-dom", hub.url + path, tmp=tmp_path / f"chrome-{kind}")
        assert 'data-ready="1"' in dom, dom[:2000]
        assert "data-errors" not in dom, dom[:2000]
        if kind == "meters":
            assert dom.count('<a href="/meter/') == 7 and "31415926" in dom and "north" in dom
        elif kind == "meter":
            assert "<polyline" in dom and 'data-series="energy"' in dom
            assert dom.count("<circle") >= 4 and "4711" in dom
        else:
            assert "<td>north</td>" in dom and "<td>south</td>" in dom
            assert '<span class="ok">online</span>' in dom and '<span class="alarm">offline</span>' in dom
    shot = Path(os.environ.get("WMBUS_HUB_SCREENSHOT", tmp_path / "hub.png"))
    chromium(f"--screenshot={shot}", "--window-size=1280,720", hub.url, tmp=tmp_path / "chrome-shot")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    rx.close()


# --- the store's idempotency key across a bucket boundary --------------------------------------------
def _row(telegram: str, bucket: int, time_ns: int, receiver: str, rssi: float):
    from flowgraphs.hub.store import HearingRow, ReceptionRow

    return ReceptionRow(meter="55443322", telegram=telegram, bucket=bucket, time_ns=time_ns, seen_ns=time_ns,
                        manufacturer="GSM", device_type="gas", version=51, mode="T1", frame_format="A",
                        decryption="not_encrypted", source="raw", hub="t",
                        hearings=(HearingRow(receiver=receiver, time_ns=time_ns, rssi_dbfs=rssi),))


def test_copies_on_both_sides_of_a_bucket_boundary_are_one_reception(tmp_path, frames):
    from flowgraphs.hub.merge import bucket_of
    from flowgraphs.hub.store import open_store

    store = open_store(f"sqlite:///{tmp_path / 'hub.db'}")
    gas = next(f for f in frames if meter_of(f) == "55443322")["telegram"]
    window_ns = 2_000_000_000
    t = 1_796_154_901_990_000_000  # 10 ms before a 2 s boundary
    store.write([_row(gas, bucket_of(t, 2.0), t, "north", -30.0)], window_ns=window_ns)
    store.write([_row(gas, bucket_of(t + 20_000_000, 2.0), t + 20_000_000, "south", -20.0)], window_ns=window_ns)
    assert bucket_of(t, 2.0) + 1 == bucket_of(t + 20_000_000, 2.0)
    (rec,) = store.receptions()
    assert rec["best_receiver"] == "south" and rec["time_ns"] == t
    assert {h["receiver"] for h in store.hearings()} == {"north", "south"}
    # the same bytes a window later are a new reception (a meter repeating an unchanged telegram)
    later = t + 20_000_000 + window_ns
    store.write([_row(gas, bucket_of(later, 2.0), later, "north", -30.0)], window_ns=window_ns)
    assert len(store.receptions()) == 2
    store.close()


# --- real edges: rx --raw over rtl_tcp into the hub ----------------------------------------------------
def test_real_rx_edges_feed_the_hub(broker, hubs, tmp_path, frames):
    """Two `wmbus-sdr rx --raw` edges on two rtl_tcp streams of the recording: every raw frame they
    publish is one hearing in the store, each telegram one reception (skipped while rx has no --raw)."""
    helptext = subprocess.run([PY, "-m", "flowgraphs.cli", "rx", "--help"], capture_output=True, text=True,
                              env=ENV, timeout=60).stdout
    if "--raw" not in helptext:
        pytest.skip("rx has no --raw yet (the edge of issue 16)")
    from sdr.rtltcp import RtlTcpServer

    db = tmp_path / "hub.db"
    hubs("--mqtt", f"mqtt://127.0.0.1:{broker}/{PREFIX}", "--db", f"sqlite:///{db}", "--keys", str(KEYS),
         "--window", "2")
    raw = Listener(broker, f"{PREFIX}/raw/+")
    servers, edges = [], []
    for name in ("north", "south"):
        server = RtlTcpServer(str(RECORDING), port=0)
        server.start()
        servers.append(server)
        edges.append(subprocess.Popen([PY, "-m", "flowgraphs.cli", "rx", "--device", f"rtltcp://127.0.0.1:{server.port}",
                                       "--rate", "2.4e6", "--output", "none", "--mqtt",
                                       f"mqtt://127.0.0.1:{broker}/{PREFIX}", "--raw", "--receiver-id", name,
                                       "--duration", "2.05"], env=ENV, stderr=subprocess.PIPE))
    for p in edges:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode(errors="replace")
    for server in servers:
        server.stop()
    time.sleep(0.5)
    published = [m for _, m in raw.got]
    raw.close()
    assert published and {m["telegram"] for m in published} <= {f["telegram"] for f in frames}
    wait_for(lambda: count(db, "hearings") == len(published), f"{len(published)} hearings")
    stored = [t for (t,) in sqlite_rows(db, "SELECT telegram FROM receptions")]
    assert sorted(stored) == sorted({m["telegram"] for m in published})  # each telegram once
    for telegram, best in sqlite_rows(db, "SELECT telegram, best_receiver FROM receptions"):
        heard = {m["receiver"]: m["rssi_dbfs"] for m in published if m["telegram"] == telegram}
        assert best == max(heard, key=heard.get)


# --- real rtl_433 output -------------------------------------------------------------------------------
N21 = "2e4493157856341233037a2a0020255923c95aaa26d1b2e7493b013ec4a6f6d3529b520edff0ea6defc99d6d69ebf3"


def test_real_rtl_433_json_lines_join_the_hub(tmp_path):
    """Our transmitter's T1/C1 A/C1 B/S1 frames, decoded by the real rtl_433 (-F json), piped into the
    hub: the telegram is recovered byte-exact from rtl_433's data field and decrypted centrally."""
    if shutil.which("rtl_433") is None:
        pytest.skip("rtl_433 is not installed (make test installs it)")
    lines = []
    for mode, fmt, rate, decoder, freq in (("T1", "A", "1200000", "104", "868950000"),
                                           ("C1", "A", "1200000", "104", "868950000"),
                                           ("C1", "B", "1200000", "104", "868950000"),
                                           ("S1", "A", "1000000", "105", "868300000")):
        out = tmp_path / f"{mode}{fmt}.cu8"
        subprocess.run([PY, "-m", "flowgraphs.cli", "tx", "--mode", mode, "--format", fmt, "--telegram", N21,
                        "--out", str(out), "--rate", rate], check=True, capture_output=True, env=ENV, timeout=120)
        r = subprocess.run(["rtl_433", "-r", str(out), "-s", rate, "-f", freq, "-R", decoder, "-F", "json"],
                           capture_output=True, text=True, timeout=60, env={**os.environ, "HOME": str(tmp_path)})
        got = [x for x in r.stdout.splitlines() if x.startswith("{")]
        assert len(got) == 1, r.stdout + r.stderr
        heard = parse_rtl433(got[0], receiver="r433", arrived_ns=1)
        assert heard.telegram.hex() == N21 and heard.mode == mode, (mode, fmt, got[0])
        lines.append(got[0])
    db = tmp_path / "hub.db"
    p = subprocess.run([PY, "-m", "flowgraphs.cli", "hub", "--stdin", "--receiver-id", "r433", "--db",
                        f"sqlite:///{db}", "--keys", str(KEYS), "--window", "0.2"],
                       input="\n".join(lines) + "\n", capture_output=True, text=True, env=ENV, timeout=120)
    assert p.returncode == 0 and "rejected: none" in p.stderr, p.stderr
    # four copies of one telegram within the window: one reception, decrypted with the meter's key
    assert sqlite_rows(db, "SELECT telegram, decryption, source FROM receptions") == [(N21, "ok", "rtl433")]
    assert sqlite_rows(db, "SELECT value FROM readings WHERE meter = '12345678' AND quantity = 'volume'") == \
        [(28504.27,)]


# --- compact frames across receivers ---------------------------------------------------------------------
def test_compact_frame_learns_its_format_from_another_receiver(tmp_path, frames):
    """20261126's compact frame heard only by south, before its full frame (heard only by north): the
    compact reception is stored at once, and gets its readings when north's full frame teaches the format."""
    from flowgraphs.hub.core import Hub
    from flowgraphs.hub.store import open_store
    from mbus.keys import KeyStore

    full, compact = (f for f in frames if meter_of(f) == "20261126")
    assert compact["telegram"][20:22] == "7b"  # CI 7B: compact
    store = open_store(f"sqlite:///{tmp_path / 'hub.db'}")
    hub = Hub(store, keys=KeyStore.from_file(KEYS), window_s=0.5)
    hub.submit("raw", raw_message(compact, "south", time_text=frame_time(1)).encode(), "south")
    hub.pump(timeout_s=0)
    hub.flush()
    assert [r["telegram"] for r in store.receptions()] == [compact["telegram"]]
    assert store.readings("20261126") == []
    hub.submit("raw", raw_message(full, "north", time_text=frame_time(0)).encode(), "north")
    hub.pump(timeout_s=0)
    hub.flush()
    volumes = [(r["value"], r["time_ns"]) for r in store.readings("20261126") if r["quantity"] == "volume"]
    assert [v for v, _ in volumes] == [4.242, 4.25]  # ordered by the frames' own times
    assert hub.stats["compact_late"] == 1 and len(store.receptions()) == 2
    store.close()


def test_ha_discovery_one_device_per_meter_for_the_fleet(broker, hubs, tmp_path, frames):
    """--ha-discovery on the hub: the fleet's 7 meters as 7 HA devices (not one set per receiver), each
    sensor's template reading a value the hub publishes on PREFIX/meter/<id>."""
    from flowgraphs.sinks.ha import Message
    from tests.test_ha_discovery import ha_violations

    db = tmp_path / "hub.db"
    hubs("--mqtt", f"mqtt://127.0.0.1:{broker}/{PREFIX}", "--db", f"sqlite:///{db}", "--keys", str(KEYS),
         "--window", "1", "--ha-discovery", name="fleet.hub")
    out = Listener(broker, "#")
    rx = Receivers(broker)
    publish_fleet(rx, frames)
    wait_for(lambda: len([t for t, _ in out.got if t.startswith(f"{PREFIX}/meter/")]) >= 8, "8 readings")
    announced = [(t, m) for t, m in out.got if t.startswith("homeassistant/sensor/") and m]
    configs = [m for _, m in announced]
    devices = {c["device"]["identifiers"][0] for c in configs}
    assert len(devices) == 7
    assert all(c["state_topic"].startswith(f"{PREFIX}/meter/") for c in configs)
    assert not ha_violations([Message(t, json.dumps(m)) for t, m in announced])
    states = {t: m for t, m in out.got if t.startswith(f"{PREFIX}/meter/")}
    for c in configs:
        key = c["value_template"].split("['readings']")[1].split("['")[1].split("']")[0]
        assert key in states[c["state_topic"]]["readings"]
    heat = [c for c in configs if c["state_topic"].endswith("/31415926") and c.get("device_class") == "energy"]
    assert heat and heat[0]["unit_of_measurement"] == "kWh" and heat[0]["state_class"] == "total_increasing"
    out.close()
    rx.close()
