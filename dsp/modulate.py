"""(G)FSK modulation: a frame's bytes -> complex baseband at a given sample rate, and where its parts lie.

:func:`modulate_frame` is the one modulator: the live transmitter, the live gateway and meter, and
the simulated channel (:mod:`dsp.channel`, which adds seeded impairments on top) all call it. It is
deterministic: the same bytes, mode, rate, offset and phase give the same samples.

The phase is the exact integral of the frequency waveform at every sample instant (no chip-edge
jitter at fractional samples per chip), so generated signals have exactly the chip rate and
deviation asked for — the conformance analyser's accuracy depends on it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import phy
from .modes import ModeSpec


def gaussian_taps(bt: float, samples_per_chip: float, span_chips: int = 4) -> np.ndarray:
    """Gaussian pulse-shaping filter for GFSK, unit DC gain."""
    t = np.arange(-span_chips * samples_per_chip / 2, span_chips * samples_per_chip / 2 + 1) / samples_per_chip
    sigma = np.sqrt(np.log(2)) / (2 * np.pi * bt)
    h = np.exp(-(t ** 2) / (2 * sigma ** 2))
    return h / h.sum()


def fsk(chips: np.ndarray, *, sample_rate_hz: float, chip_rate: float, deviation_hz: float,
        gaussian_bt: float | None = None, freq_offset_hz: float = 0.0, drift_hz_per_s: float = 0.0,
        start_phase: float = 0.0, lead_in_s: float = 0.0, tail_s: float = 0.0,
        chip_edges: np.ndarray | None = None) -> np.ndarray:
    """Modulate chips (1 -> +deviation). Returns complex64 with unit amplitude. ``chip_edges``
    (len(chips) + 1 increasing times in chips, first 0 and last len(chips)) moves the chip
    boundaries off the even grid: a transmitter's chip-timing jitter."""
    a = 2.0 * np.asarray(chips, dtype=np.float64) - 1.0
    duration = len(a) / chip_rate
    n = int(np.ceil((duration + lead_in_s + tail_s) * sample_rate_hz))
    t = np.arange(n) / sample_rate_hz - lead_in_s
    edges = np.arange(len(a) + 1, dtype=np.float64) if chip_edges is None else np.asarray(chip_edges, np.float64)
    if len(edges) != len(a) + 1 or np.any(np.diff(edges) <= 0):
        raise ValueError(f"chip_edges: {len(a) + 1} increasing times expected, got {len(edges)}")
    if gaussian_bt is None:
        x = np.clip(t * chip_rate, 0.0, len(a))
        idx = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, len(a) - 1)
        frac = x - edges[idx]
        cum = np.concatenate(([0.0], np.cumsum(a * np.diff(edges))))
        chip_phase = cum[idx] + a[idx] * frac  # integral of the chip sequence, in chips
        chip_phase[t < 0] = 0.0
        chip_phase[x >= edges[-1]] = cum[-1]
        phase = 2 * np.pi * deviation_hz / chip_rate * chip_phase
    else:
        sps = sample_rate_hz / chip_rate
        x = t * chip_rate
        inside = (x >= edges[0]) & (x < edges[-1])
        freq = np.zeros(n)
        freq[inside] = a[np.clip(np.searchsorted(edges, x[inside], side="right") - 1, 0, len(a) - 1)]
        freq = np.convolve(freq, gaussian_taps(gaussian_bt, sps), mode="same")
        phase = 2 * np.pi * deviation_hz * np.cumsum(freq) / sample_rate_hz
    phase = phase + 2 * np.pi * (freq_offset_hz * t + 0.5 * drift_hz_per_s * t ** 2) + start_phase
    return np.exp(1j * phase).astype(np.complex64)


@dataclass(frozen=True, slots=True, kw_only=True)
class FramePlacement:
    """Where one transmission lies on the sample clock: absolute indices of the first sample at or
    after each boundary (``end`` is one past the last sample). ``start`` < ``preamble_start`` only
    with a lead-in tone."""

    start: int
    preamble_start: int
    sync_start: int
    data_start: int
    postamble_start: int
    end: int

    @property
    def sample_count(self) -> int:
        return self.end - self.start


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class ModulatedFrame:
    samples: np.ndarray  # complex, amplitude applied, ``placement.sample_count`` long
    placement: FramePlacement


@dataclass(frozen=True, slots=True)
class _Layout:
    chips: np.ndarray  # what fsk() modulates (in half chips when the preamble is shaped)
    fsk_rate: float  # chips per second of ``chips``
    bounds_chips: tuple[float, float, float, float, float]  # preamble, sync, data, postamble, end (whole chips)
    n_samples: int


def _layout(telegram: bytes, mode: ModeSpec, frame_format: str, sample_rate_hz: float, chip_rate_hz: float,
            preamble_pairs: int | None, lead_in_chips: int, preamble_half_chip: bool,
            extra_chips_before_sync: tuple[int, ...] = ()) -> _Layout:
    chips = phy.frame_chips(mode, telegram, frame_format, preamble_pairs=preamble_pairs)
    n_pre = 2 * (mode.preamble_pairs if preamble_pairs is None else preamble_pairs)
    if any(c not in (0, 1) for c in extra_chips_before_sync):
        raise ValueError(f"extra chips before the sync word are 0/1, not {extra_chips_before_sync!r}")
    if extra_chips_before_sync:
        # counted with the preamble: the sync word and everything after it move later
        chips = np.insert(chips, n_pre, np.asarray(extra_chips_before_sync, dtype=chips.dtype))
        n_pre += len(extra_chips_before_sync)
    n_sync = len(mode.syncs[frame_format])
    n_data = len(phy.onair_bytes(telegram, frame_format)) * phy.chips_per_byte(mode)
    n_post = len(chips) - n_pre - n_sync - n_data
    rate = chip_rate_hz
    if lead_in_chips or preamble_half_chip:
        if mode.gaussian_bt is not None:
            raise ValueError(f"a shaped preamble needs plain 2-FSK; {mode.name} is GFSK")
        # in half chips: plain FSK at twice the rate is the same signal
        chips = np.repeat(chips, 2)
        if preamble_half_chip:
            chips = np.insert(chips, n_pre * 2, chips[n_pre * 2 - 1])
        chips = np.concatenate((np.zeros(2 * lead_in_chips, dtype=chips.dtype), chips))
        rate *= 2
    pre = float(lead_in_chips)
    sync = pre + n_pre + 0.5 * preamble_half_chip
    data = sync + n_sync
    post = data + n_data
    n = int(np.ceil(len(chips) / rate * sample_rate_hz))
    return _Layout(chips, rate, (pre, sync, data, post, post + n_post), n)


def _sample_at(chip_time: float, chip_rate_hz: float, sample_rate_hz: float) -> int:
    """First sample at or after ``chip_time`` chips from the waveform's start."""
    return math.ceil(chip_time / chip_rate_hz * sample_rate_hz - 1e-9)


def frame_placement(telegram: bytes, mode: ModeSpec, *, frame_format: str = "A", sample_rate_hz: float,
                    start_sample: int = 0, chip_rate_hz: float | None = None, preamble_pairs: int | None = None,
                    lead_in_chips: int = 0, preamble_half_chip: bool = False,
                    extra_chips_before_sync: tuple[int, ...] = ()) -> FramePlacement:
    """The placement :func:`modulate_frame` would give, without modulating."""
    rate = mode.chip_rate if chip_rate_hz is None else chip_rate_hz
    lay = _layout(telegram, mode, frame_format, sample_rate_hz, rate, preamble_pairs, lead_in_chips,
                  preamble_half_chip, tuple(extra_chips_before_sync))
    return _placement(lay, rate, sample_rate_hz, start_sample)


def _placement(lay: _Layout, chip_rate_hz: float, sample_rate_hz: float, start: int) -> FramePlacement:
    pre, sync, data, post, _ = (start + _sample_at(c, chip_rate_hz, sample_rate_hz) for c in lay.bounds_chips)
    return FramePlacement(start=start, preamble_start=pre, sync_start=sync, data_start=data, postamble_start=post,
                          end=start + lay.n_samples)


def channel_offset_hz(mode: ModeSpec, *, sample_rate_hz: float, center_freq_hz: float,
                      freq_offset_hz: float = 0.0) -> float:
    """Where ``mode``'s channel (plus a carrier error ``freq_offset_hz``) lies in a stream centred at
    ``center_freq_hz``; ValueError when that is outside the inner 90 % of the band."""
    offset = mode.channel_hz - center_freq_hz + freq_offset_hz
    if abs(offset) > sample_rate_hz / 2 * 0.9:
        raise ValueError(f"{mode.name} at {mode.channel_hz / 1e6:.3f} MHz is outside the capture band")
    return offset


def modulate_frame(telegram: bytes, mode: ModeSpec, *, frame_format: str = "A", sample_rate_hz: float,
                   center_freq_hz: float, freq_offset_hz: float = 0.0, phase_rad: float = 0.0,
                   start_sample: int = 0, amplitude: float = 1.0, chip_rate_hz: float | None = None,
                   deviation_hz: float | None = None, drift_hz_per_s: float = 0.0,
                   preamble_pairs: int | None = None, lead_in_chips: int = 0, preamble_half_chip: bool = False,
                   extra_chips_before_sync: tuple[int, ...] = (), gaussian_bt: float | None = None,
                   chip_jitter_rms: float = 0.0, jitter_seed: int = 0, chip_edge_jitter_rms: float = 0.0,
                   dtype=np.complex64) -> ModulatedFrame:
    """One transmission of a canonical ``telegram``: preamble, sync word, coded frame (CRCs of
    ``frame_format``), postamble, (G)FSK at the mode's chip rate and deviation (or the ones given),
    at the mode's channel seen from a stream centred at ``center_freq_hz``, plus ``freq_offset_hz``
    (carrier error). ``start_sample`` is the first sample's index on the stream's clock: the phase
    reference of that offset, and the origin of the placement. ``phase_rad`` is the carrier phase at
    the first chip. ``lead_in_chips`` (a steady lower tone before the preamble) and
    ``preamble_half_chip`` (the preamble's last chip half a chip long) shape the preamble as some
    real transmitters do; plain 2-FSK only. ``extra_chips_before_sync`` are sent between the
    preamble and the sync word (some Engelmann meters send one extra "0" chip there, wmbusmeters
    #953; phy.md §10); the placement counts them with the preamble. ``gaussian_bt`` shapes the chips
    of a plain 2-FSK mode too (a C1 meter built on GFSK silicon); None keeps the mode's.
    ``chip_jitter_rms`` lets the chip clock wander: the boundaries leave the straight grid by a
    random walk (seeded by ``jitter_seed``; its straight-line trend removed, so the mean chip rate
    stays the one asked for) scaled to that rms in chips, as a meter's RC or crystal oscillator
    drifts within a frame. ``chip_edge_jitter_rms`` is the other reading of "chip-timing jitter":
    every edge (change of tone) displaced on its own by a normal of that rms in chips (white,
    nothing accumulates; drawn after the wander from the same ``jitter_seed`` stream, clipped to
    +-0.45 chip so that no chip shrinks below a tenth), as a transmitter's edges scatter about a
    steady clock; the two add. ``dtype``
    complex128 keeps full precision for a simulator that sums frames and noise before rounding once."""
    offset = channel_offset_hz(mode, sample_rate_hz=sample_rate_hz, center_freq_hz=center_freq_hz,
                               freq_offset_hz=freq_offset_hz)
    rate = mode.chip_rate if chip_rate_hz is None else chip_rate_hz
    bt = mode.gaussian_bt if gaussian_bt is None else gaussian_bt
    if bt is not None and (lead_in_chips or preamble_half_chip):
        raise ValueError(f"a shaped preamble needs plain 2-FSK; {mode.name} is GFSK here")
    lay = _layout(telegram, mode, frame_format, sample_rate_hz, rate, preamble_pairs, lead_in_chips,
                  preamble_half_chip, tuple(extra_chips_before_sync))
    edges = None
    if chip_jitter_rms or chip_edge_jitter_rms:
        if chip_jitter_rms < 0 or chip_edge_jitter_rms < 0:
            raise ValueError(f"chip jitter rms must be >= 0, not {chip_jitter_rms} / {chip_edge_jitter_rms}")
        per = lay.fsk_rate / rate  # fsk chips per chip (2 with a shaped preamble)
        n_e = len(lay.chips) + 1
        k = np.arange(n_e, dtype=np.float64)
        gen = np.random.default_rng(jitter_seed)
        edges = k.copy()
        if chip_jitter_rms:
            walk = np.cumsum(gen.normal(0.0, 1.0, n_e))
            walk -= np.polyval(np.polyfit(k, walk, 1), k)
            walk *= chip_jitter_rms * per / max(float(np.std(walk)), 1e-12)
            walk -= np.linspace(walk[0], walk[-1], n_e)  # first and last boundary stay put
            edges += walk
        if chip_edge_jitter_rms:
            white = np.clip(gen.normal(0.0, chip_edge_jitter_rms, n_e), -0.45, 0.45) * per
            # only a change of tone is an edge (a boundary between equal chips does not show in the
            # waveform); the first and last boundary stay put
            white[np.concatenate(([True], lay.chips[1:] == lay.chips[:-1], [True]))] = 0.0
            edges += white
        if np.any(np.diff(edges) <= 0.1):
            raise ValueError(f"chip jitter {chip_jitter_rms} / {chip_edge_jitter_rms} chip rms: the chip clock "
                             "would run backwards")
    sig = fsk(lay.chips, sample_rate_hz=sample_rate_hz, chip_rate=lay.fsk_rate,
              deviation_hz=mode.deviation_hz if deviation_hz is None else deviation_hz,
              gaussian_bt=bt, drift_hz_per_s=drift_hz_per_s, start_phase=phase_rad, chip_edges=edges)
    t = (start_sample + np.arange(len(sig))) / sample_rate_hz
    x = amplitude * (sig * np.exp(2j * np.pi * offset * t))
    return ModulatedFrame(samples=x.astype(dtype, copy=False), placement=_placement(lay, rate, sample_rate_hz,
                                                                                      start_sample))
