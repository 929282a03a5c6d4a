"""Transmit flowgraph: telegrams -> PHY frames -> (G)FSK IQ at a chosen rate and centre, with the
channel model's impairments as options, written as a recording (and annotated when SigMF)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dsp.channel import Burst, add_impulses, bit_rate, render
from dsp.modes import MODES
from sdr.file import write_sigmf
from sdr.formats import from_complex


@dataclass(frozen=True, slots=True, kw_only=True)
class TxPlan:
    mode: str
    telegrams: list[bytes]  # canonical
    frame_format: str = "A"
    sample_rate_hz: float = 1.2e6
    center_freq_hz: float | None = None  # default: the mode's channel
    repeat: int = 1
    interval_s: float = 0.1
    lead_s: float = 0.01
    amplitude: float = 0.5
    freq_offset_hz: float = 0.0
    chip_rate_error: float = 0.0
    deviation_error: float = 0.0
    drift_hz_per_s: float = 0.0
    preamble_pairs: int | None = None
    ebn0_db: float | None = None
    impulses: bool = False
    seed: int = 1


def render_plan(plan: TxPlan) -> tuple[np.ndarray, list[dict], float]:
    """(complex64 samples, SigMF annotations, centre frequency)."""
    mode = MODES[plan.mode]
    center = plan.center_freq_hz if plan.center_freq_hz is not None else mode.channel_hz
    rng = np.random.default_rng(plan.seed)
    bursts, t = [], plan.lead_s
    for _ in range(plan.repeat):
        for tel in plan.telegrams:
            bursts.append(Burst(mode=mode, telegram=tel, frame_format=plan.frame_format, start_s=t,
                                amplitude=plan.amplitude, freq_offset_hz=plan.freq_offset_hz,
                                chip_rate_error=plan.chip_rate_error, deviation_error=plan.deviation_error,
                                drift_hz_per_s=plan.drift_hz_per_s, preamble_pairs=plan.preamble_pairs))
            t += plan.interval_s
    duration = t - plan.interval_s + _airtime(mode, plan) + plan.lead_s
    noise = 0.0
    if plan.ebn0_db is not None:
        noise = float(np.sqrt(plan.amplitude ** 2 * plan.sample_rate_hz / (bit_rate(mode) * 10 ** (plan.ebn0_db / 10))))
    x, notes = render(bursts, sample_rate_hz=plan.sample_rate_hz, center_freq_hz=center, duration_s=duration, rng=rng,
                      noise_rms=noise)
    if plan.impulses:
        x = add_impulses(x, rng=rng, sample_rate_hz=plan.sample_rate_hz, amplitude=plan.amplitude * 2)
    return x, notes, center


def _airtime(mode, plan: TxPlan) -> float:
    from dsp.phy import frame_chips

    longest = max(len(frame_chips(mode, t, plan.frame_format, preamble_pairs=plan.preamble_pairs))
                  for t in plan.telegrams)
    return longest / (mode.chip_rate * (1 + plan.chip_rate_error))


def write_recording(path: str, x: np.ndarray, notes: list[dict], *, sample_rate_hz: float, center_freq_hz: float,
                    fmt: str | None = None) -> str:
    """Write by extension: .cu8 .cs8 .cs16 .cf32, or .sigmf-meta/.sigmf-data/.sigmf (SigMF, cs16 unless fmt)."""
    lower = path.lower()
    for suffix in (".sigmf-meta", ".sigmf-data", ".sigmf"):
        if lower.endswith(suffix):
            base = path[: -len(suffix)]
            data, meta = write_sigmf(base, from_complex(x, fmt or "cs16"), fmt=fmt or "cs16",
                                     sample_rate_hz=sample_rate_hz, center_freq_hz=center_freq_hz, annotations=notes,
                                     description="wmbus-sdr tx")
            return str(meta)
    ext = lower.rsplit(".", 1)[-1]
    if ext not in ("cu8", "cs8", "cs16", "cf32"):
        raise ValueError(f"{path}: unknown output type; use .cu8, .cs8, .cs16, .cf32 or .sigmf-meta")
    with open(path, "wb") as f:
        f.write(from_complex(x, fmt or ext))
    return path
