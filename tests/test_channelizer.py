"""The full-rate front end against references computed another way: the channeliser's output is
a mixed, filtered and decimated input (checked against a direct float64 convolution), for the
blocks that need a mixing phase and for those whose step makes it 1; rate classes cut from a
shared spectrum equal a channeliser of their own; the impulse blanker zeroes short clicks and
leaves a transmission's edges alone. Chunk invariance of the shared classes is tested bit-exact."""

from __future__ import annotations

import numpy as np
import pytest

from dsp.channelizer import Channelizer, RateClass, shared_decimation
from dsp.frontend import ImpulseBlanker
from dsp.modes import R2_CHANNELS_HZ
from flowgraphs.pipelines.receive import Receiver
from sdr.types import StreamInfo

CENTER = 868.625e6


def _noise(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return ((rng.standard_normal(n) + 1j * rng.standard_normal(n)) * 0.1).astype(np.complex64)


def _tones(n: int, fs: float, center_hz: float, offsets_hz: tuple[float, ...], seed: int) -> np.ndarray:
    """Tones at ``center_hz + offsets`` (random phases): all their power inside one channel's passband,
    so that the bins a channeliser drops hold nothing a decimated convolution would fold in."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    x = sum(0.2 * np.exp(1j * (2 * np.pi * (center_hz + f) * t / fs + rng.uniform(0, 2 * np.pi))) for f in offsets_hz)
    return x.astype(np.complex64)


def _reference(x: np.ndarray, fs: float, offset_hz: float, taps: np.ndarray, decimation: int, n: int) -> np.ndarray:
    """Output k = sum_m taps[m] x[kD - m] exp(-2j pi f (kD - m) / fs) (zeros before sample 0), in float64."""
    t = np.arange(len(x))
    mixed = x.astype(np.complex128) * np.exp(-2j * np.pi * offset_hz * t / fs)
    full = np.convolve(mixed, taps.astype(np.float64))
    return full[: n * decimation: decimation]


def _taps(cz: Channelizer, index: int = 0) -> np.ndarray:
    return cz._cuts[index].taps


@pytest.mark.parametrize(("rate", "freqs"), [
    (1.6e6, (868.30e6, 868.95e6)),  # S and T/C: the block step makes every mixing phase 1
    (1.6e6, (868.3123e6, 868.9001e6)),  # bins without that property: a mixing phase per block
    (2.4e6, (868.30e6, 868.95e6)),
])
def test_channel_output_is_the_mixed_filtered_decimated_input(rate, freqs):
    plan = {f"c{i}": f for i, f in enumerate(freqs)}
    for k, ch in enumerate(Channelizer(rate, CENTER, plan).channels):
        cz = Channelizer(rate, CENTER, plan)
        x = _tones(150_000, rate, ch.offset_hz, (-120e3, -37e3, 10e3, 95e3), seed=k)
        y = cz.process(x)[ch.name]
        ref = _reference(x, rate, ch.offset_hz, _taps(cz), cz.decimation, len(y))
        assert len(y) > 0.8 * len(x) // cz.decimation
        np.testing.assert_allclose(y, ref, rtol=0, atol=1e-4 * np.abs(ref).max())


def test_phase_aligned_step_only_when_it_is_cheap():
    aligned = Channelizer(1.6e6, CENTER, {"S": 868.30e6, "TC": 868.95e6})
    assert all((c.bin * aligned.hop) % aligned.n_fft == 0 for c in aligned.channels)
    other = Channelizer(1.6e6, CENTER, {"X": 868.3123e6})
    assert other.overlap < aligned.overlap  # the general step: the smallest overlap on the decimation grid
    assert other.overlap % other.decimation == 0 and other.overlap >= len(_taps(other)) - 1


@pytest.mark.parametrize("rate", [1.6e6, 2.4e6])
def test_shared_rate_class_is_the_mixed_filtered_decimated_input(rate):
    r2 = {f"r{i}": f for i, f in enumerate(R2_CHANNELS_HZ)}
    d = shared_decimation(Channelizer.block_size(rate, 400e3), rate, 48e3)
    assert d is not None and 0.8 <= rate / d / 48e3 <= 1.2
    wide = {"S": 868.30e6, "TC": 868.95e6}
    probe = Channelizer(rate, CENTER, wide, shared=((r2, rate / d, 15e3),))
    alone = Channelizer(rate, CENTER, r2, out_rate_target=rate / d, passband_hz=15e3)
    narrow = probe.classes[1]
    assert isinstance(narrow, RateClass) and narrow.shared and narrow.owner is probe and not probe.classes[0].shared
    # the filter of a class of its own, on the shared FFT's coarser bins (within half a bin of the channel)
    assert (narrow.decimation, narrow.out_rate, narrow.delay) == (alone.decimation, alone.out_rate, alone.delay)
    assert all(abs(c.freq_hz - CENTER - c.offset_hz) <= rate / probe.n_fft / 2 for c in narrow.channels)
    for k in (0, 4, 9):
        ch = narrow.channels[k]
        cz = Channelizer(rate, CENTER, wide, shared=((r2, rate / d, 15e3),))
        x = _tones(300_000, rate, ch.offset_hz, (-9e3, -2e3, 6e3), seed=k)
        out = cz.process(x)
        assert set(out) == {*wide, *r2}
        y = out[ch.name]
        ref = _reference(x, rate, ch.offset_hz, _taps(cz, 1), narrow.decimation, len(y))
        assert len(y) > 5000
        np.testing.assert_allclose(y, ref, rtol=0, atol=1e-4 * np.abs(ref).max())
        # the neighbours 60 kHz away hear the tones 60 dB down or more
        for j in (k - 1, k + 1):
            if 0 <= j < 10:
                assert np.abs(out[narrow.channels[j].name][1000:]).max() < 1e-3 * np.abs(y[1000:]).max()


def test_shared_classes_are_chunk_invariant():
    r2 = {f"r{i}": f for i, f in enumerate(R2_CHANNELS_HZ)}
    cz = Channelizer(1.6e6, CENTER, {"S": 868.30e6, "TC": 868.95e6}, shared=((r2, 50e3, 15e3),))
    x = _noise(300_000, 3)
    whole = cz.process(x)
    cz.reset()
    cuts = [0, 1, 4095, 4096, 50_000, 123_457, 123_458, 299_000, 300_000]
    parts = [cz.process(x[a:b]) for a, b in zip(cuts, cuts[1:], strict=False)]
    for name in whole:
        np.testing.assert_array_equal(whole[name], np.concatenate([p[name] for p in parts]))


def test_receiver_cuts_r2_from_the_wide_spectra():
    for rate in (1.6e6, 2.4e6):
        rx = Receiver(StreamInfo(sample_rate_hz=rate, center_freq_hz=CENTER), ["S1", "T1", "C1", "R2"])
        (wide, wide_names), (narrow, narrow_names) = rx.channelizers
        assert isinstance(wide, Channelizer) and isinstance(narrow, RateClass) and narrow.owner is wide
        assert len(wide_names) == 2 and len(narrow_names) == 10
        assert narrow.out_rate == pytest.approx(50e3) and wide.hop % narrow.decimation == 0
        assert rx.alignment % (narrow.decimation * rx.finders[narrow_names[0]].window) == 0
    # a capture with only narrow channels keeps one channeliser of their own
    rx = Receiver(StreamInfo(sample_rate_hz=250e3, center_freq_hz=169.4375e6))
    assert [type(cz) for cz, _ in rx.channelizers] == [Channelizer]


def test_blanker_zeroes_clicks_and_keeps_a_transmission_edge():
    n = 64 * 1024
    x = _noise(n, 4) * np.float32(0.1)  # noise at 0.01 rms per component
    clicks = [5000, 8190, 20_011]  # one across a block boundary (8192)
    for c in clicks:
        x[c:c + 6] = 0.5 + 0.5j
    burst_at = 30_000  # a carrier 30 dB over the noise from the middle of a block on
    x[burst_at:] += (0.3 * np.exp(2j * np.pi * 0.05 * np.arange(n - burst_at))).astype(np.complex64)
    blanker = ImpulseBlanker()
    y = np.concatenate([blanker.process(x), blanker.flush()])
    assert len(y) == n
    for c in clicks:
        np.testing.assert_array_equal(y[c - 1:c + 7], 0)  # the click and one guard sample each side
    changed = set(np.flatnonzero(y != x).tolist())
    click_samples = {i for c in clicks for i in range(c - 1, c + 7)}
    assert click_samples <= changed
    # the transmission's start, mid-block, is judged against the transmission: nothing of it goes
    assert not {i for i in changed if burst_at - 2048 <= i < n}
    # a noise peak may pass 12 dB over the median now and then (one in ~10^4 samples), no more
    assert len(changed - click_samples) < 1e-3 * n
    assert blanker.blanked == len(changed)


def test_blanker_pieces_equal_its_whole_output_and_leave_the_input_alone():
    rng = np.random.default_rng(5)
    x = _noise(50_000, 6) * np.float32(0.1)
    for c in rng.integers(0, len(x) - 10, 40):
        x[c:c + 4] = 0.7j
    original = x.copy()
    cuts = [0, 100, 1024, 5000, 5001, 20_480, 33_333, 50_000]
    ref, pieces = ImpulseBlanker(), ImpulseBlanker()
    whole = [ref.process(x[a:b]) for a, b in zip(cuts, cuts[1:], strict=False)] + [ref.flush()]
    got = []
    for a, b in zip(cuts, cuts[1:], strict=False):
        parts = pieces.process_parts(x[a:b])
        got.append(np.concatenate(parts) if parts else np.zeros(0, np.complex64))
    got.append(pieces.flush())
    np.testing.assert_array_equal(np.concatenate(whole), np.concatenate(got))
    np.testing.assert_array_equal(x, original)  # blanked pieces are copies, never the caller's samples
    assert ref.blanked == pieces.blanked >= 40 * 6


def _on_channel_burst(fs: float, dc: complex, burst: complex, seed: int) -> tuple[np.ndarray, slice]:
    """A short capture tuned on a channel: 2 ms of noise with the tuner's DC ``dc``, then 6 ms of a
    carrier exactly on the tuned centre (a burst whose mean is its whole amplitude ``burst``), then
    4 ms of noise; the burst's sample range."""
    n0, n1, n2 = int(2e-3 * fs), int(6e-3 * fs), int(4e-3 * fs)
    x = _noise(n0 + n1 + n2, seed) + np.complex64(dc)
    x[n0:n0 + n1] += np.complex64(burst)
    return x, slice(n0, n0 + n1)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_ungated_dc_level_is_held_through_a_burst_on_the_tuned_centre(seed):
    # no gate tells the channeliser where the burst is: the DC it removes must still be the tuner's
    # (learnt on the noise before the burst), not the burst's own mean, which a burst tuned onto
    # the channel needs (a running mean of the block means took most of it out)
    fs, dc, burst = 1.6e6, 0.03 - 0.02j, 0.12 + 0.09j
    cz = Channelizer(fs, 868.95e6, {"C": 868.95e6})
    x, on = _on_channel_burst(fs, dc, burst, seed)
    y = cz.process(np.concatenate((x, np.zeros(cz.n_fft, np.complex64))))["C"]
    d = cz.decimation
    lag = int(cz.delay) // d
    inside = y[on.start // d + lag + 50: on.stop // d - 50]  # the burst's middle, past the filter's edges
    assert len(inside) > 1000
    # the output holds the burst's mean (its amplitude 0.15; the filtered noise averages to < 0.005)
    assert abs(inside.mean() - burst) < 0.01 * 1.5, inside.mean()
    # and the tuner's DC is gone before the burst (output of the noise alone averages to ~0)
    before = y[int(cz.overlap) // d + 50: on.start // d + lag - 50]
    assert abs(before.mean()) < 0.01, before.mean()


def test_on_channel_dc_removal_is_chunk_invariant():
    fs = 1.6e6
    cz = Channelizer(fs, 868.95e6, {"C": 868.95e6, "X": 868.60e6})
    x = np.concatenate([_on_channel_burst(fs, 0.02 + 0.01j, 0.1j, s)[0] for s in range(12)])
    whole = cz.process(x)
    cz.reset()
    cuts = [0, 1, 480, 3859, 3860, 50_000, 123_457, 123_458, 150_000, len(x)]
    parts = [cz.process(x[a:b]) for a, b in zip(cuts, cuts[1:], strict=False)]
    for name in whole:
        np.testing.assert_array_equal(whole[name], np.concatenate([p[name] for p in parts]))
