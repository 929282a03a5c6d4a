"""The analyser under a wandering chip clock (issue #12 item 7): carrier, deviation and drift fitted
jointly with every transition's time (dsp.measure._wander_fit), against generated frames with known
truth and against the Bayesian Cramer-Rao bound of the carrier (benchmarks/analyzer_accuracy.py)."""

from __future__ import annotations

import numpy as np
import pytest

import benchmarks.analyzer_accuracy as aa
from dsp.modes import MODES


def _frames(mode: str, fmt: str, lval: int, ebn0_db: float, jitter: float, count: int, seed: int):
    """(measurements, true carrier, true chip-rate error, telegram) of ``count`` short frames from the
    benchmark's generator (2.4 Msps cu8, carrier within +-40 kHz, the chip clock a random walk of
    ``jitter`` chip rms)."""
    rng = np.random.default_rng(seed)
    tol = {"S1": 0.02, "T1": 0.12}.get(mode, 1e-4)
    out = []
    for _ in range(count):
        x, offset, err, tel = aa.frame(mode, fmt, tol, "nominal", rng, lval, ebn0_db, jitter=jitter)
        f = aa._analyse(x, aa.RATE, aa.CENTER, mode)
        assert f is not None, "frame not decoded"
        out.append((f["measurements"], offset, err, tel))
    return out


@pytest.mark.parametrize(("mode", "fmt", "lval"), [("T1", "A", 18), ("C1", "B", 18), ("S1", "A", 24)])
def test_carrier_under_a_wandering_clock_at_its_bound(mode, fmt, lval):
    """0.15 chip rms wander, 20 dB, 12 short frames: the carrier's rms error within 1.6 times the
    Bayesian Cramer-Rao bound of the same frames (no estimator does better on average; the fixed
    grid missed by 2.6 times it on C1-B), every error within 4 of its carrier_std_hz and at most a
    quarter beyond 2 (a normal: 5 %), the deviation within 1.5 % (the fixed grid: up to 8 %), and
    the drift, which the truth does not have, within 4 of its drift_std_hz."""
    frames = _frames(mode, fmt, lval, 20.0, 0.15, 12, seed=7000 + lval)
    err = np.array([m["carrier_offset_hz"] - off for m, off, _, _ in frames])
    bound = np.median([aa.carrier_bound_hz(mode, tel, fmt, 20.0, 0.15) for _, _, _, tel in frames[:4]])
    assert np.sqrt(np.mean(err ** 2)) < 1.6 * bound, (err, bound)
    z = np.abs(err) / np.array([m["carrier_std_hz"] for m, _, _, _ in frames])
    assert z.max() < 4 and np.mean(z > 2) <= 0.25, z
    for m, _, _, _ in frames:
        assert abs(m["deviation_hz"] / MODES[mode].deviation_hz - 1) < 0.015
        assert abs(m["drift_hz"]) < 4 * m["drift_std_hz"]


def test_steady_clock_keeps_its_precision():
    """A steady chip clock is told from a wandering one: at 20 dB T1's carrier within 5 Hz and its
    standard error below 5 Hz (the wander's freedom would cost tens of Hz), where 0.15 chip rms of
    wander gives standard errors of tens of Hz on the same frame lengths."""
    steady = _frames("T1", "A", 18, 20.0, 0.0, 6, seed=11)
    for m, off, err, _ in steady:
        assert abs(m["carrier_offset_hz"] - off) < 5
        assert m["carrier_std_hz"] < 5
        assert abs(m["chip_rate_hz"] / (MODES["T1"].chip_rate * (1 + err)) - 1) < 100e-6
    wandering = _frames("T1", "A", 18, 20.0, 0.15, 6, seed=12)
    assert min(m["carrier_std_hz"] for m, _, _, _ in wandering) > 20


def test_slow_mode_at_low_snr_does_not_slip():
    """S1 at 14 dB (0 dB per sample in its channel): the carrier within 30 Hz and the chip rate within
    100 ppm on each of 8 frames (the settled chips' first carrier was up to 4 kHz off, and the phase
    fit then slipped by 2 pi: on 100 frames a row, up to 250-660 Hz and 130-480 ppm)."""
    for m, off, err, _ in _frames("S1", "A", 24, 14.0, 0.0, 8, seed=1424):
        assert abs(m["carrier_offset_hz"] - off) < 30
        assert abs(m["chip_rate_hz"] / (MODES["S1"].chip_rate * (1 + err)) - 1) < 100e-6


def test_carrier_bound_grows_with_the_wander():
    """The benchmark's bound itself: a steady clock's bound is the coherent fit's (a few Hz at 20 dB on
    a short T1 frame), 0.15 chip rms of wander raises it to tens of Hz, and a longer frame lowers it."""
    rng = np.random.default_rng(3)
    short = bytes([18, 0x44]) + rng.integers(0, 256, 17, dtype=np.uint8).tobytes()
    long = bytes([60, 0x44]) + rng.integers(0, 256, 59, dtype=np.uint8).tobytes()
    steady = aa.carrier_bound_hz("T1", short, "A", 20.0, 0.0)
    wander = aa.carrier_bound_hz("T1", short, "A", 20.0, 0.15)
    assert steady < 5 and wander > 10 * steady
    assert aa.carrier_bound_hz("T1", long, "A", 20.0, 0.15) < wander


def test_slow_mode_keeps_its_crossing_grid_under_strong_wander():
    """S1 L50 at 0.15 chip rms wander, 20 dB: the benchmark's frame (targets() seed, the 11th) whose
    chip clock strays up to 0.3 chip from any straight grid over its 962 chips. The crossing grid,
    searched about the straight line, lost lock there (deviation 36 % low) and the phase fits that
    started from it read the carrier 287 Hz off, 4.3 of its standard errors; searched about where
    the last crossings lay it holds: the carrier within 100 Hz and 2.5 standard errors, the
    deviation within 1 %."""
    rng = np.random.default_rng(50215)
    for _ in range(11):
        x, offset, err, tel = aa.frame("S1", "A", 0.02, "nominal", rng, 50, 20.0, jitter=0.15)
    f = aa._analyse(x, aa.RATE, aa.CENTER, "S1")
    assert f is not None, "frame not decoded"
    m = f["measurements"]
    assert abs(m["carrier_offset_hz"] - offset) < min(100, 2.5 * m["carrier_std_hz"])
    assert abs(m["deviation_hz"] / MODES["S1"].deviation_hz - 1) < 0.01
    assert abs(m["drift_hz"]) < 3 * m["drift_std_hz"]


def test_standard_errors_hold_the_transition_shape_at_high_snr():
    """C1 at 40 dB under 0.15 chip rms wander, 12 frames: with every transition free, a transition
    shape not quite the radio's (our channel filter's rounding is no Gaussian) moves carrier and
    drift by more than the noise says, and the standard errors hold that share: every carrier and
    drift error within 3 of its standard error, at most 2 of the 12 beyond 2 (without the share:
    up to 3.5, half of them beyond 2), and the share not blown up (the carrier's errors 0.3 of their
    standard errors rms or more; 0.55 here)."""
    frames = _frames("C1", "A", 24, 40.0, 0.15, 12, seed=4024)
    zc = np.array([abs(m["carrier_offset_hz"] - off) / m["carrier_std_hz"] for m, off, _, _ in frames])
    z = np.array([abs(m["drift_hz"]) / m["drift_std_hz"] for m, _, _, _ in frames])
    assert zc.max() < 3 and z.max() < 3, (zc, z)
    assert np.sum(zc > 2) <= 2 and np.sum(z > 2) <= 2, (zc, z)
    assert np.sqrt(np.mean(zc ** 2)) > 0.3, zc


def test_slight_wander_taken_for_a_steady_clock_keeps_honest_standard_errors():
    """C1-B L18 at 20 dB under 0.012 chip rms wander, 16 frames: a wander that slight scores close to
    a steady clock, and where the steady clock wins, its standard error (1-2 Hz) must still hold
    what the slight wander moves (the steady fit's alone: errors of 10-14 Hz at 1.4-2.3 Hz, up to
    8.7 of them): every carrier and drift error within 4 of its standard error, at most 3 of 16
    beyond 2."""
    frames = _frames("C1", "B", 18, 20.0, 0.012, 16, seed=18201)
    zc = np.array([abs(m["carrier_offset_hz"] - off) / m["carrier_std_hz"] for m, off, _, _ in frames])
    z = np.array([abs(m["drift_hz"]) / m["drift_std_hz"] for m, _, _, _ in frames])
    assert zc.max() < 4 and z.max() < 4, (zc, z)
    assert np.sum(zc > 2) <= 3 and np.sum(z > 2) <= 3, (zc, z)
