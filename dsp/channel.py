"""Seeded channel model for tests, benchmarks and the bundled recording: the modulator
(:func:`dsp.modulate.modulate_frame`) plus impairments — carrier phase drawn per burst, white noise,
DC offset, IQ imbalance, impulsive clicks, an 8-bit ADC.

A capture is rendered block by block (:class:`Capture`), so its length is not bounded by memory;
every sample comes out the same whatever the block size, and the same as :func:`render` gives for
the whole capture at once (the noise is drawn as one ``standard_normal(n)`` for I then one for Q,
streamed from two copies of the generator).

Eb/N0 is per information bit over the whole sample bandwidth (issue #3 definitions):
Eb = signal power / bit rate, N0 = complex noise power / sample rate.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from . import phy
from .modes import ModeSpec
from .modulate import FramePlacement, ModulatedFrame, channel_offset_hz, frame_placement, modulate_frame

DEFAULT_BLOCK = 1 << 18


def bit_rate(mode: ModeSpec) -> float:
    return mode.bit_rate


def noise_power(signal_power: float, ebn0_db: float, bitrate: float, sample_rate_hz: float) -> float:
    return signal_power * sample_rate_hz / (bitrate * 10 ** (ebn0_db / 10))


def amplitude_for(mode: ModeSpec, ebn0_db: float, *, noise_rms: float, sample_rate_hz: float) -> float:
    """The burst amplitude that gives ``ebn0_db`` against noise of ``noise_rms`` (noise_power inverted)."""
    return float(np.sqrt(noise_rms ** 2 * bit_rate(mode) * 10 ** (ebn0_db / 10) / sample_rate_hz))


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
    # chips between the preamble and the sync word: some Engelmann meters send one extra "0" there
    # (wmbusmeters #953, phy.md §10). Any mode.
    extra_chips_before_sync: tuple[int, ...] = ()
    gaussian_bt: float | None = None  # Gaussian shaping of a plain 2-FSK mode's chips (None: the mode's)
    chip_jitter_rms: float = 0.0  # chip boundaries moved at random (in chips rms), seeded by jitter_seed
    jitter_seed: int = 0
    chip_edge_jitter_rms: float = 0.0  # every chip boundary moved on its own (white, in chips rms), same seed

    @property
    def chip_rate_hz(self) -> float:
        return self.mode.chip_rate * (1 + self.chip_rate_error)

    @property
    def deviation_hz(self) -> float:
        return self.mode.deviation_hz * (1 + self.deviation_error)


@dataclass(frozen=True, slots=True, kw_only=True)
class PlacedBurst:
    """A burst of a capture and where it lies (absolute sample indices, possibly past the end)."""

    burst: Burst
    placement: FramePlacement
    phase_rad: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Impulses:
    """Periodic impulsive interference like the clicks seen in real RTL-SDR captures."""

    period_s: float = 125e-6
    amplitude: float = 0.6
    length: tuple[int, int] = (2, 10)  # samples, inclusive


def burst_frame(b: Burst, *, sample_rate_hz: float, center_freq_hz: float, start: int, phase_rad: float,
                amplitude: float = 1.0, dtype=np.complex128) -> ModulatedFrame:
    """The modulator's output for ``b`` (its amplitude not applied unless given) starting at
    capture sample ``start`` (the mixer's phase reference)."""
    return modulate_frame(b.telegram, b.mode, frame_format=b.frame_format, sample_rate_hz=sample_rate_hz,
                          center_freq_hz=center_freq_hz, freq_offset_hz=b.freq_offset_hz, phase_rad=phase_rad,
                          start_sample=start, amplitude=amplitude, chip_rate_hz=b.chip_rate_hz,
                          deviation_hz=b.deviation_hz, drift_hz_per_s=b.drift_hz_per_s,
                          preamble_pairs=b.preamble_pairs, lead_in_chips=b.lead_in_chips,
                          preamble_half_chip=b.preamble_half_chip,
                          extra_chips_before_sync=b.extra_chips_before_sync, gaussian_bt=b.gaussian_bt,
                          chip_jitter_rms=b.chip_jitter_rms, jitter_seed=b.jitter_seed,
                          chip_edge_jitter_rms=b.chip_edge_jitter_rms, dtype=dtype)


def burst_samples(b: Burst, *, sample_rate_hz: float, center_freq_hz: float, start: int,
                  rng: np.random.Generator) -> np.ndarray:
    """One burst at unit amplitude (complex128), at its channel offset from ``center_freq_hz``, with
    a carrier phase drawn from ``rng``; ``start`` is its first sample on the capture clock."""
    return burst_frame(b, sample_rate_hz=sample_rate_hz, center_freq_hz=center_freq_hz, start=start,
                       phase_rad=float(rng.uniform(0, 2 * np.pi))).samples


def _advance_normals(rng: np.random.Generator, n: int, block: int = 1 << 20) -> None:
    for i in range(0, n, block):
        rng.standard_normal(min(block, n - i))


class NoiseStream:
    """``rng.standard_normal(n) + 1j * rng.standard_normal(n)`` handed out in pieces of any size,
    the same values as the one call; ``rng`` is left where that call would leave it once all ``n``
    are taken (or at once with ``settle_now``, which costs one more pass)."""

    def __init__(self, rng: np.random.Generator, n: int, *, settle_now: bool = False):
        self._rng = rng
        self._n = n
        self._taken = 0
        self._re = copy.deepcopy(rng)
        self._im = copy.deepcopy(rng)
        _advance_normals(self._im, n)
        if settle_now:
            after = copy.deepcopy(self._im)
            _advance_normals(after, n)
            rng.bit_generator.state = after.bit_generator.state
            self._rng = None

    def take(self, k: int) -> np.ndarray:
        if self._taken + k > self._n:
            raise ValueError(f"noise stream of {self._n} samples: {self._taken} taken, {k} more asked")
        out = self._re.standard_normal(k) + 1j * self._im.standard_normal(k)
        self._taken += k
        if self._taken == self._n and self._rng is not None:
            self._rng.bit_generator.state = self._im.bit_generator.state
            self._rng = None
        return out


class _ImpulseStream:
    """Clicks drawn in sequence along the capture (positions, lengths, phases from ``rng``), added
    to the blocks that hold them; a click across a block edge is drawn once and split."""

    def __init__(self, imp: Impulses, *, rng: np.random.Generator, sample_rate_hz: float, n_samples: int):
        self.imp = imp
        self.rng = rng
        self.n = n_samples
        self.period = imp.period_s * sample_rate_hz
        self.pos: float | None = None
        self.pending: tuple[int, np.ndarray] | None = None

    def add(self, out: np.ndarray, a: int) -> None:
        """Add the clicks falling in samples [a, a + len(out)) to ``out`` (complex64)."""
        b = a + len(out)
        while True:
            if self.pending is not None:
                i, vals = self.pending
                lo, hi = max(i, a), min(i + len(vals), b)
                if lo < hi:
                    out[lo - a:hi - a] += vals[lo - i:hi - i]
                if i + len(vals) > b:
                    return
                self.pending = None
            if self.pos is None:
                self.pos = self.rng.uniform(0, self.period)
            if self.pos >= self.n or self.pos >= b:
                return
            i = int(self.pos)
            k = int(self.rng.integers(self.imp.length[0], self.imp.length[1] + 1))
            phases = self.rng.uniform(0, 1, min(k, self.n - i))
            self.pending = (i, (self.imp.amplitude * np.exp(2j * np.pi * phases)).astype(np.complex64))
            self.pos += self.period * self.rng.uniform(0.9, 1.1)


class Capture:
    """Bursts at their channel offsets, noise and front-end impairments, rendered block by block.

    ``placed`` lists every burst with its placement and carrier phase (drawn from ``rng`` in burst
    order, then the noise, then the clicks: the order :func:`render` and :func:`add_impulses` always
    used, so seeded captures keep their bytes). :meth:`blocks` can be iterated once."""

    def __init__(self, bursts: list[Burst], *, sample_rate_hz: float, center_freq_hz: float, duration_s: float,
                 rng: np.random.Generator, noise_rms: float = 0.0, dc_offset: complex = 0j,
                 iq_gain_db: float = 0.0, iq_phase_deg: float = 0.0, impulses: Impulses | None = None):
        self.sample_rate_hz = sample_rate_hz
        self.center_freq_hz = center_freq_hz
        self.n_samples = int(duration_s * sample_rate_hz)
        self.noise_rms = noise_rms
        self.dc_offset = dc_offset
        self.iq_gain_db = iq_gain_db
        self.iq_phase_deg = iq_phase_deg
        placed = []
        for b in bursts:
            start = int(round(b.start_s * sample_rate_hz))
            if start < 0:
                raise ValueError(f"burst at {b.start_s} s: starts before the capture")
            # refused here, before a block is rendered, as the modulator would refuse it later
            channel_offset_hz(b.mode, sample_rate_hz=sample_rate_hz, center_freq_hz=center_freq_hz,
                              freq_offset_hz=b.freq_offset_hz)
            where = frame_placement(b.telegram, b.mode, frame_format=b.frame_format, sample_rate_hz=sample_rate_hz,
                                    start_sample=start, chip_rate_hz=b.chip_rate_hz, preamble_pairs=b.preamble_pairs,
                                    lead_in_chips=b.lead_in_chips, preamble_half_chip=b.preamble_half_chip,
                                    extra_chips_before_sync=b.extra_chips_before_sync)
            placed.append(PlacedBurst(burst=b, placement=where, phase_rad=float(rng.uniform(0, 2 * np.pi))))
        self.placed = placed
        self._noise = (NoiseStream(rng, self.n_samples, settle_now=impulses is not None)
                       if noise_rms else None)
        self._impulses = (_ImpulseStream(impulses, rng=rng, sample_rate_hz=sample_rate_hz, n_samples=self.n_samples)
                          if impulses is not None else None)
        self._used = False

    @property
    def in_capture(self) -> list[PlacedBurst]:
        """The bursts that start inside the capture (the ones a recording annotates)."""
        return [p for p in self.placed if p.placement.start < self.n_samples]

    def blocks(self, block_samples: int = DEFAULT_BLOCK) -> Iterator[np.ndarray]:
        """complex64 blocks of ``block_samples`` (the last one shorter) covering the capture."""
        if block_samples <= 0:
            raise ValueError(f"block of {block_samples} samples: give a positive number")
        if self._used:
            raise RuntimeError("a Capture renders once: its noise and clicks come from the generator")
        self._used = True
        order = sorted(range(len(self.placed)), key=lambda k: self.placed[k].placement.start)
        nxt = 0
        active: dict[int, np.ndarray] = {}  # burst index (in the caller's order) -> its samples
        for a in range(0, self.n_samples, block_samples):
            b = min(a + block_samples, self.n_samples)
            while nxt < len(order) and self.placed[order[nxt]].placement.start < b:
                k = order[nxt]
                p = self.placed[k]
                active[k] = burst_frame(p.burst, sample_rate_hz=self.sample_rate_hz,
                                        center_freq_hz=self.center_freq_hz, start=p.placement.start,
                                        phase_rad=p.phase_rad, amplitude=p.burst.amplitude).samples
                nxt += 1
            yield self._block(a, b, active)
            for k in [k for k in active if self.placed[k].placement.end <= b]:
                del active[k]

    def _block(self, a: int, b: int, active: dict[int, np.ndarray]) -> np.ndarray:
        out = np.zeros(b - a, dtype=np.complex128)
        for k in sorted(active):  # the caller's order: sums of overlapping bursts round the same
            start = self.placed[k].placement.start
            sig = active[k]
            lo, hi = max(start, a), min(start + len(sig), b)
            if lo < hi:
                out[lo - a:hi - a] += sig[lo - start:hi - start]
        if self._noise is not None:
            out += self.noise_rms / np.sqrt(2) * self._noise.take(b - a)
        out += self.dc_offset
        if self.iq_gain_db or self.iq_phase_deg:
            g = 10 ** (self.iq_gain_db / 20)
            phi = np.deg2rad(self.iq_phase_deg)
            i, q = out.real, out.imag
            out = i + 1j * g * (q * np.cos(phi) + i * np.sin(phi))
        out = out.astype(np.complex64)
        if self._impulses is not None:
            self._impulses.add(out, a)
        return out


def render(bursts: list[Burst], *, sample_rate_hz: float, center_freq_hz: float, duration_s: float,
           rng: np.random.Generator, noise_rms: float = 0.0, dc_offset: complex = 0j,
           iq_gain_db: float = 0.0, iq_phase_deg: float = 0.0,
           impulses: Impulses | None = None) -> tuple[np.ndarray, list[PlacedBurst]]:
    """The whole of a short :class:`Capture` at once: (complex64 samples, the bursts that start
    inside it with their placements)."""
    cap = Capture(bursts, sample_rate_hz=sample_rate_hz, center_freq_hz=center_freq_hz, duration_s=duration_s,
                  rng=rng, noise_rms=noise_rms, dc_offset=dc_offset, iq_gain_db=iq_gain_db,
                  iq_phase_deg=iq_phase_deg, impulses=impulses)
    x = np.concatenate([*cap.blocks(), np.zeros(0, np.complex64)])
    return x, cap.in_capture


def adc_8bit(samples: np.ndarray) -> np.ndarray:
    """An RTL-SDR's 8-bit ADC: each of I and Q clipped at full scale and rounded to one of the 256
    levels (k - 127.5) / 127.5 (the cu8 grid). complex64 in, complex64 out."""
    f = np.clip(np.asarray(samples, dtype=np.complex64).view(np.float32), -1.0, 1.0)
    codes = np.clip(np.rint(f * 127.5 + 127.5), 0, 255)
    return ((codes - np.float32(127.5)) / np.float32(127.5)).astype(np.float32).view(np.complex64)


def single_burst(mode: ModeSpec, telegram: bytes, *, frame_format: str = "A", sample_rate_hz: float = 1.6e6,
                 center_freq_hz: float = 868.625e6, ebn0_db: float | None = None, rng: np.random.Generator,
                 freq_offset_hz: float = 0.0, chip_rate_error: float = 0.0, amplitude: float = 0.25,
                 pad_s: float = 2e-3, adc: bool = True, lead_in_chips: int = 0,
                 preamble_half_chip: bool = False, dc_offset: complex = 0j,
                 extra_chips_before_sync: tuple[int, ...] = (), deviation_error: float = 0.0,
                 gaussian_bt: float | None = None) -> np.ndarray:
    """One frame with noise at a given Eb/N0 — the unit of the sensitivity benchmark; through an
    8-bit ADC unless ``adc`` is False."""
    chips = (len(phy.frame_chips(mode, telegram, frame_format)) + lead_in_chips + 0.5 * preamble_half_chip
             + len(extra_chips_before_sync))
    dur = chips / (mode.chip_rate * (1 + chip_rate_error)) + 2 * pad_s
    burst = Burst(mode=mode, telegram=telegram, frame_format=frame_format, start_s=pad_s, amplitude=amplitude,
                  freq_offset_hz=freq_offset_hz, chip_rate_error=chip_rate_error, lead_in_chips=lead_in_chips,
                  preamble_half_chip=preamble_half_chip, extra_chips_before_sync=tuple(extra_chips_before_sync),
                  deviation_error=deviation_error, gaussian_bt=gaussian_bt)
    rms = 0.0 if ebn0_db is None else np.sqrt(noise_power(amplitude ** 2, ebn0_db, bit_rate(mode), sample_rate_hz))
    x, _ = render([burst], sample_rate_hz=sample_rate_hz, center_freq_hz=center_freq_hz, duration_s=dur, rng=rng,
                  noise_rms=rms, dc_offset=dc_offset)
    return adc_8bit(x) if adc else x


def add_impulses(samples: np.ndarray, *, rng: np.random.Generator, sample_rate_hz: float, period_s: float = 125e-6,
                 amplitude: float = 0.6, length: tuple[int, int] = (2, 10)) -> np.ndarray:
    """Periodic impulsive interference like the clicks seen in real RTL-SDR captures (a copy of
    ``samples`` with the clicks added)."""
    out = np.array(samples, dtype=np.complex64, copy=True)
    _ImpulseStream(Impulses(period_s=period_s, amplitude=amplitude, length=length), rng=rng,
                   sample_rate_hz=sample_rate_hz, n_samples=len(out)).add(out, 0)
    return out
