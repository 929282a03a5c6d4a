"""(G)FSK modulation: chips -> complex baseband at a given sample rate.

The phase is the exact integral of the frequency waveform at every sample instant (no chip-edge
jitter at fractional samples per chip), so generated signals have exactly the chip rate and
deviation asked for — the conformance analyser's accuracy depends on it.
"""

from __future__ import annotations

import numpy as np


def gaussian_taps(bt: float, samples_per_chip: float, span_chips: int = 4) -> np.ndarray:
    """Gaussian pulse-shaping filter for GFSK, unit DC gain."""
    t = np.arange(-span_chips * samples_per_chip / 2, span_chips * samples_per_chip / 2 + 1) / samples_per_chip
    sigma = np.sqrt(np.log(2)) / (2 * np.pi * bt)
    h = np.exp(-(t ** 2) / (2 * sigma ** 2))
    return h / h.sum()


def fsk(chips: np.ndarray, *, sample_rate_hz: float, chip_rate: float, deviation_hz: float,
        gaussian_bt: float | None = None, freq_offset_hz: float = 0.0, drift_hz_per_s: float = 0.0,
        start_phase: float = 0.0, lead_in_s: float = 0.0, tail_s: float = 0.0) -> np.ndarray:
    """Modulate chips (1 -> +deviation). Returns complex64 with unit amplitude."""
    a = 2.0 * np.asarray(chips, dtype=np.float64) - 1.0
    duration = len(a) / chip_rate
    n = int(np.ceil((duration + lead_in_s + tail_s) * sample_rate_hz))
    t = np.arange(n) / sample_rate_hz - lead_in_s
    if gaussian_bt is None:
        x = np.clip(t * chip_rate, 0.0, len(a))
        idx = np.minimum(x.astype(np.int64), len(a) - 1)
        frac = x - idx
        cum = np.concatenate(([0.0], np.cumsum(a)))
        chip_phase = cum[idx] + a[idx] * frac  # integral of the chip sequence, in chips
        chip_phase[t < 0] = 0.0
        chip_phase[x >= len(a)] = cum[-1]
        phase = 2 * np.pi * deviation_hz / chip_rate * chip_phase
    else:
        sps = sample_rate_hz / chip_rate
        x = t * chip_rate
        inside = (x >= 0) & (x < len(a))
        freq = np.zeros(n)
        freq[inside] = a[x[inside].astype(np.int64)]
        freq = np.convolve(freq, gaussian_taps(gaussian_bt, sps), mode="same")
        phase = 2 * np.pi * deviation_hz * np.cumsum(freq) / sample_rate_hz
    phase = phase + 2 * np.pi * (freq_offset_hz * t + 0.5 * drift_hz_per_s * t ** 2) + start_phase
    return np.exp(1j * phase).astype(np.complex64)
