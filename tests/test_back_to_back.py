"""Frames back to back on a narrow channel: gaps shorter than the burst finder's hang time (8 windows,
34 ms on an N channel) merge the frames into one burst, which the finder cuts at its length limit
(1.5 s). Every frame must still come out once, byte-exact, whatever the chunking: the one across
the cut (decoded from the cut burst's kept tail in front of the next one) and every one of the more
than 8 frames a long burst holds (found by tx_roundtrip's batched run, issue #13)."""

from __future__ import annotations

import numpy as np
import pytest

from dsp.channel import Burst, adc_8bit, amplitude_for, render
from dsp.modes import MODES
from dsp.phy import frame_chips
from flowgraphs.pipelines.receive import Receiver
from sdr.types import IQChunk, StreamInfo

RATE = 300e3
INFO = StreamInfo(sample_rate_hz=RATE, center_freq_hz=169.4375e6)
NOISE = 0.06


def _train(mode: str, n_frames: int, n_bytes: int, gap_s: float, seed: int):
    """``n_frames`` distinct telegrams on one channel, each ``gap_s`` after the one before."""
    spec = MODES[mode]
    rng = np.random.default_rng(seed)
    bursts, t = [], 0.01
    for i in range(n_frames):
        tel = bytes([n_bytes - 1, 0x44, i]) + rng.integers(0, 256, n_bytes - 3, dtype=np.uint8).tobytes()
        b = Burst(mode=spec, telegram=tel, frame_format="AB"[i % 2], start_s=t,
                  amplitude=amplitude_for(spec, 20.0, noise_rms=NOISE, sample_rate_hz=RATE),
                  freq_offset_hz=float(rng.uniform(-1e3, 1e3)), chip_rate_error=float(rng.uniform(-1e-4, 1e-4)))
        bursts.append(b)
        t += len(frame_chips(spec, tel, b.frame_format)) / b.chip_rate_hz + gap_s
    x, placed = render(bursts, sample_rate_hz=RATE, center_freq_hz=INFO.center_freq_hz, duration_s=t + 0.05,
                       rng=rng, noise_rms=NOISE)
    return adc_8bit(x), placed


def _receive(x: np.ndarray, mode: str, chunk: int):
    rx = Receiver(INFO, [mode])
    out = []
    for i in range(0, len(x), chunk):
        out += rx.process(IQChunk(samples=x[i:i + chunk], info=INFO, start=i))
    out += rx.flush()
    return [f for f in out if f.crc_ok], rx.stats


@pytest.mark.parametrize("mode, n_frames, n_bytes", [
    ("N1c", 16, 44),  # 2.4 kcps, ~0.2 s each: the 1.5 s limit cuts inside a frame
    ("N1a", 40, 20),  # 4.8 kcps, ~50 ms each: some 25 frames in one 1.5 s burst
])
def test_frames_back_to_back_all_decode_once(mode, n_frames, n_bytes):
    x, placed = _train(mode, n_frames, n_bytes, gap_s=0.025, seed=13)
    frames, stats = _receive(x, mode, 1 << 16)
    assert stats["bursts"] < n_frames / 4  # the frames did merge into a few long bursts ...
    assert stats["rejected truncated"] >= 1  # ... cut inside a frame
    assert [f.telegram for f in frames] == [p.burst.telegram for p in placed]
    assert [f.frame_format for f in frames] == [p.burst.frame_format for p in placed]
    for f, p in zip(frames, placed, strict=True):  # at its sync word, within a chip
        assert abs(f.sample - p.placement.sync_start) <= RATE / MODES[mode].chip_rate
    again, _ = _receive(x, mode, 12345)  # and the same under another chunking
    assert again == frames


def test_a_frame_heard_twice_in_overlapping_bursts_comes_out_once():
    """Bursts may overlap (a cut burst's kept tail, the burst finder's margin): a frame decoded again
    from the overlap, same bytes within a few chips of the first, is counted as a duplicate."""
    x, placed = _train("N1a", 1, 30, gap_s=0.0, seed=5)
    rx = Receiver(INFO, ["N1a"])
    bursts = []
    burst_of = rx._burst

    def keep(name, burst):
        bursts.append((name, burst))
        return burst_of(name, burst)

    rx._burst = keep
    frames = [f for f in [*rx.process(IQChunk(samples=x, info=INFO, start=0)), *rx.flush()] if f.crc_ok]
    assert [f.telegram for f in frames] == [placed[0].burst.telegram]
    (name, burst), = bursts
    assert [f for f in burst_of(name, burst) if f.crc_ok] == []  # the same burst once more
    assert rx.stats["duplicates"] == 1 and rx.stats["frames N1a"] == 1
