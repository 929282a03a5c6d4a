"""Transmitter quirks seen on real meters: one extra chip between preamble and sync word (Engelmann,
wmbusmeters #953) in every mode, and C1 at the low end of its deviation tolerance (33.75 kHz, -25 %),
plain 2-FSK and Gaussian shaped (BT 0.5), through the full receiver from cu8."""

from __future__ import annotations

import numpy as np
import pytest

from dsp import phy
from dsp.channel import single_burst
from dsp.modes import MODES
from dsp.modulate import frame_placement, modulate_frame
from flowgraphs.pipelines.receive import receive
from sdr.types import IQChunk, StreamInfo

RATE, CENTER = 1.6e6, 868.625e6


def _telegram(rng: np.random.Generator) -> bytes:
    return bytes([0x32, 0x44]) + rng.integers(0, 256, 49, dtype=np.uint8).tobytes()


def _received(x: np.ndarray, mode: str, center: float = CENTER) -> list:
    info = StreamInfo(sample_rate_hz=RATE, center_freq_hz=center)
    return [f for f in receive([IQChunk(samples=x, info=info, start=0)], info, [mode]) if f.crc_ok]


@pytest.mark.parametrize(("mode", "fmt"), [("S1", "A"), ("T1", "A"), ("C1", "A"), ("C1", "B")])
def test_extra_chip_lies_between_preamble_and_sync(mode, fmt):
    spec = MODES[mode]
    tel = bytes.fromhex("2E4493157856341233037A2A0020255923C95AAA26D1B2E7493B013EC4A6F6D3529B520EDFF0EA6DEF"
                        "C99D6D69EBF3")
    rate = 2.4e6
    plain = frame_placement(tel, spec, frame_format=fmt, sample_rate_hz=rate)
    f = modulate_frame(tel, spec, frame_format=fmt, sample_rate_hz=rate, center_freq_hz=spec.channel_hz,
                       extra_chips_before_sync=(0,))
    sps = rate / spec.chip_rate
    assert f.placement.preamble_start == plain.preamble_start
    assert abs(f.placement.sync_start - plain.sync_start - sps) <= 1
    freq = np.angle(f.samples[1:] * np.conj(f.samples[:-1]))
    n_pre = 2 * spec.preamble_pairs
    chips = phy.frame_chips(spec, tel, fmt)
    want = np.concatenate((chips[:n_pre], [0], chips[n_pre:]))
    centres = ((np.arange(len(want)) + 0.5) * sps).astype(int)
    got = (freq[np.minimum(centres, len(freq) - 1)] > 0).astype(int)
    head = n_pre + 1 + len(spec.syncs[fmt]) + 40  # preamble, the extra chip, sync word, some data
    np.testing.assert_array_equal(got[:head], want[:head])
    with pytest.raises(ValueError, match="0/1"):
        frame_placement(tel, spec, frame_format=fmt, sample_rate_hz=rate, extra_chips_before_sync=(2,))


@pytest.mark.parametrize(("mode", "fmt"), [("S1", "A"), ("T1", "A"), ("C1", "A"), ("C1", "B")])
@pytest.mark.parametrize("extra", [(0,), (1,)])
def test_one_extra_chip_before_the_sync_word_still_decodes(mode, fmt, extra):
    """Every frame of a seeded set (carrier and chip-rate errors within the mode's tolerance) comes
    out byte-exact, as it does without the extra chip."""
    rng = np.random.default_rng(953)
    spec = MODES[mode]
    tol = {"S1": 0.02, "T1": 0.12, "C1": 0.0005}[mode]
    for _ in range(6):
        tel = _telegram(rng)
        x = single_burst(spec, tel, frame_format=fmt, rng=rng, ebn0_db=16.0, freq_offset_hz=rng.uniform(-20e3, 20e3),
                         chip_rate_error=rng.uniform(-tol, tol), extra_chips_before_sync=extra)
        got = _received(x, mode)
        assert [f.telegram for f in got] == [tel]
        assert got[0].frame_format == fmt


@pytest.mark.parametrize("fmt", ["A", "B"])
@pytest.mark.parametrize("bt", [None, 0.5])
def test_c1_at_its_lowest_deviation_decodes_like_nominal(fmt, bt):
    """33.75 kHz (-25 %) at 20 dB: at least 99 % of 100 frames, on the band centre and tuned on the
    channel, as at the nominal 45 kHz."""
    rng = np.random.default_rng(3375)
    spec = MODES["C1"]
    ok = 0
    n = 100
    for k in range(n):
        tel = _telegram(rng)
        center = CENTER if k % 2 else spec.channel_hz
        x = single_burst(spec, tel, frame_format=fmt, rng=rng, ebn0_db=20.0, deviation_error=-0.25, gaussian_bt=bt,
                         freq_offset_hz=rng.uniform(-10e3, 10e3), center_freq_hz=center)
        ok += [f.telegram for f in _received(x, "C1", center)] == [tel]
    assert ok >= 99
