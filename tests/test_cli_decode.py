"""`wmbus-sdr decode`: outputs (text, jsonl, rtlwmbus), summary, and one clear line for bad input."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from .conftest import REPO

RECORDING = str(REPO / "recordings" / "example_868.625M_2M4.sigmf-meta")
KEYS = str(REPO / "recordings" / "keys.txt")


def run(*args, stdin: bytes | None = None):
    return subprocess.run([sys.executable, "-m", "flowgraphs.cli", "decode", *args], capture_output=True,
                          input=stdin, cwd=REPO, timeout=300)


def test_jsonl_frames_with_decoded_readings():
    p = run(RECORDING, "--keys", KEYS, "--output", "jsonl")
    assert p.returncode == 0, p.stderr
    objs = [json.loads(line) for line in p.stdout.decode().splitlines()]
    assert len(objs) == 8
    for o in objs:
        for k in ("mode", "format", "telegram", "crc_ok", "t_s", "sample", "rssi_dbfs", "noise_dbfs", "snr_db",
                  "freq_offset_hz", "chip_rate_hz", "decoded"):
            assert k in o
    assert {(o["mode"], o["format"]) for o in objs} == {("S1", "A"), ("T1", "A"), ("C1", "A"), ("C1", "B")}
    heat = next(o for o in objs if o["decoded"]["id"] == "31415926")
    assert heat["decoded"]["decryption"] == "ok"
    energy = next(r for r in heat["decoded"]["records"] if r["quantity"] == "energy")
    assert (energy["value"], energy["unit"]) == (4711, "kWh")
    compact = [o for o in objs if o["decoded"]["id"] == "20261126"]
    assert [o["decoded"]["records_outcome"] for o in compact] == ["ok", "ok"]
    assert b"8 frames" in p.stderr and b"real time" in p.stderr


def test_rtlwmbus_lines_match_the_format_wmbusmeters_reads():
    p = run(RECORDING, "--output", "rtlwmbus")
    lines = p.stdout.decode().splitlines()
    assert len(lines) == 8
    pattern = re.compile(r"^(S1|T1|C1);1;[01];\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3};"
                         r"-?\d+;-?\d+;[0-9a-f]{8};0x[0-9a-f]+$")
    for line in lines:
        assert pattern.match(line), line


def test_bad_inputs_give_one_clear_line(tmp_path):
    garbage = tmp_path / "garbage_868.95M_1M6.cu8"
    garbage.write_bytes(bytes(range(256)) * 40 + b"\x07")
    p = run(str(garbage))
    assert p.returncode == 0 and b"Traceback" not in p.stderr and b"0 frames" in p.stderr
    assert b"do not form a whole cu8 sample" in p.stderr
    for args, needle in (([str(tmp_path / "missing.cu8")], b"no such file"),
                         ([str(tmp_path / "x.bin"), "--format", "cu8"], b"no such file"),
                         ([RECORDING, "--modes", "Q9"], b"unknown mode"),
                         ([RECORDING, "--center", "315e6"], b"no wanted channel")):  # 433.92: F2 is there now
        p = run(*args)
        assert p.returncode == 2 and b"Traceback" not in p.stderr, p.stderr
        assert needle in p.stderr and p.stderr.count(b"\n") == 1, p.stderr


def test_stdin_needs_rate_and_centre():
    p = run("-", "--format", "cu8", stdin=b"\x80" * 1000)
    assert p.returncode == 2 and b"--rate" in p.stderr
    p = run("-", "--format", "cu8", "--rate", "1.6e6", "--center", "868.95e6", stdin=b"\x80" * 100000)
    assert p.returncode == 0 and b"0 frames" in p.stderr


def test_zero_frames_at_a_wrong_rate_names_the_likely_wrong_option():
    """The recording's data read as 1.2 Msps (it is 2.4): bursts heard, no sync word -> the hint names --rate."""
    p = run(str(REPO / "recordings" / "example_868.625M_2M4.sigmf-data"), "--format", "cu8", "--rate", "1.2e6",
            "--center", "868.625e6")
    err = p.stderr.decode()
    assert p.returncode == 0 and "0 frames" in err
    assert "hint:" in err and "--rate 1.2e6" in err and "Traceback" not in err


def test_quiet_gives_the_same_frames_without_the_summary_and_its_calibration():
    """--quiet fits no carrier for the tuner-error figure only the summary prints: the frames are
    byte for byte those of a decode with the summary, which reports that figure."""
    loud = run(RECORDING, "--output", "jsonl")
    quiet = run(RECORDING, "--output", "jsonl", "--quiet")
    assert loud.returncode == 0 and quiet.returncode == 0, (loud.stderr, quiet.stderr)
    assert len(loud.stdout.splitlines()) == 8
    assert quiet.stdout == loud.stdout
    assert b"tuner frequency error" in loud.stderr
    assert quiet.stderr == b""
