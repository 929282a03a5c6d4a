"""Bidirectional sessions in the simulated channel: gateway and meter emulator modulate with our TX
and decode with the full receiver; every response must start inside the mode's window."""

from __future__ import annotations

import subprocess
import sys

import pytest

from dsp.modes import MODES
from flowgraphs.stations.session import PROFILES, access_demand, installation

from .conftest import REPO

KEY = bytes.fromhex("000102030405060708090A0B0C0D0E0F")


def _check_timing(log, profile):
    lo, hi = (1e3 * w for w in PROFILES[profile].window_s)
    delays = log.delays()
    assert delays, log.text()
    # the receiver's timing is accurate: 0.1 ms, or 1.5 chips on the slow narrow PHYs (R2 4.8 kcps:
    # 0.31 ms, F2 2.4 kcps: 0.63 ms; the frame end an R2 receiver estimates is off by ~1.4 chips at times)
    slowest = min(MODES[PROFILES[profile].uplink].chip_rate, MODES[PROFILES[profile].downlink].chip_rate)
    tol_ms = max(0.1, 1.5e3 / slowest)
    for e in delays:
        assert lo <= e.delay_ms <= hi, log.text()
        assert lo <= e.true_delay_ms <= hi, log.text()
        assert abs(e.delay_ms - e.true_delay_ms) < tol_ms, log.text()
    assert "OUTSIDE" not in log.text() and "inside" in log.text()


@pytest.mark.parametrize("profile", ["T2", "C2", "S2", "R2", "F2"])
def test_installation_session(profile):
    log, _ = installation(profile)
    assert log.completed, log.text()
    assert log.kinds("TX") == ["SND-IR", "CNF-IR", "SND-NR"]
    assert log.kinds("RX") == ["SND-IR", "CNF-IR", "SND-NR"]
    _check_timing(log, profile)


@pytest.mark.parametrize("profile", ["T2", "C2", "S2", "R2", "F2"])
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


@pytest.mark.parametrize("profile, meter_window, band", [
    ("R2", "window 10-10000 ms", (2.4e6, 868.9125e6)),  # R2's ten channels lie in the 868 MHz band
    ("F2", "window 3-4000 ms", (250e3, 433.82e6 + 31.25e3))])  # a band of its own, F2 off its centre
def test_r2_f2_meter_replies_are_judged_by_their_own_window(profile, meter_window, band):
    """phy.md §6.1: the other station answers R2 in 3-50 ms and F2 (fast) in 99.5-100.5 ms, the meter
    replies in 10 ms-10 s (R2) / 3 ms-4 s (F2); every frame went over our TX and RX on the mode's PHY."""
    log, ch = access_demand(profile, key=KEY)
    assert log.completed, log.text()
    (rsp,) = [e for e in log.events if e.action == "RX" and e.kind == "RSP-UD"]
    assert rsp.station == "gateway" and meter_window in rsp.line() and rsp.in_window, log.text()
    others = [e for e in log.delays() if e.station == "meter"]
    lo, hi = PROFILES[profile].window_s
    assert len(others) == 3 and all(e.window_ms == (lo * 1e3, hi * 1e3) and e.in_window for e in others)
    assert (ch.info.sample_rate_hz, ch.info.center_freq_hz) == band
    assert {tx.mode for tx in ch.log} == {profile}


def test_an_r2_meter_answering_too_early_is_outside_its_window():
    """5 ms is inside the gateway's 3-50 ms but before the R2 meter's own 10 ms minimum."""
    log, _ = access_demand("R2", turnaround_s=5e-3)
    assert log.completed, log.text()  # every frame arrived ...
    verdicts = {e.kind: e.in_window for e in log.delays()}
    assert verdicts == {"ACK": True, "REQ-UD2": True, "RSP-UD": False, "SND-NKE": True}, log.text()
    assert "window 10-10000 ms: OUTSIDE" in log.text()


def test_n2_and_one_way_modes_have_no_dialogue_and_say_why():
    from flowgraphs.stations.session import profile_for

    for name in ("N2a", "n2c", "N2F"):
        with pytest.raises(ValueError, match=r"CONFLICT.*phy.md §6.1.*99\.5-100\.5 ms.*1099\.5-1100\.5 ms"):
            profile_for(name)
        with pytest.raises(ValueError, match="CONFLICT"):
            installation(name)
    with pytest.raises(ValueError, match="no N1a dialogue.*T2, S2"):
        profile_for("N1a")
    with pytest.raises(ValueError, match="N2g .*not supported"):
        profile_for("N2g")
    assert profile_for("r2") is PROFILES["R2"] and profile_for("f2") is PROFILES["F2"]


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
    p = subprocess.run([sys.executable, "-m", "flowgraphs.cli", "session", "--mode", "N2a"], capture_output=True,
                       cwd=REPO, timeout=120)
    assert p.returncode == 2 and b"no N2a dialogue" in p.stderr and b"CONFLICT" in p.stderr, p.stderr
    assert b"Traceback" not in p.stderr and not p.stdout
    for bad in (["--seed", "-1"], ["--turnaround", "-1"], ["--mode", "X7"]):
        p = subprocess.run([sys.executable, "-m", "flowgraphs.cli", "session", *bad], capture_output=True, cwd=REPO,
                           timeout=120)
        assert p.returncode == 2 and b"Traceback" not in p.stderr, p.stderr


def test_reachable_windows_from_a_measured_turnaround():
    from flowgraphs.stations.session import reachable_windows

    # R2 (3-50 ms) and F2 (fast, 99.5-100.5 ms) answer like S2 and C2
    assert reachable_windows(2.6e-3) == {"T2": True, "S2": True, "C2": True, "R2": True, "F2": True}
    assert reachable_windows(20e-3) == {"T2": False, "S2": True, "C2": True,  # USB latency: S2 and C2 only
                                        "R2": True, "F2": True}
    assert reachable_windows(0.2) == {"T2": False, "S2": False, "C2": False, "R2": False, "F2": False}


def test_f2_session_recording_decodes(tmp_path):
    """F2 both ways at 433.82 MHz: the whole session, recorded by a third receiver, decodes."""
    out = tmp_path / "f2.sigmf-meta"
    p = subprocess.run([sys.executable, "-m", "flowgraphs.cli", "session", "--mode", "F2", "--dialogue", "installation",
                        "--out", str(out)], capture_output=True, cwd=REPO, timeout=300)
    assert p.returncode == 0, p.stderr
    text = p.stdout.decode()
    assert "F2 installation: complete" in text and "window 99.5-100.5 ms: inside" in text, text
    d = subprocess.run([sys.executable, "-m", "flowgraphs.cli", "decode", str(out), "--modes", "F2"],
                       capture_output=True, cwd=REPO, timeout=300)
    assert d.returncode == 0 and b"3 frames (F2 3)" in d.stderr, d.stderr
