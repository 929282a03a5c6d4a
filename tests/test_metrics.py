"""Prometheus metrics: /metrics scraped over HTTP and read with the format's own parsers
(prometheus_client's, ``promtool check metrics``), by a real Prometheus server scraping us, and
end to end from ``rx`` over rtl_tcp."""

from __future__ import annotations

import json
import math
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from flowgraphs.pipelines.live import run_live
from flowgraphs.pipelines.receive import Receiver, RxFrame
from flowgraphs.sinks import Inventory, MetricsSink
from sdr.file import FileSource
from sdr.rtltcp import RtlTcpServer
from tests.support import free_port, timed_recording, wait_until

REPO = Path(__file__).resolve().parent.parent
RECORDING = REPO / "recordings" / "example_868.625M_2M4.sigmf-meta"
KEYS = str(REPO / "recordings" / "keys.txt")
T0 = "2026-12-01T19:55:00.250Z"

parser = pytest.importorskip("prometheus_client.parser", reason="prometheus_client is not installed "
                             "(pip install prometheus_client; the parser checks our format)")


def _scrape(port: int) -> tuple[str, str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        return r.headers["Content-Type"], r.read().decode()


def _samples(text: str) -> dict[str, list]:
    """name -> [(labels, value)] through prometheus_client's parser (which rejects a malformed text)."""
    out: dict[str, list] = {}
    for fam in parser.text_string_to_metric_families(text):
        for s in fam.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


@pytest.fixture
def served(tmp_path):
    """The bundled recording (with a clock) run through the live loop into a metrics sink that is
    still serving; yields (sink, frames given to it, receiver, the loop's final status)."""
    from mbus.keys import KeyStore

    sink = MetricsSink("127.0.0.1:0")
    frames: list[RxFrame] = []
    statuses = []
    src = FileSource(str(timed_recording(tmp_path)))
    rx = Receiver(src.info)
    try:
        run_live(src, rx, [sink, lambda f, t: frames.append(f)], keys=KeyStore.from_file(KEYS), inventory=Inventory(),
                 status_every_s=0.0, on_status=[statuses.append, sink.on_status])  # as rx wires them
        yield sink, frames, rx, statuses[-1]
    finally:
        sink.close()


def test_metrics_count_what_the_receiver_saw(served):
    sink, frames, rx, final = served
    ctype, text = _scrape(sink.port)
    assert ctype == "text/plain; version=0.0.4; charset=utf-8"
    got = _samples(text)
    modes = {}
    for f in frames:
        modes[f.mode] = modes.get(f.mode, 0) + 1
    assert len(frames) == 8
    assert {labels["mode"]: v for labels, v in got["wmbus_frames_total"]} == modes
    rejected = {k.split(" ", 1)[1]: n for k, n in rx.stats.items() if k.startswith("rejected ")}
    assert {labels["reason"]: v for labels, v in got.get("wmbus_rejected_frames_total", [])} == rejected
    assert got["wmbus_dropped_samples_total"] == [({}, 0.0)]
    assert got["process_cpu_seconds_total"][0][1] > 0
    last = {}
    for f in frames:
        last[f.telegram[4:8][::-1].hex()] = f
    rssi = {labels["meter"]: v for labels, v in got["wmbus_meter_rssi_dbfs"]}
    assert len(rssi) == 7 and got["wmbus_meters"] == [({}, 7.0)]
    for meter, f in last.items():  # the link address is the meter's here (no repeaters in the recording)
        assert rssi[meter] == pytest.approx(f.rssi_dbfs, abs=0.006)
    seen = {labels["meter"]: v for labels, v in got["wmbus_meter_last_frame_timestamp_seconds"]}
    assert all(seen[m] == pytest.approx(f.time_ns / 1e9, abs=1e-6) for m, f in last.items())
    assert got["wmbus_last_frame_timestamp_seconds"][0][1] == pytest.approx(max(f.time_ns for f in frames) / 1e9)
    # the tuner's error as rx's status line gives it: absent until the estimate stands
    assert final.final
    assert got.get("wmbus_frequency_error_ppm", []) == ([] if final.ppm is None else [({}, round(final.ppm, 3))])
    for name in ("wmbus_source_restarts_total", "wmbus_source_stalls_total", "wmbus_duplicate_frames_total"):
        assert got[name] == [({}, 0.0)]
    manufacturers = {labels["manufacturer"] for labels, _ in got["wmbus_meter_rssi_dbfs"]}
    assert {"HMS", "ELS", "WSM"} <= manufacturers


def test_promtool_accepts_the_exposition(served):
    if shutil.which("promtool") is None:
        pytest.skip("promtool is not installed (Debian package prometheus; make test installs it)")
    sink = served[0]
    _, text = _scrape(sink.port)
    p = subprocess.run(["promtool", "check", "metrics"], input=text.encode(), capture_output=True, timeout=60)
    assert p.returncode == 0, (p.stdout + p.stderr).decode()


def test_labels_with_quotes_backslashes_and_newlines_survive_the_parser():
    sink = MetricsSink("127.0.0.1:0")
    try:
        with sink.metrics._lock:
            sink.metrics.meters[('12"3\\4\n5', "A\\B")] = (-40.5, None)
        got = _samples(_scrape(sink.port)[1])
    finally:
        sink.close()
    assert got["wmbus_meter_rssi_dbfs"] == [({"meter": '12"3\\4\n5', "manufacturer": "A\\B"}, -40.5)]
    assert "wmbus_meter_last_frame_timestamp_seconds" not in got  # no clock: no time claimed


def test_nothing_received_yet_is_a_valid_page_without_guesses():
    sink = MetricsSink("127.0.0.1:0")
    try:
        got = _samples(_scrape(sink.port)[1])
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"http://127.0.0.1:{sink.port}/other", timeout=10)
    finally:
        sink.close()
    assert set(got) == {"process_cpu_seconds_total", "wmbus_meters"}  # no ppm, no drops, no times until known
    assert got["wmbus_meters"] == [({}, 0.0)]


def test_a_real_prometheus_scrapes_us(served, tmp_path):
    if shutil.which("prometheus") is None:
        pytest.skip("prometheus is not installed (Debian package prometheus; make test installs it)")
    sink, frames = served[:2]
    port = free_port()
    conf = tmp_path / "prometheus.yml"
    conf.write_text(f"global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: wmbus\n"
                    f"    static_configs:\n      - targets: ['127.0.0.1:{sink.port}']\n")
    proc = subprocess.Popen(["prometheus", f"--config.file={conf}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                             f"--web.listen-address=127.0.0.1:{port}"], stdout=subprocess.DEVNULL,
                            stderr=open(tmp_path / "prometheus.log", "wb"))  # noqa: SIM115

    def query(q: str):
        if proc.poll() is not None:
            raise AssertionError((tmp_path / "prometheus.log").read_text()[-2000:])
        try:
            url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": q})
            with urllib.request.urlopen(url, timeout=5) as r:
                return json.loads(r.read())["data"]["result"]
        except OSError:
            return None

    try:
        result = wait_until(lambda: query("sum(wmbus_frames_total)"), timeout_s=120, what="prometheus to scrape us")
        assert float(result[0]["value"][1]) == len(frames)
        up = query('up{job="wmbus"}')
        assert up and up[0]["value"][1] == "1"
        meters = query("count(wmbus_meter_rssi_dbfs)")
        assert meters and meters[0]["value"][1] == "7"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_rx_serves_metrics_while_it_receives():
    port = free_port()
    server = RtlTcpServer(str(RECORDING), port=0, loop=True)
    server.start()
    proc = subprocess.Popen([sys.executable, "-m", "flowgraphs.cli", "rx", "--device",
                             f"rtltcp://127.0.0.1:{server.port}", "--rate", "2.4e6", "--keys", KEYS, "--output",
                             "none", "--dedup", "60", "--duration", "8", "--quiet", "--metrics", f"127.0.0.1:{port}"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def frames():
        if proc.poll() is not None:
            raise AssertionError(proc.stderr.read().decode())
        try:
            got = _samples(_scrape(port)[1])
        except OSError:
            return None
        total = sum(v for _, v in got.get("wmbus_frames_total", []))
        return got if total >= 8 else None

    try:
        got = wait_until(frames, timeout_s=120, what="rx to count the recording's 8 frames")
    finally:
        out, err = proc.communicate(timeout=120)
        server.stop()
    assert proc.returncode == 0, err
    assert {labels["meter"] for labels, _ in got["wmbus_meter_rssi_dbfs"]} >= {"31415926", "12345678"}
    now = time.time()
    assert all(abs(v - now) < 60 for _, v in got["wmbus_meter_last_frame_timestamp_seconds"])  # rtl_tcp's clock
    assert all(math.isfinite(v) for _, v in got.get("wmbus_frequency_error_ppm", []))


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flowgraphs.cli", *args], capture_output=True, cwd=REPO, timeout=300)


def test_metrics_options_give_one_clear_line():
    for args, needle in ((["--output", "metrics"], b"--metrics HOST:PORT"), (["--metrics", "9108"], b"HOST:PORT"),
                         (["--metrics", "127.0.0.1:99999"], b"HOST:PORT")):
        p = _cli("decode", str(RECORDING), "--quiet", *args)
        assert p.returncode == 2 and p.stderr.count(b"\n") == 1 and needle in p.stderr, p.stderr
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        p = _cli("decode", str(RECORDING), "--quiet", "--metrics", f"127.0.0.1:{busy.getsockname()[1]}")
    assert p.returncode == 2 and b"cannot listen" in p.stderr and b"Traceback" not in p.stderr


def test_rejections_come_from_the_receiver_when_the_live_loop_reports_them():
    from flowgraphs.pipelines.live import LiveStatus
    from flowgraphs.sinks.metrics import Metrics

    bad = RxFrame(mode="T1", frame_format="A", telegram=bytes(12), crc_ok=False, reason="crc", sample=0,
                  end_sample=10, sample_rate_hz=2.4e6, rssi_dbfs=-30.0, noise_dbfs=-60.0, snr_db=30.0,
                  freq_offset_hz=0.0, chip_rate_hz=1e5, channel_hz=868.95e6, violations=0)
    m = Metrics()
    m.add(bad, None)  # decode --show-bad gives the sink its bad frames
    m.add(bad, None)
    got = _samples(m.render())
    assert got["wmbus_rejected_frames_total"] == [({"reason": "crc"}, 2.0)] and "wmbus_frames_total" not in got
    status = LiveStatus(seconds=1.0, frames=0, frames_per_min=0.0, rejected=6, duplicates=2, bursts=9, meters=0,
                        cpu_percent=5.0, dropped_samples=4096, gaps=1, restarts=1, stalls=0, signal_s=1.0, ppm=-12.5,
                        rejected_reasons=(("coding", 1), ("crc", 5)))
    m.on_status(status)  # rx: the receiver's own count
    got = _samples(m.render())
    assert sorted((labels["reason"], v) for labels, v in got["wmbus_rejected_frames_total"]) == [
        ("coding", 1.0), ("crc", 5.0)]
    assert got["wmbus_dropped_samples_total"] == [({}, 4096.0)] and got["wmbus_frequency_error_ppm"] == [({}, -12.5)]
    assert got["wmbus_source_restarts_total"] == [({}, 1.0)] and got["wmbus_duplicate_frames_total"] == [({}, 2.0)]
