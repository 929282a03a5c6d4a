"""The burst finder's and demodulator's fast paths: chunk invariance of the finder down to its noise
figures, no reference kept to the caller's buffers, the demodulator's numeric helpers against their
plain definitions, the chip loop split anywhere, and results that do not depend on what a
demodulator saw before (its template banks are a cache, not state)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from dsp.channel import Burst as TxBurst
from dsp.channel import render
from dsp.demod import (
    Demodulator,
    _ChipTracker,
    _fft_size,
    _interp_at,
    _Lock,
    _phasors,
    _smooth_same,
)
from dsp.detect import BurstFinder
from dsp.modes import MODES

TEL = bytes.fromhex("2E4493157856341233037A2A0020255923C95AAA26D1B2E7493B013EC4A6F6D3529B520EDFF0EA6DEFC99D6D69EBF3")
RATE = 400e3  # the wide channels' rate


def _baseband(seed: int, n: int = 60_000) -> np.ndarray:
    """Noise with three stronger stretches (one longer than a narrow finder's length limit)."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(n) + 1j * rng.standard_normal(n)) * 0.01
    for a, b, amp in ((9_000, 14_000, 0.05), (30_000, 30_900, 0.03), (41_000, 55_000, 0.08)):
        if b <= n:
            x[a:b] += amp * np.exp(2j * np.pi * rng.uniform(0.01, 0.2) * np.arange(b - a))
    return x.astype(np.complex64)


def _bursts(finder: BurstFinder, x: np.ndarray, cuts: list[int]) -> list[tuple]:
    finder.reset()
    out = []
    for a, b in zip(cuts, cuts[1:], strict=False):
        out += list(finder.process(x[a:b]))
    out += list(finder.flush())
    return [(b.start, b.samples, b.power, b.noise) for b in out]


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 59_999), max_size=12), st.sampled_from([4096, 100]))
def test_burst_finder_gives_identical_bursts_and_noise_figures_for_any_chunking(cuts, max_windows):
    x = _baseband(3)
    finder = BurstFinder("ch", max_windows=max_windows, floor_windows=256)
    ref = _bursts(finder, x, [0, len(x)])
    got = _bursts(finder, x, [0, *sorted(set(cuts)), len(x)])
    assert len(ref) >= 3
    assert [(s, p, f) for s, _, p, f in got] == [(s, p, f) for s, _, p, f in ref]  # exact, floats too
    for (_, a, _, _), (_, b, _, _) in zip(ref, got, strict=True):
        np.testing.assert_array_equal(a, b)


def test_burst_finder_in_tiny_chunks_and_single_samples():
    x = _baseband(4, 20_000)
    finder = BurstFinder("ch")
    ref = _bursts(finder, x, [0, len(x)])
    cuts = list(range(0, 9_500, 37)) + list(range(9_500, 9_700)) + [len(x)]
    got = _bursts(finder, x, cuts)
    assert [(s, p, f) for s, _, p, f in got] == [(s, p, f) for s, _, p, f in ref] and ref
    for (_, a, _, _), (_, b, _, _) in zip(ref, got, strict=True):
        np.testing.assert_array_equal(a, b)


def test_burst_finder_keeps_no_reference_to_the_callers_buffer():
    """A source may hand over the same buffer every time: what the finder keeps must be its own."""
    x = _baseband(5)
    finder = BurstFinder("ch")
    ref = _bursts(finder, x, [0, len(x)])
    finder.reset()
    buf = np.empty(777, dtype=np.complex64)
    got = []
    for a in range(0, len(x), len(buf)):
        part = x[a:a + len(buf)]
        buf[:len(part)] = part
        got += list(finder.process(buf[:len(part)]))
        buf[:] = 99.0  # the caller reuses its buffer
    got += list(finder.flush())
    assert len(got) == len(ref)
    for (s, a, p, f), b in zip(ref, got, strict=True):
        assert (b.start, b.power, b.noise) == (s, p, f)
        np.testing.assert_array_equal(b.samples, a)


def test_phasors_match_the_exponential():
    for n in (0, 1, 63, 64, 65, 5000):
        freqs = np.array([0.0, 1234.5, -50_000.0, 149_999.0])
        want = np.exp(-2j * np.pi * freqs[:, None] * np.arange(n) / RATE)
        got = _phasors(freqs, n, RATE)
        assert got.shape == (4, n) and got.dtype == np.complex64
        assert np.abs(got - want).max(initial=0.0) < 1e-6


def test_smoothing_matches_a_box_convolution():
    rng = np.random.default_rng(1)
    for n, k in ((100, 7), (100, 8), (1000, 1), (4096, 331), (64, 100)):
        p = rng.random(n)
        np.testing.assert_allclose(_smooth_same(p, k), np.convolve(p, np.ones(k) / k, mode="same"), rtol=1e-9,
                                   atol=1e-12)


def test_interpolation_at_many_points_matches_the_definition():
    m = np.random.default_rng(2).standard_normal(50)

    def one(t: float) -> float:
        i = int(t)
        if i < 0 or i + 1 >= len(m):
            return 0.0
        f = t - i
        return m[i] * (1 - f) + m[i + 1] * f

    t = np.concatenate((np.linspace(-3, 52, 701), [-1.0, -0.5, 0.0, 48.0, 48.999, 49.0]))
    np.testing.assert_array_equal(_interp_at(m, t), [one(v) for v in t])


def test_fft_sizes_are_the_smallest_of_their_family():
    for n in range(1, 5000):
        s = _fft_size(n)
        assert s >= n
        assert s & (s - 1) == 0 or (s % 3 == 0 and (s // 3) & (s // 3 - 1) == 0)
        smaller = [c for k in range(14) for c in (1 << k, 3 << k) if n <= c < s]
        assert not smaller


def _t1_burst(seed: int, offset_hz: float = 7e3) -> np.ndarray:
    """A T1 frame at the wide channels' rate, on its channel (as the channeliser hands it over)."""
    rng = np.random.default_rng(seed)
    x, _ = render([TxBurst(mode=MODES["T1"], telegram=TEL, start_s=0.002, amplitude=0.1, freq_offset_hz=offset_hz)],
                  sample_rate_hz=RATE, center_freq_hz=MODES["T1"].channel_hz, duration_s=0.012, rng=rng,
                  noise_rms=0.01)
    return x.astype(np.complex64)


def test_tone_output_filled_in_steps_equals_one_pass():
    demod = Demodulator(RATE, ["T1", "C1"])
    x = _t1_burst(6)
    whole = demod._tones(x[100:], 7e3, 50e3, 1, 4)
    lock = _Lock(x=x, v=np.zeros(len(x)), pos=0.0, sps=4.0, w=4, sign=1, offset=7e3, dev=50e3, a0=100)
    for end in (103, 104, 900, 901, 2500, len(x) + 50):
        lock.tones_to(demod, end)
    # each step has its own phase origin: equal to the precision of complex64 samples
    np.testing.assert_allclose(lock.v[100:], whole, rtol=0, atol=1e-6 * np.abs(whole).max())
    assert not lock.v[:100].any()


def test_chip_loop_split_anywhere_gives_the_same_chips_and_figures():
    demod = Demodulator(RATE, ["T1", "C1"])
    x = _t1_burst(7)
    v = demod._tones(x, 7e3, 50e3, 1, 4)
    amp = float(np.abs(v).mean())

    def run(steps):
        tr = _ChipTracker(v, 900.3, 4.01, 4, 0.0, amp, track_carrier=False)
        chips = np.concatenate([tr.take(k) for k in steps])
        return chips, tr.position, tr.sps_mean, tr.noise_var

    ref = run([700])
    for steps in ([1, 699], [350, 350], [3, 5, 7, 11, 13, 661]):
        got = run(steps)
        np.testing.assert_array_equal(got[0], ref[0])
        assert got[1:] == ref[1:]
    assert len(ref[0]) == 700


def test_results_do_not_depend_on_what_the_demodulator_saw_before():
    target = _t1_burst(8, offset_hz=-11e3)
    fresh = Demodulator(RATE, ["T1", "C1"]).demodulate(target)
    assert [r.telegram for r in fresh if r.crc_ok] == [TEL]
    used = Demodulator(RATE, ["T1", "C1"])
    rng = np.random.default_rng(9)
    for n in rng.integers(300, 40_000, 24):  # many burst lengths: the bank cache fills and evicts
        used.demodulate((rng.standard_normal(n) + 1j * rng.standard_normal(n)).astype(np.complex64) * 0.01)
    used.demodulate(_t1_burst(10))
    assert used.demodulate(target) == fresh


def test_peak_test_row_by_row_gives_the_same_candidates(monkeypatch):
    """The sync search's peak test gathers windows at once unless a burst would need too many; the
    row-by-row way must pick the same candidates."""
    import dsp.demod as demod_module

    x = _t1_burst(11, offset_hz=3e3)
    demod = Demodulator(RATE, ["T1", "C1"])
    search = demod._search[0]
    m = demod_module._moving_average(demod_module.discriminator(x, RATE), 4)
    sps0 = RATE / search.mode.chip_rate
    at_once = demod._candidates(m, search.tpl, sps0, search.factors, search.threshold)
    monkeypatch.setattr(demod_module, "PEAK_WINDOWS_BUDGET", 0)
    assert demod._candidates(m, search.tpl, sps0, search.factors, search.threshold) == at_once
    assert at_once[0]


def test_search_in_batches_and_without_kept_spectra_gives_the_same_candidates(monkeypatch):
    """A long burst searches its chip rates in batches and makes its template spectra on the fly:
    the candidates are those of one batch with kept spectra."""
    import dsp.demod as demod_module

    x = _t1_burst(12, offset_hz=-4e3)
    demod = Demodulator(RATE, ["T1", "C1"])
    search = demod._search[0]
    m = demod_module._moving_average(demod_module.discriminator(x, RATE), 4)
    sps0 = RATE / search.mode.chip_rate
    whole = demod._candidates(m, search.tpl, sps0, search.factors, search.threshold)
    monkeypatch.setattr(demod_module, "SEARCH_BATCH", 1)  # one chip rate per batch
    monkeypatch.setattr(demod_module, "BANK_BYTES", 0)  # nothing kept
    other = Demodulator(RATE, ["T1", "C1"])
    assert other._candidates(m, search.tpl, sps0, search.factors, search.threshold) == whole
    assert not other._banks and whole[0]


def test_a_long_burst_keeps_the_demodulator_within_bounded_memory():
    """The longest burst a wide channel hands over (4096 windows of 64 samples), carrying a strong
    tone that passes the sync search's first stage nearly everywhere."""
    import tracemalloc

    rng = np.random.default_rng(13)
    n = 4096 * 64
    x = ((rng.standard_normal(n) + 1j * rng.standard_normal(n)) * 0.01).astype(np.complex64)
    x[1000:200_000] += 0.05 * np.exp(2j * np.pi * 0.05 * np.arange(199_000)).astype(np.complex64)
    for modes in (["T1", "C1"], ["S1"]):
        demod = Demodulator(RATE, modes)
        tracemalloc.start()
        try:
            assert not [r for r in demod.demodulate(x) if r.crc_ok]
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 100e6, (modes, peak)
