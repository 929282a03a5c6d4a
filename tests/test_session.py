"""Bidirectional sessions in the simulated channel: gateway and meter emulator modulate with our TX
and decode with the full receiver; every response must start inside the mode's window."""

from __future__ import annotations

import subprocess
import sys

import pytest

from flowgraphs.stations.session import PROFILES, access_demand, installation

from .conftest import REPO

KEY = bytes.fromhex("000102030405060708090A0B0C0D0E0F")


def _check_timing(log, profile):
    lo, hi = (1e3 * w for w in PROFILES[profile].window_s)
    delays = log.delays()
    assert delays, log.text()
    for e in delays:
        assert lo <= e.delay_ms <= hi, log.text()
        assert lo <= e.true_delay_ms <= hi, log.text()
        assert abs(e.delay_ms - e.true_delay_ms) < 0.1, log.text()  # the receiver's timing is accurate
    assert "OUTSIDE" not in log.text() and "inside" in log.text()


@pytest.mark.parametrize("profile", ["T2", "C2", "S2"])
def test_installation_session(profile):
    log, _ = installation(profile)
    assert log.completed, log.text()
    assert log.kinds("TX") == ["SND-IR", "CNF-IR", "SND-NR"]
    assert log.kinds("RX") == ["SND-IR", "CNF-IR", "SND-NR"]
    _check_timing(log, profile)


@pytest.mark.parametrize("profile", ["T2", "C2", "S2"])
def test_access_demand_session_encrypted(profile):
    log, ch = access_demand(profile, key=KEY)
    assert log.completed, log.text()
    assert log.kinds("TX") == ["ACC-DMD", "ACK", "REQ-UD2", "RSP-UD", "SND-NKE"]
    assert log.kinds("RX") == log.kinds("TX")
    _check_timing(log, profile)
    data = [e.text for e in log.events if e.action == "DATA"]
    assert data == ["12345678: decrypted, volume 12345.678 m3"], log.text()
    # each direction used its own PHY: T2 uplink T1 / downlink 868.30 MHz Manchester, C2 C1 / 869.525 MHz
    modes = {(tx.station, tx.mode) for tx in ch.log}
    up, down = PROFILES[profile].uplink, PROFILES[profile].downlink
    assert modes == {("meter", up), ("gateway", down)}


def test_a_gateway_too_slow_for_t2_misses_the_window():
    log, _ = installation("T2", turnaround_s=3.5e-3)
    assert not log.completed
    assert [(e.station, e.action, e.kind) for e in log.events][-1] == ("meter", "LOST", "CNF-IR")


def test_session_survives_a_noisy_channel():
    log, _ = access_demand("C2", ebn0_db=13, seed=7)
    assert log.completed, log.text()


def test_session_cli_log_and_recording(tmp_path):
    out = tmp_path / "t2.sigmf-meta"
    p = subprocess.run([sys.executable, "-m", "flowgraphs.cli", "session", "--mode", "t2", "--dialogue", "access",
                        "--out", str(out)], capture_output=True, cwd=REPO, timeout=120)
    assert p.returncode == 0, p.stderr
    text = p.stdout.decode()
    assert "T2 access demand: complete" in text and text.count("window 2-3 ms: inside") == 4, text
    # a third receiver decodes the recording of the whole session: both directions, both PHYs
    d = subprocess.run([sys.executable, "-m", "flowgraphs.cli", "decode", str(out), "--modes", "S1,T1"],
                       capture_output=True, cwd=REPO, timeout=120)
    assert d.returncode == 0 and b"5 frames (S1 3, T1 2)" in d.stderr, d.stderr
    p = subprocess.run([sys.executable, "-m", "flowgraphs.cli", "session", "--turnaround", "3.5e-3"],
                       capture_output=True, cwd=REPO, timeout=120)
    assert p.returncode == 1 and b"LOST" in p.stdout
    p = subprocess.run([sys.executable, "-m", "flowgraphs.cli", "session", "--key", "xyz"],
                       capture_output=True, cwd=REPO, timeout=120)
    assert p.returncode == 2 and b"32 hex digits" in p.stderr and b"Traceback" not in p.stderr
    for bad in (["--seed", "-1"], ["--turnaround", "-1"]):
        p = subprocess.run([sys.executable, "-m", "flowgraphs.cli", "session", *bad], capture_output=True, cwd=REPO,
                           timeout=120)
        assert p.returncode == 2 and b"Traceback" not in p.stderr, p.stderr


def test_reachable_windows_from_a_measured_turnaround():
    from flowgraphs.stations.session import reachable_windows

    assert reachable_windows(2.6e-3) == {"T2": True, "S2": True, "C2": True}
    assert reachable_windows(20e-3) == {"T2": False, "S2": True, "C2": True}  # USB latency: S2 and C2 only
    assert reachable_windows(0.2) == {"T2": False, "S2": False, "C2": False}
