"""Transmit flowgraph: telegrams -> PHY frames -> (G)FSK IQ at a chosen rate and centre.

Two ends: :func:`live_burst` is one frame for a live TX sink (the modulator alone, deterministic);
:func:`write_plan` writes a recording of a :class:`TxPlan` block by block (memory bounded whatever
``--repeat``), through the channel model when the plan asks for impairments (noise, clicks,
seeded carrier phases). SigMF annotations come from each frame's placement.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from dsp.channel import DEFAULT_BLOCK, Burst, Capture, Impulses, PlacedBurst, bit_rate, noise_power
from dsp.modes import MODES
from dsp.modulate import modulate_frame
from sdr.file import IQWriter


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

    @property
    def center(self) -> float:
        return self.center_freq_hz if self.center_freq_hz is not None else MODES[self.mode].channel_hz


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Written:
    """What :func:`write_plan` wrote."""

    path: str
    n_samples: int
    frames: int
    center_freq_hz: float
    first_frame: np.ndarray  # the first frame's samples as written (before the sample format), for OBW


def plan_capture(plan: TxPlan) -> Capture:
    """The plan as a capture of the channel model (carrier phases from ``plan.seed``)."""
    mode = MODES[plan.mode]
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
        noise = float(np.sqrt(noise_power(plan.amplitude ** 2, plan.ebn0_db, bit_rate(mode), plan.sample_rate_hz)))
    return Capture(bursts, sample_rate_hz=plan.sample_rate_hz, center_freq_hz=plan.center, duration_s=duration,
                   rng=np.random.default_rng(plan.seed), noise_rms=noise,
                   impulses=Impulses(amplitude=plan.amplitude * 2) if plan.impulses else None)


def _airtime(mode, plan: TxPlan) -> float:
    from dsp.phy import frame_chips

    longest = max(len(frame_chips(mode, t, plan.frame_format, preamble_pairs=plan.preamble_pairs))
                  for t in plan.telegrams)
    return longest / (mode.chip_rate * (1 + plan.chip_rate_error))


def sigmf_annotations(placed: list[PlacedBurst], n_samples: int) -> list[dict]:
    """One SigMF annotation per burst, from its placement (clipped at the capture's end)."""
    notes = []
    for p in placed:
        b, where = p.burst, p.placement
        notes.append({"core:sample_start": where.start, "core:sample_count": min(where.end, n_samples) - where.start,
                      "core:freq_lower_edge": b.mode.channel_hz - 150e3,
                      "core:freq_upper_edge": b.mode.channel_hz + 150e3,
                      "core:label": f"{b.mode.name} {b.frame_format}", "wmbus:mode": b.mode.name,
                      "wmbus:frame_format": b.frame_format, "wmbus:telegram": b.telegram.hex()})
    return notes


def write_plan(plan: TxPlan, path: str, *, block_samples: int = DEFAULT_BLOCK) -> Written:
    """Render ``plan`` into ``path`` block by block (type by extension, as :func:`write_recording`)."""
    cap = plan_capture(plan)
    placed = cap.in_capture
    a, b = (placed[0].placement.start, min(placed[0].placement.end, cap.n_samples)) if placed else (0, 0)
    first = np.zeros(b - a, np.complex64)
    with IQWriter(path, sample_rate_hz=plan.sample_rate_hz, center_freq_hz=plan.center,
                  annotations=sigmf_annotations(placed, cap.n_samples), description="wmbus-sdr tx") as w:
        pos = 0
        for block in cap.blocks(block_samples):
            lo, hi = max(a, pos), min(b, pos + len(block))
            if lo < hi:
                first[lo - a:hi - a] = block[lo - pos:hi - pos]
            w.write(block)
            pos += len(block)
    return Written(path=w.path, n_samples=cap.n_samples, frames=len(placed), center_freq_hz=plan.center,
                   first_frame=first)


def write_recording(path: str, x: np.ndarray | Iterable[np.ndarray], notes: list[dict], *, sample_rate_hz: float,
                    center_freq_hz: float, fmt: str | None = None) -> str:
    """Write samples (one array, or blocks of any size) by extension: .cu8 .cs8 .cs16 .cf32, or
    .sigmf-meta/.sigmf-data/.sigmf (SigMF, cs16 unless fmt) with ``notes`` as its annotations."""
    blocks = [x] if isinstance(x, np.ndarray) else x
    with IQWriter(path, sample_rate_hz=sample_rate_hz, center_freq_hz=center_freq_hz, fmt=fmt, annotations=notes,
                  description="wmbus-sdr tx") as w:
        for block in blocks:
            w.write(block)
    return w.path


LIVE_PAD_S = 0.0005  # silence before and after a live frame (the SDR's ramp)


def live_burst(plan: TxPlan, telegram: bytes) -> np.ndarray:
    """One frame of ``plan`` for a live TX sink: the modulator alone (no channel model; carrier
    phase 0), the plan's transmitter settings, ``LIVE_PAD_S`` of silence on both sides."""
    if plan.ebn0_db is not None or plan.impulses:
        raise ValueError("noise and clicks are simulated impairments: for files, not a live transmission")
    mode = MODES[plan.mode]
    frame = modulate_frame(telegram, mode, frame_format=plan.frame_format, sample_rate_hz=plan.sample_rate_hz,
                           center_freq_hz=plan.center, freq_offset_hz=plan.freq_offset_hz,
                           amplitude=plan.amplitude, chip_rate_hz=mode.chip_rate * (1 + plan.chip_rate_error),
                           deviation_hz=mode.deviation_hz * (1 + plan.deviation_error),
                           drift_hz_per_s=plan.drift_hz_per_s, preamble_pairs=plan.preamble_pairs)
    pad = np.zeros(int(round(LIVE_PAD_S * plan.sample_rate_hz)), np.complex64)
    return np.concatenate((pad, frame.samples, pad))
