"""Every output carries the frame's UTC time from the sample clock and its absolute sample index:
text, JSON lines, rtlwmbus, InfluxDB, metrics and the SigMF snippets of --save-iq; a source without
a clock claims no time. And the rtlwmbus signal columns with --cal-offset."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from flowgraphs import sinks
from flowgraphs.pipelines.live import IqSaver, run_live
from flowgraphs.pipelines.receive import Receiver, RxFrame, receive
from flowgraphs.sinks.metrics import Metrics
from sdr.file import FileSource
from tests.support import sample_frame, timed_recording

REPO = Path(__file__).resolve().parent.parent
RECORDING = REPO / "recordings" / "example_868.625M_2M4.sigmf-meta"
KEYS = str(REPO / "recordings" / "keys.txt")
T0 = "2026-12-01T19:55:00.250Z"
T0_NS = 1_796_154_900_250_000_000
RATE = 2.4e6


def _ot_frame(**kw):
    return sample_frame(**{"rssi_dbfs": -30.4, "noise_dbfs": -60.6, "snr_db": 30.2, **kw})


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flowgraphs.cli", *args], capture_output=True, cwd=REPO, timeout=300)


def _iso(time_ns: int) -> str:
    s, ns = divmod(time_ns, 1_000_000_000)
    return datetime.fromtimestamp(s, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{ns // 1000:06d}Z"


def test_every_format_renders_the_frames_utc_time_and_sample():
    f = _ot_frame()
    head = sinks.text_event(f, None).splitlines()[0]
    assert head.startswith("2026-12-01T19:55:00.123456Z ") and head.endswith("  sample 2400000")
    obj = json.loads(sinks.jsonl_event(f, None))
    assert (obj["time"], obj["time_ns"], obj["sample"]) == ("2026-12-01T19:55:00.123456Z", f.time_ns, 2_400_000)
    assert sinks.rtlwmbus_event(f, None).split(";")[3] == "2026-12-01 19:55:00.123"
    (line,) = sinks.influx_points(f, None)
    assert line.endswith(",sample=2400000i 1796154900123456789")
    m = Metrics()
    m.add(f, None)
    assert "wmbus_last_frame_timestamp_seconds 1796154900.1234567" in m.render()


def test_a_source_without_a_clock_claims_no_time():
    f = _ot_frame(time_ns=None)
    head = sinks.text_event(f, None).splitlines()[0]
    assert not re.search(r"\d{4}-\d\d-\d\dT", head) and head.endswith("sample 2400000")
    obj = json.loads(sinks.jsonl_event(f, None))
    assert (obj["time"], obj["time_ns"], obj["sample"]) == (None, None, 2_400_000)
    (line,) = sinks.influx_points(f, None)
    assert line.endswith(",sample=2400000i")  # the server stamps it on arrival
    m = Metrics()
    m.add(f, None)
    assert "\nwmbus_last_frame_timestamp_seconds " not in m.render()
    # rtlwmbus keeps its column: the time the line is written, as rtl_wmbus prints it
    stamp = sinks.rtlwmbus_event(f, None).split(";")[3]
    written = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC).timestamp()
    assert abs(written - time.time()) < 60


def test_decode_outputs_carry_the_recordings_clock(tmp_path):
    recording = str(timed_recording(tmp_path))
    p = _cli("decode", recording, "--keys", KEYS, "--output", "jsonl", "--quiet")
    assert p.returncode == 0, p.stderr
    objs = [json.loads(x) for x in p.stdout.decode().splitlines()]
    assert len(objs) == 8
    for o in objs:  # the anchor plus the sample index at the nominal rate
        assert o["time_ns"] == T0_NS + round(o["sample"] * 1e9 / RATE) and o["time"] == _iso(o["time_ns"])
    p = _cli("decode", recording, "--keys", KEYS, "--output", "text", "--quiet")
    heads = [x for x in p.stdout.decode().splitlines() if re.match(r"\d{4}-", x)]
    assert [h.split()[0] for h in heads] == [o["time"] for o in objs]
    assert [int(h.rsplit(" ", 1)[1]) for h in heads] == [o["sample"] for o in objs]
    p = _cli("decode", recording, "--output", "rtlwmbus", "--quiet")
    assert [x.split(";")[3] for x in p.stdout.decode().splitlines()] == [
        o["time"].replace("T", " ")[:23] for o in objs]


def test_rtlwmbus_signal_columns_take_the_calibration_offset():
    f = _ot_frame()
    assert sinks.rtlwmbus_event(f, None).split(";")[4:6] == ["-30", "-61"]  # dBFS by default
    assert sinks.rtlwmbus_event(f, None, cal_offset_db=-70.2).split(";")[4:6] == ["-101", "-131"]
    plain = _cli("decode", str(RECORDING), "--output", "rtlwmbus", "--quiet").stdout.decode().splitlines()
    shifted = _cli("decode", str(RECORDING), "--output", "rtlwmbus", "--quiet",
                   "--cal-offset", "-60").stdout.decode().splitlines()
    assert len(plain) == len(shifted) == 8
    for a, b in zip(plain, shifted, strict=True):
        a, b = a.split(";"), b.split(";")
        assert int(b[4]) == int(a[4]) - 60 and int(b[5]) == int(a[5]) - 60
        assert len(b[4]) <= 4  # wmbusmeters reads the packet RSSI only up to 4 characters
        assert a[:3] + a[6:] == b[:3] + b[6:]  # (no clock in this recording: [3] is the time of writing)
    p = _cli("decode", str(RECORDING), "--output", "rtlwmbus", "--cal-offset", "nan")
    assert p.returncode == 2 and p.stderr.count(b"\n") == 1 and b"--cal-offset" in p.stderr


def test_help_says_the_rtlwmbus_columns_are_dbfs_plus_the_offset():
    for command in ("rx", "decode"):
        text = " ".join(_cli(command, "--help").stdout.decode().split())
        assert "--cal-offset DB" in text and "dBFS + DB (default 0: plain dBFS, not dBm)" in text


@pytest.mark.parametrize("clock", [True, False], ids=["clock", "no-clock"])
def test_save_iq_snippets_carry_their_datetime_and_stream_index(tmp_path, clock):
    src = FileSource(str(timed_recording(tmp_path) if clock else RECORDING))
    rx = Receiver(src.info)
    saver = IqSaver(str(tmp_path / "iq"), src.info)
    frames: list[RxFrame] = []
    run_live(src, rx, [lambda f, t: frames.append(f)], save_iq=saver)
    metas = sorted((tmp_path / "iq").glob("*.sigmf-meta"))
    assert len(frames) == len(metas) == 8
    for f in frames:
        (meta,) = [m for m in metas if m.name.endswith(f"_{f.sample}.sigmf-meta")]
        doc = json.loads(meta.read_text())
        capture, note = doc["captures"][0], doc["annotations"][0]
        start = capture["core:global_index"]
        assert note["wmbus:stream_sample"] == f.sample and note["core:sample_start"] == f.sample - start
        if not clock:
            assert "core:datetime" not in capture
            continue
        snippet = FileSource(str(meta))
        (g,) = [x for x in receive(snippet, snippet.info) if x.crc_ok]
        assert g.telegram == f.telegram
        quarter_chip = 0.25 * RATE / f.chip_rate_hz
        assert abs(g.sample + start - f.sample) <= quarter_chip
        # the snippet's clock is the stream's (core:datetime is kept to the microsecond)
        expected = (g.sample + start - f.sample) * 1e9 / RATE
        assert abs((g.time_ns - f.time_ns) - expected) <= 1_001
