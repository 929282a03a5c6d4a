"""InfluxDB output: line protocol checked by a real InfluxDB 1.x (Debian's ``influxd``, started here on
free ports and stopped), escaping round trips, batching in a thread that never raises into the
receive loop, retries while the server is down, refused batches counted, credentials never logged."""

from __future__ import annotations

import base64
import json
import logging
import shutil
import socket
import subprocess
import sys
import threading
import urllib.parse
import urllib.request
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from flowgraphs.sinks.influx import InfluxWriter, influx_points, point, string_field, write_target
from tests.support import free_port, sample_frame, timed_recording, wait_until

REPO = Path(__file__).resolve().parent.parent
RECORDING = REPO / "recordings" / "example_868.625M_2M4.sigmf-meta"
KEYS = str(REPO / "recordings" / "keys.txt")
T0 = "2026-12-01T19:55:00.250Z"
T0_NS = 1_796_154_900_250_000_000


class Influxd:
    """A real InfluxDB 1.x on free ports of 127.0.0.1 with its data in ``root``."""

    def __init__(self, root: Path, *, port: int | None = None, auth: bool = False):
        self.root, self.port, self.auth = root, port or free_port(), auth
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        conf = self.root / "influxdb.conf"
        conf.write_text(f"""reporting-disabled = true
bind-address = "127.0.0.1:{free_port()}"
[meta]
  dir = "{self.root / 'meta'}"
[data]
  dir = "{self.root / 'data'}"
  wal-dir = "{self.root / 'wal'}"
  query-log-enabled = false
[monitor]
  store-enabled = false
[subscriber]
  enabled = false
[continuous_queries]
  enabled = false
[http]
  enabled = true
  bind-address = "127.0.0.1:{self.port}"
  auth-enabled = {str(self.auth).lower()}
  log-enabled = false
""")
        self.proc = subprocess.Popen(["influxd", "-config", str(conf)], stdout=subprocess.DEVNULL,
                                     stderr=open(self.root / "influxd.log", "ab"))  # noqa: SIM115
        wait_until(self.ping, what=f"influxd on port {self.port}")

    def ping(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"influxd exited: {(self.root / 'influxd.log').read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/ping", timeout=2) as r:
                return r.status == 204
        except OSError:
            return False

    def query(self, q: str, db: str = "wmbus", auth: tuple[str, str] | None = None) -> list[dict]:
        data = urllib.parse.urlencode({"q": q, "db": db, "epoch": "ns"}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/query", data=data)
        if auth:
            request.add_header("Authorization", "Basic " + base64.b64encode(":".join(auth).encode()).decode())
        with urllib.request.urlopen(request, timeout=30) as r:
            result = json.loads(r.read())["results"][0]
        if "error" in result:
            raise AssertionError(result["error"])
        return result.get("series", [])

    def rows(self, q: str, **kw) -> list[dict]:
        return [dict(zip(s["columns"], v, strict=True)) for s in self.query(q, **kw) for v in s["values"]]

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None


@pytest.fixture
def influxd(tmp_path):
    if shutil.which("influxd") is None:
        pytest.skip("influxd is not installed (Debian package influxdb; make test installs it)")
    server = Influxd(tmp_path / "influx")
    server.root.mkdir()
    server.start()
    server.query("CREATE DATABASE wmbus")
    try:
        yield server
    finally:
        server.stop()


def _cli(*args: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flowgraphs.cli", *args], capture_output=True, cwd=REPO,
                          timeout=300, env=env)


# --- the format ------------------------------------------------------------------------------------
def test_escaping_follows_the_line_protocol_reference():
    line = point("wm bus,x", {"b key": "a,b=c d", "a": "", "c": None, "u": "m3\\h\nx"},
                 {"f=1": "1.5", "s": string_field('say "hi" \\ bye\n'), "none": None}, 17)
    assert line == r'wm\ bus\,x,b\ key=a\,b\=c\ d,u=m3/h\ x f\=1=1.5,s="say \"hi\" \\ bye " 17'
    assert point("m", {"t": "v"}, {"x": None}, None) is None  # no field: no point
    assert point("m", {}, {"x": "1.0"}, None) == "m x=1.0"  # no clock: no timestamp (the server stamps it)


def test_points_of_the_bundled_recording(tmp_path):
    p = _cli("decode", str(timed_recording(tmp_path)), "--keys", KEYS, "--output", "influx,jsonl", "--quiet")
    assert p.returncode == 0, p.stderr
    out = p.stdout.decode().splitlines()
    objs = [json.loads(x) for x in out if x.startswith("{")]
    lines = [x for x in out if not x.startswith("{")]
    assert len(objs) == 8
    frames = [x for x in lines if x.startswith("wmbus_frame,")]
    assert len(frames) == 8
    for obj, line in zip(objs, frames, strict=True):
        # the frame's UTC time in ns and its absolute sample index
        assert line.endswith(f" {obj['time_ns']}") and f"sample={obj['sample']}i" in line
        assert obj["time_ns"] == T0_NS + round(obj["sample"] * 1e9 / 2.4e6)
    records = [r for o in objs for r in o["decoded"]["records"] if r["value"] is not None or "text" in r]
    assert len(lines) - len(frames) == len(records)
    assert "unit=°C value=65.43 " in "\n".join(lines)  # exact decimals, UTF-8 units
    assert "modifiers=backward\\ flow" in "\n".join(lines)


# --- a real InfluxDB --------------------------------------------------------------------------------
def test_decode_writes_every_record_to_a_real_influxdb(tmp_path, influxd):
    url = f"http://127.0.0.1:{influxd.port}/write?db=wmbus"
    p = _cli("decode", str(timed_recording(tmp_path)), "--keys", KEYS, "--output", "jsonl", "--influx", url,
             "--quiet")
    assert p.returncode == 0, p.stderr
    objs = [json.loads(x) for x in p.stdout.decode().splitlines()]
    frames = influxd.rows("SELECT * FROM wmbus_frame")
    assert sorted((r["time"], r["meter"], r["mode"], r["sample"]) for r in frames) == sorted(
        (o["time_ns"], o["decoded"]["id"], o["mode"], o["sample"]) for o in objs)
    by_time = {o["time_ns"]: o for o in objs}
    for r in frames:
        assert r["rssi_dbfs"] == pytest.approx(by_time[r["time"]]["rssi_dbfs"], abs=0.006)
    stored = influxd.rows("SELECT * FROM wmbus")
    expected = []
    for o in objs:
        for rec in o["decoded"]["records"]:
            if rec["value"] is None and "text" not in rec:
                continue
            expected.append((o["time_ns"], o["decoded"]["id"], rec["quantity"], str(rec["storage"]),
                             rec.get("text") or float(Decimal(str(rec["value"])))))
    got = [(r["time"], r["meter"], r["quantity"], r["storage"], r["text"] if r["text"] is not None else r["value"])
           for r in stored]
    # the compact and the full frame of one meter are two points each (their times differ)
    assert sorted(got, key=str) == sorted(expected, key=str)
    energy = influxd.rows("SELECT value FROM wmbus WHERE meter = '88990011' AND quantity = 'energy' "
                          "AND modifiers = 'backward flow'")
    assert [r["value"] for r in energy] == [7.48]


def test_tricky_tags_and_strings_round_trip_through_a_real_influxdb(influxd):
    tags = {"meter": "a,b=c d", "unit": "°C", "quote": 'x"y', "eq": "=lead"}
    text = 'say "hi" \\ back\\slash, = all'
    line = point("wm bus,odd", tags, {"text": string_field(text), "value": "1.25"}, T0_NS)
    writer = InfluxWriter(f"http://127.0.0.1:{influxd.port}/write?db=wmbus", flush_s=0.05)
    writer.put([line])
    writer.close()
    assert (writer.sent, writer.rejected, writer.dropped) == (1, 0, 0), writer.last_error
    (series,) = influxd.query('SELECT * FROM "wm bus,odd"')
    row = dict(zip(series["columns"], series["values"][0], strict=True))
    assert row == {"time": T0_NS, "meter": "a,b=c d", "unit": "°C", "quote": 'x"y', "eq": "=lead",
                   "text": text, "value": 1.25}


def test_writer_keeps_points_while_the_server_is_down_and_delivers_them_later(tmp_path):
    if shutil.which("influxd") is None:
        pytest.skip("influxd is not installed (Debian package influxdb; make test installs it)")
    server = Influxd(tmp_path)
    writer = InfluxWriter(f"http://127.0.0.1:{server.port}/write?db=wmbus", flush_s=0.05, max_backoff_s=0.5,
                          timeout_s=5)
    lines = [point("wmbus_test", {"n": str(i % 3)}, {"value": f"{i}.0"}, T0_NS + i) for i in range(50)]
    writer.put(lines[:20])
    wait_until(lambda: writer.failures >= 2, what="failed attempts while no server listens")
    assert writer.sent == 0 and writer.dropped == 0  # kept, not lost
    server.start()
    try:
        server.query("CREATE DATABASE wmbus")
        writer.put(lines[20:])
        wait_until(lambda: writer.sent == 50, what="the kept points to arrive")
        writer.close()
        rows = server.rows("SELECT value FROM wmbus_test")
        assert [r["value"] for r in rows] == [float(i) for i in range(50)]
        assert [r["time"] for r in rows] == [T0_NS + i for i in range(50)]
    finally:
        writer.close()
        server.stop()


def test_refused_batches_are_counted_and_logged_never_raised(influxd, caplog):
    caplog.set_level(logging.WARNING, logger="flowgraphs.sinks.influx")
    writer = InfluxWriter(f"http://127.0.0.1:{influxd.port}/write?db=nosuchdb", flush_s=0.05)
    writer.put(["wmbus value=1.0 1", "wmbus value=2.0 2"])
    writer.close()
    assert (writer.sent, writer.rejected) == (0, 2)
    assert "HTTP 404" in caplog.text and "nosuchdb" in caplog.text
    # a field written as a string where the series holds floats: HTTP 400, the batch is dropped
    good = InfluxWriter(f"http://127.0.0.1:{influxd.port}/write?db=wmbus", flush_s=0.05)
    good.put(["t value=1.0 1"])
    good.close()
    bad = InfluxWriter(f"http://127.0.0.1:{influxd.port}/write?db=wmbus", flush_s=0.05)
    bad.put(['t value="text" 2'])
    bad.close()
    assert (good.sent, bad.sent, bad.rejected) == (1, 0, 1) and "HTTP 400" in caplog.text


def test_a_silent_server_never_blocks_the_sink_and_every_point_is_accounted_for(caplog):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)  # accepts connections (the kernel does), never answers
    port = listener.getsockname()[1]
    try:
        writer = InfluxWriter(f"http://127.0.0.1:{port}/write?db=x", flush_s=0.01, queue_lines=10, timeout_s=0.5,
                              close_timeout_s=0.5)
        lines = [f"m value={i}.0 {i}" for i in range(100)]
        for i in range(0, 100, 10):
            writer.put(lines[i:i + 10])  # returns at once: the queue is bounded, the overflow counted
        writer.close()
    finally:
        listener.close()
    assert (writer.sent, writer.rejected, writer.dropped) == (0, 0, 100) and writer.failures >= 1


def test_credentials_from_environment_reach_a_real_influxdb_and_never_the_log(tmp_path, caplog):
    if shutil.which("influxd") is None:
        pytest.skip("influxd is not installed (Debian package influxdb; make test installs it)")
    server = Influxd(tmp_path, auth=True)
    server.start()
    try:
        server.query("CREATE USER admin WITH PASSWORD 's3cret pw' WITH ALL PRIVILEGES", db="")
        admin = ("admin", "s3cret pw")
        server.query("CREATE DATABASE wmbus", auth=admin)
        caplog.set_level(logging.DEBUG, logger="flowgraphs.sinks.influx")
        url = f"http://127.0.0.1:{server.port}/write?db=wmbus"
        env = {"INFLUX_USERNAME": "admin", "INFLUX_PASSWORD": "s3cret pw"}
        with pytest.MonkeyPatch.context() as mp:
            for k, v in env.items():
                mp.setenv(k, v)
            writer = InfluxWriter(url, flush_s=0.05)
            writer.put(["m value=1.0 1"])
            writer.close()
            mp.setenv("INFLUX_PASSWORD", "wrong-pass")
            refused = InfluxWriter(url, flush_s=0.05)
            refused.put(["m value=2.0 2"])
            refused.close()
        assert writer.sent == 1 and refused.rejected == 1 and "HTTP 401" in caplog.text
        assert [r["value"] for r in server.rows("SELECT value FROM m", auth=admin)] == [1.0]
        assert "s3cret" not in caplog.text and "wrong-pass" not in caplog.text
    finally:
        server.stop()


def test_v2_write_sends_the_token_from_a_file_and_never_logs_it(tmp_path, caplog):
    """InfluxDB 2 is not packaged by Debian: a recording HTTP server checks the request we make."""
    got = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.append((self.path, self.headers["Authorization"], body.decode()))
            self.send_response(401 if len(got) > 1 else 204)
            self.end_headers()
            if len(got) > 1:
                self.wfile.write(b'{"code":"unauthorized","message":"unauthorized access"}')

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    token_file = tmp_path / "token"
    token_file.write_text("tok-123==\n")
    caplog.set_level(logging.DEBUG, logger="flowgraphs.sinks.influx")
    from flowgraphs.sinks import SinkOptions, influx_sink

    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/api/v2/write?org=home&bucket=meters"
        for _ in range(2):
            sink = influx_sink(SinkOptions(influx_url=url, influx_token_file=str(token_file)))
            sink(sample_frame(), None)
            sink.close()
    finally:
        server.shutdown()
        server.server_close()
    assert got[0][0] == "/api/v2/write?org=home&bucket=meters" and got[0][1] == "Token tok-123=="
    assert got[0][2].startswith("wmbus_frame,meter=") and got[0][2].endswith(" 1796154900123456789\n")
    assert "HTTP 401" in caplog.text and "tok-123" not in caplog.text


@pytest.mark.parametrize(("url", "needle"), [
    ("ftp://h/write?db=x", "http"), ("http://h:8086/query?db=x", "/write"), ("http://h:8086/write", "db"),
    ("http://h/api/v2/write?org=o", "bucket"), ("http://h/write?db=x&precision=s", "precision"),
])
def test_bad_urls_are_clear_errors_that_hide_passwords(url, needle):
    with pytest.raises(ValueError, match=needle):
        write_target(url.replace("//h", "//user:pw123@h"))
    try:
        write_target(url.replace("//h", "//user:pw123@h"))
    except ValueError as err:
        assert "pw123" not in str(err)


def test_cli_errors_are_one_line(tmp_path):
    p = _cli("decode", str(RECORDING), "--influx", "http://127.0.0.1:1/query?db=x", "--quiet")
    assert p.returncode == 2 and p.stderr.count(b"\n") == 1 and b"/write" in p.stderr
    p = _cli("decode", str(RECORDING), "--influx", "http://127.0.0.1:1/write?db=x", "--influx-token-file",
             str(tmp_path / "missing"), "--quiet")
    assert p.returncode == 2 and b"missing" in p.stderr and b"Traceback" not in p.stderr


def test_points_without_a_clock_have_no_timestamp_and_bad_frames_none():
    lines = influx_points(sample_frame(time_ns=None), None)
    assert lines == ["wmbus_frame,meter=31415926,mode=T1 rssi_dbfs=-30.25,noise_dbfs=-60.0,snr_db=30.25,"
                     "freq_offset_hz=1000.0,sample=2400000i"]
    assert influx_points(sample_frame(crc_ok=False, reason="crc"), None) == []


def test_the_live_loop_writes_frames_and_its_status_to_a_real_influxdb(tmp_path, influxd):
    from flowgraphs.pipelines.live import run_live
    from flowgraphs.pipelines.receive import Receiver
    from flowgraphs.sinks import SinkOptions, influx_sink
    from mbus.keys import KeyStore
    from sdr.file import FileSource

    sink = influx_sink(SinkOptions(influx_url=f"http://127.0.0.1:{influxd.port}/write?db=wmbus"))
    src = FileSource(str(timed_recording(tmp_path)))
    statuses = []
    try:
        result = run_live(src, Receiver(src.info), [sink], keys=KeyStore.from_file(KEYS),
                          on_status=[statuses.append, sink.on_status])  # as rx wires them
    finally:
        sink.close()
    assert sink.writer.sent > 8 and sink.writer.dropped == sink.writer.rejected == 0
    assert len(influxd.rows("SELECT rssi_dbfs FROM wmbus_frame")) == result["frames"] == 8
    (row,) = influxd.rows("SELECT * FROM wmbus_receiver")  # the final status (the run is shorter than 10 s)
    final = statuses[-1]
    assert final.final and row["frames"] == 8.0 and row["dropped_samples"] == 0.0
    assert row["signal_s"] == pytest.approx(final.signal_s) and "final" not in row and "rejected_reasons" not in row
