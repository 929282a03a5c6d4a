"""Seeded channel model for tests, benchmarks and the bundled recording.

Eb/N0 is per information bit over the whole sample bandwidth (issue #3 definitions):
Eb = signal power / bit rate, N0 = complex noise power / sample rate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sdr.formats import from_complex, to_complex

from . import phy
from .modes import ModeSpec
from .modulate import fsk


def bit_rate(mode: ModeSpec) -> float:
    return mode.bit_rate


def noise_power(signal_power: float, ebn0_db: float, bitrate: float, sample_rate_hz: float) -> float:
    return signal_power * sample_rate_hz / (bitrate * 10 ** (ebn0_db / 10))


@dataclass(frozen=True, slots=True, kw_only=True)
class Burst:
    """One transmission to place in a capture."""

    mode: ModeSpec
    telegram: bytes  # canonical
    frame_format: str = "A"
    start_s: float = 0.0
    amplitude: float = 0.3
    freq_offset_hz: float = 0.0  # carrier error on top of the mode's channel
    chip_rate_error: float = 0.0  # relative
    deviation_error: float = 0.0  # relative
    drift_hz_per_s: float = 0.0
    preamble_pairs: int | None = None
    # what real transmitters do before the sync word (seen in the shared RTL-SDR capture): a steady
    # lower tone before the preamble (PLL settling), and a preamble off the data's chip grid (here
    # its last chip half a chip longer). Plain 2-FSK modes only.
    lead_in_chips: int = 0
    preamble_half_chip: bool = False


def burst_samples(b: Burst, *, sample_rate_hz: float, center_freq_hz: float, start: int,
                  rng: np.random.Generator) -> np.ndarray:
    """One burst at unit amplitude, at its channel offset from ``center_freq_hz``; ``start`` is its
    first sample on the capture clock (the mixer's phase reference)."""
    chips = phy.frame_chips(b.mode, b.telegram, b.frame_format, preamble_pairs=b.preamble_pairs)
    offset = b.mode.channel_hz - center_freq_hz + b.freq_offset_hz
    if abs(offset) > sample_rate_hz / 2 * 0.9:
        raise ValueError(f"{b.mode.name} at {b.mode.channel_hz / 1e6:.3f} MHz is outside the capture band")
    chip_rate = b.mode.chip_rate * (1 + b.chip_rate_error)
    if b.lead_in_chips or b.preamble_half_chip:
        if b.mode.gaussian_bt is not None:
            raise ValueError(f"a shaped preamble needs plain 2-FSK; {b.mode.name} is GFSK")
        # in half chips: plain FSK at twice the rate is the same signal
        n_pre = 2 * (b.mode.preamble_pairs if b.preamble_pairs is None else b.preamble_pairs)
        chips = np.repeat(chips, 2)
        if b.preamble_half_chip:
            chips = np.insert(chips, 2 * n_pre, chips[2 * n_pre - 1])
        chips = np.concatenate((np.zeros(2 * b.lead_in_chips, dtype=chips.dtype), chips))
        chip_rate *= 2
    sig = fsk(chips, sample_rate_hz=sample_rate_hz, chip_rate=chip_rate,
              deviation_hz=b.mode.deviation_hz * (1 + b.deviation_error), gaussian_bt=b.mode.gaussian_bt,
              freq_offset_hz=0.0, drift_hz_per_s=b.drift_hz_per_s, start_phase=float(rng.uniform(0, 2 * np.pi)))
    t = (start + np.arange(len(sig))) / sample_rate_hz
    return sig * np.exp(2j * np.pi * offset * t)


def render(bursts: list[Burst], *, sample_rate_hz: float, center_freq_hz: float, duration_s: float,
           rng: np.random.Generator, noise_rms: float = 0.0, dc_offset: complex = 0j,
           iq_gain_db: float = 0.0, iq_phase_deg: float = 0.0) -> tuple[np.ndarray, list[dict]]:
    """Sum bursts at their channel offsets, add noise and front-end impairments.

    Returns (complex64 samples, annotations with the sample range of each burst)."""
    n = int(duration_s * sample_rate_hz)
    out = np.zeros(n, dtype=np.complex128)
    notes = []
    for b in bursts:
        start = int(round(b.start_s * sample_rate_hz))
        sig = burst_samples(b, sample_rate_hz=sample_rate_hz, center_freq_hz=center_freq_hz, start=start, rng=rng)
        end = min(n, start + len(sig))
        if start >= n:
            continue
        out[start:end] += b.amplitude * sig[: end - start]
        notes.append({"core:sample_start": start, "core:sample_count": end - start,
                      "core:freq_lower_edge": b.mode.channel_hz - 150e3,
                      "core:freq_upper_edge": b.mode.channel_hz + 150e3,
                      "core:label": f"{b.mode.name} {b.frame_format}", "wmbus:mode": b.mode.name,
                      "wmbus:frame_format": b.frame_format, "wmbus:telegram": b.telegram.hex()})
    if noise_rms:
        out += noise_rms / np.sqrt(2) * (rng.standard_normal(n) + 1j * rng.standard_normal(n))
    out += dc_offset
    if iq_gain_db or iq_phase_deg:
        g = 10 ** (iq_gain_db / 20)
        phi = np.deg2rad(iq_phase_deg)
        i, q = out.real, out.imag
        out = i + 1j * g * (q * np.cos(phi) + i * np.sin(phi))
    return out.astype(np.complex64), notes


def quantize(samples: np.ndarray, fmt: str = "cu8") -> np.ndarray:
    """Round-trip through a sample format (8-bit quantisation and clipping for cu8)."""
    return to_complex(from_complex(samples, fmt), fmt)


def single_burst(mode: ModeSpec, telegram: bytes, *, frame_format: str = "A", sample_rate_hz: float = 1.6e6,
                 center_freq_hz: float = 868.625e6, ebn0_db: float | None = None, rng: np.random.Generator,
                 freq_offset_hz: float = 0.0, chip_rate_error: float = 0.0, amplitude: float = 0.25,
                 pad_s: float = 2e-3, fmt: str | None = "cu8", lead_in_chips: int = 0,
                 preamble_half_chip: bool = False) -> np.ndarray:
    """One frame with noise at a given Eb/N0 — the unit of the sensitivity benchmark."""
    chips = len(phy.frame_chips(mode, telegram, frame_format)) + lead_in_chips + 0.5 * preamble_half_chip
    dur = chips / (mode.chip_rate * (1 + chip_rate_error)) + 2 * pad_s
    burst = Burst(mode=mode, telegram=telegram, frame_format=frame_format, start_s=pad_s, amplitude=amplitude,
                  freq_offset_hz=freq_offset_hz, chip_rate_error=chip_rate_error, lead_in_chips=lead_in_chips,
                  preamble_half_chip=preamble_half_chip)
    rms = 0.0 if ebn0_db is None else np.sqrt(noise_power(amplitude ** 2, ebn0_db, bit_rate(mode), sample_rate_hz))
    x, _ = render([burst], sample_rate_hz=sample_rate_hz, center_freq_hz=center_freq_hz, duration_s=dur, rng=rng,
                  noise_rms=rms)
    return quantize(x, fmt) if fmt else x


def add_impulses(samples: np.ndarray, *, rng: np.random.Generator, sample_rate_hz: float, period_s: float = 125e-6,
                 amplitude: float = 0.6, length: tuple[int, int] = (2, 10)) -> np.ndarray:
    """Periodic impulsive interference like the clicks seen in real RTL-SDR captures."""
    out = samples.copy()
    period = period_s * sample_rate_hz
    pos = rng.uniform(0, period)
    while pos < len(out):
        i = int(pos)
        n = int(rng.integers(length[0], length[1] + 1))
        out[i:i + n] += (amplitude * np.exp(2j * np.pi * rng.uniform(0, 1, min(n, len(out) - i)))).astype(np.complex64)
        pos += period * rng.uniform(0.9, 1.1)
    return out
