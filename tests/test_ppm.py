"""The tuner's frequency error learnt from the meters heard (issue #12 scope 5): captures rendered as a
dongle off by a known ppm would record them (every signal moved by -ppm * f_c), with each meter's own
crystal a little off too."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dsp.channel import Burst, Capture, adc_8bit
from dsp.modes import MODES
from flowgraphs.pipelines.calibration import PpmCalibrator
from flowgraphs.pipelines.receive import Receiver
from sdr.types import IQChunk, StreamInfo

ROOT = Path(__file__).resolve().parent.parent
FS, FC = 1.6e6, 868.625e6
MODES_OF = ["T1", "C1", "S1", "T1", "C1", "T1", "S1", "T1"]  # one per telegram of recordings/telegrams.txt


def _telegrams() -> list[bytes]:
    return [bytes.fromhex(line) for line in (ROOT / "recordings" / "telegrams.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#")]


def _capture(tuner_ppm: float, *, meter_ppm=(-2.0, 2.0), repeats: int = 2, seed: int = 7,
             spread_evenly: bool = False) -> tuple[np.ndarray, int]:
    """cu8-like IQ of every telegram ``repeats`` times, heard through a tuner ``tuner_ppm`` off; each
    meter's own crystal error drawn from ``meter_ppm`` (or spread evenly over it). Returns (samples, frames sent)."""
    rng = np.random.default_rng(seed)
    tels = _telegrams()
    spread = (np.linspace(*meter_ppm, 7) if spread_evenly else rng.uniform(*meter_ppm, 7))
    meters = list(dict.fromkeys(tel[2:10] for tel in tels))
    own = dict(zip(meters, map(float, spread), strict=True))
    bursts, t = [], 0.01
    for _ in range(repeats):
        for tel, mode in zip(tels, MODES_OF, strict=True):
            m = MODES[mode]
            off = -FC * tuner_ppm * 1e-6 + m.channel_hz * own[tel[2:10]] * 1e-6
            bursts.append(Burst(mode=m, telegram=tel, start_s=t, amplitude=0.2, freq_offset_hz=off))
            t += 0.06
    cap = Capture(bursts, sample_rate_hz=FS, center_freq_hz=FC, duration_s=t + 0.02, rng=rng, noise_rms=0.01)
    return adc_8bit(np.concatenate(list(cap.blocks()))), len(bursts)


def _run(x: np.ndarray, *, ppm: float = 0.0, chunk: int | None = None, switch_at: int | None = None,
         switch_to: float = 0.0):
    info = StreamInfo(sample_rate_hz=FS, center_freq_hz=FC, source="test")
    rx = Receiver(info, ["S1", "T1", "C1"], ppm=ppm, calibrate=True)
    frames = []
    step = chunk or len(x)
    for a in range(0, len(x), step):
        if switch_at is not None and a >= switch_at and rx._pending_ppm is None and rx.ppm != switch_to:
            rx.set_ppm(switch_to)
        frames += rx.process(IQChunk(samples=x[a:a + step], info=info, start=a))
    frames += rx.flush()
    return rx, [f for f in frames if f.crc_ok]


@pytest.fixture(scope="module")
def plus40():
    return _capture(40.0)


def test_plus_40_ppm_tuner_is_measured_within_2_ppm(plus40):
    x, sent = plus40
    rx, frames = _run(x)
    assert len(frames) == sent  # 35 kHz off: still heard
    est = rx.ppm_estimate
    assert est is not None and est.meters == 7 and est.frames == sent
    assert est.ppm == pytest.approx(40.0, abs=2.0)
    assert est.spread_ppm is not None and est.spread_ppm < 4.0
    assert est.settled
    # the frames themselves lie about -34.7 kHz off their channels before correction
    assert np.median([f.freq_offset_hz for f in frames]) == pytest.approx(-FC * 40e-6, abs=2e3)


def test_minus_25_ppm_has_the_other_sign():
    x, _ = _capture(-25.0, repeats=1, seed=3)
    rx, _ = _run(x)
    assert rx.ppm_estimate.ppm == pytest.approx(-25.0, abs=2.0)


def test_correction_moves_the_frames_onto_their_channels_and_keeps_the_estimate(plus40):
    x, sent = plus40
    rx, frames = _run(x, ppm=40.0)
    assert len(frames) == sent
    assert max(abs(f.freq_offset_hz) for f in frames) < 4e3  # what is left: the meters' own crystals
    est = rx.ppm_estimate
    assert est.applied_ppm == 40.0 and est.ppm == pytest.approx(40.0, abs=2.0)


def test_estimate_does_not_depend_on_chunking(plus40):
    x, _ = plus40
    whole, frames = _run(x)
    for chunk in (65536, 100_003):
        rx, got = _run(x, chunk=chunk)
        assert got == frames
        assert rx.ppm_estimate == whole.ppm_estimate


def test_correction_applied_mid_stream_keeps_true_indices(plus40):
    x, sent = plus40
    _, ref = _run(x, chunk=65536)
    switch = 65536 * 8
    rx, frames = _run(x, chunk=65536, switch_at=switch, switch_to=40.0)
    assert rx.ppm == 40.0 and rx.gaps == 0
    before = [f for f in frames if f.end_sample < switch]
    after = [f for f in frames if f.sample > switch + 65536]
    assert before and after
    by_sample = {f.sample: f for f in ref}
    for f in after:  # same place on air as without the switch (within a chip), now on the channel
        near = min(by_sample, key=lambda s: abs(s - f.sample))
        assert abs(near - f.sample) <= FS / MODES[f.mode].chip_rate and by_sample[near].telegram == f.telegram
        assert abs(f.freq_offset_hz) < 4e3
    assert all(abs(f.freq_offset_hz) > 25e3 for f in before)
    assert rx.ppm_estimate.ppm == pytest.approx(40.0, abs=2.0)


def test_meters_of_their_own_give_no_recommendation():
    x, _ = _capture(0.0, meter_ppm=(-15.0, 15.0), repeats=1, seed=11, spread_evenly=True)
    rx, _ = _run(x)
    est = rx.ppm_estimate
    assert est.meters == 7 and not est.settled


def test_calibrator_bounds_its_work_per_meter():
    cal = PpmCalibrator(FC, per_meter=3, refresh_s=60.0)
    tel = bytes.fromhex("2e4493157856341233037a")
    for k in range(3):
        assert cal.wants(tel, k)
        cal.add(tel, k, -FC * 10e-6)
    assert not cal.wants(tel, 30.0)  # full: next fit a minute after the last
    assert cal.wants(tel, 62.5)
    assert not cal.wants(b"\x05\x44\x93", 0.0)  # too short to name a meter
    est = cal.estimate()
    assert est.ppm == pytest.approx(10.0) and est.meters == 1 and est.spread_ppm is None and not est.settled
    with pytest.raises(ValueError):
        PpmCalibrator(0.0)


def test_decode_prints_the_tuner_error_and_applies_ppm(plus40, tmp_path):
    x, sent = plus40
    path = tmp_path / "capture.cu8"
    codes = np.clip(np.rint(x.view(np.float32) * 127.5 + 127.5), 0, 255).astype(np.uint8)
    path.write_bytes(codes.tobytes())
    base = [sys.executable, "-m", "flowgraphs.cli", "decode", str(path), "--format", "cu8", "--rate", str(FS),
            "--center", str(FC), "--output", "jsonl"]
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    plain = subprocess.run(base, capture_output=True, text=True, env=env, timeout=300, check=True)
    said = re.search(r"tuner frequency error: ([-+][0-9.]+) ppm .*; decode with --ppm (-?[0-9]+)", plain.stderr)
    assert said, plain.stderr
    assert float(said[1]) == pytest.approx(40.0, abs=2.0) and abs(int(said[2]) - 40) <= 2
    fixed = subprocess.run([*base, "--ppm", "40"], capture_output=True, text=True, env=env, timeout=300, check=True)
    offsets = [json.loads(line)["freq_offset_hz"] for line in fixed.stdout.splitlines()]
    assert len(offsets) == sent and max(map(abs, offsets)) < 4e3
    assert "--ppm 40 applied" in fixed.stderr and "decode with" not in fixed.stderr
    bad = subprocess.run([*base, "--ppm", "5000"], capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 2 and "--ppm 5000" in bad.stderr and "Traceback" not in bad.stderr


def test_rx_auto_ppm_corrects_once_the_meters_agree(tmp_path):
    x, sent = _capture(40.0, repeats=3, seed=5)
    path = tmp_path / "rtlsdr_868.625M_1M6_plus40.cu8"
    codes = np.clip(np.rint(x.view(np.float32) * 127.5 + 127.5), 0, 255).astype(np.uint8)
    path.write_bytes(codes.tobytes())
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    cmd = [sys.executable, "-m", "flowgraphs.cli", "rx", "--device", f"file:{path}", "--rate", str(FS), "--center",
           str(FC), "--output", "jsonl", "--auto-ppm"]
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr
    frames = [json.loads(line) for line in run.stdout.splitlines()]
    assert len(frames) == sent
    offsets = [f["freq_offset_hz"] for f in frames]
    assert abs(offsets[0]) > 30e3  # heard 35 kHz off at first ...
    assert max(abs(o) for o in offsets[-8:]) < 4e3  # ... on their channels once corrected
    said = re.search(r"tuner frequency error: ([-+][0-9.]+) ppm .*correction in force: ([0-9.]+) ppm", run.stderr)
    assert said, run.stderr
    assert float(said[1]) == pytest.approx(40.0, abs=2.0) and float(said[2]) == pytest.approx(40.0, abs=2.0)
    assert "--auto-ppm" in run.stderr  # the correction is logged
