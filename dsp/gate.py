"""Activity gate: look at the whole band cheaply, channelise only where something is on air.

Meters transmit a few milliseconds every few seconds: most of a capture is noise, and the
channeliser's FFTs over every sample were most of the receiver's cost. The gate takes a short FFT
(``PROBE`` points) every ``STRIDE`` samples on the absolute sample grid — an eighth of the samples —
and sums its power over the bins of each wanted channel's passband (a *band*; bin 0, where the
tuner's DC spike lies, is left out of a band of several bins). A band is active where the mean
of its probes over the last ``L`` probes exceeds its noise floor by ``THRESHOLD_SIGMAS`` standard
deviations of that mean; ``L`` is long enough for ``MIN_DOF`` bins x probes (a standard deviation
near 4 %), so a frame far under the channel's own burst threshold still opens the gate (S1 at
9 dB Eb/N0 lies ~8 standard deviations over its band's floor).

The floor is the lowest tenth of the band's means over the ``FLOOR_BLOCKS`` blocks of
``BLOCK_PROBES`` probes before the current block (~0.66 s at 1.6 Msps; a channel busy 90 % of the
time still leaves it on the noise), corrected for that quantile's place under the mean. A mean
spans at most ``MAX_AVERAGE_S``, so that the gaps between frames sent back to back reach it.
Until a floor exists (the start of a stream or of a segment) every probe counts as active: short
captures are processed whole, as without a gate.

An active probe asks for the samples from its band's *quiet* time before its mean began (the noise
the channel's burst finder learns its floor on: a wide channel's 25 ms, a narrow one's quarter
second) to ``HOLD_S`` after it; the asked spans, joined where less than ``MERGE_S`` apart, become
*regions*, which start on the caller's ``grid`` (decimation grid) from ``origin``. ``feed`` returns
the regions' samples as ``Piece``s (each telling how much of its region's start is quiet), each
region closed by a ``Close`` once no later probe can extend it. Everything is decided on absolute
indices: the output does not depend on how the input is chunked, and a run started anywhere
agrees with the whole stream's after ``memory_s`` of input.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from numpy.lib.stride_tricks import as_strided

from sdr.types import RawIQ, as_complex

from . import fastfft

PROBE = 32  # samples per probe (its FFT size)
STRIDE = 256  # samples from one probe's start to the next (an eighth of the samples is looked at)
BLOCK_PROBES = 512  # probes per floor block
FLOOR_BLOCKS = 8  # blocks the floor is taken over
FLOOR_SUBSAMPLE = 16  # every how many probes a band mean enters the floor's quantile
MIN_DOF = 512  # bins x probes in a band mean
MIN_AVERAGE_S = 2e-3  # a band mean spans at least this long ...
MAX_AVERAGE_S = 0.03  # ... and at most this long (a narrow channel's frames can follow each other this closely)
THRESHOLD_SIGMAS = 5.0
# A probe whose bins away from every band hold, in their mean without the most lifted, CLICK_FACTOR
# times their level is a click (RTL-SDR impulses: a few samples, every bin; another transmitter
# lifts a few bins only); its band powers count as noise unless a band holds CLICK_DOMINANCE times
# more over its noise than the most lifted of those bins (a strong meter with a click)
CLICK_FACTOR = 2.0
CLICK_TRIM = 3  # outside bins another transmitter may fill (150 kHz at 1.6 Msps), left out of the test
CLICK_DOMINANCE = 8.0
MIN_OUTSIDE_BINS = 6
FLOOR_QUANTILE, QUANTILE_Z = 0.1, 1.2816  # the floor's quantile, and how many standard deviations a
# normal's lies under its mean
HOLD_S = 0.010
MERGE_S = 0.040


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Piece:
    """Samples of an open region, from absolute index ``start`` (a view: read before the next feed)."""

    start: int
    samples: np.ndarray
    quiet: int = 0  # samples of noise the region begins with (0: unknown, e.g. at the start of a stream)


@dataclass(frozen=True, slots=True, kw_only=True)
class Close:
    """The open region ends at absolute index ``end`` (every sample before it was given)."""

    end: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Band:
    name: str
    bins: tuple[int, ...]  # FFT bins of a probe (0 .. PROBE - 1)
    probes: int  # probes in its mean
    sigma: float  # relative standard deviation of the mean on noise
    quiet: int  # samples of noise a region it opens begins with (before the mean's own span)


def plan_bands(sample_rate_hz: float, channels: dict[str, tuple[float, float, float]]) -> list[Band]:
    """A band per channel: ``channels`` maps a name to (offset from the capture centre, passband
    half-width, both in Hz; the noise its receiver wants before a burst, in s). Channels with the
    same bins share a band."""
    fs = float(sample_rate_hz)
    width = fs / PROBE
    centres = np.fft.fftfreq(PROBE, 1 / fs)
    out: dict[tuple[int, ...], Band] = {}
    for name, (offset, half, quiet_s) in channels.items():
        inside = np.flatnonzero(np.abs(centres - offset) <= max(half, width / 2))
        bins = tuple(int(b) for b in inside if b != 0 or len(inside) == 1)
        if not bins:  # narrower than a bin: the nearest one
            bins = (int(np.argmin(np.abs(centres - offset))),)
        quiet = int(round(quiet_s * fs))
        if bins in out:
            out[bins] = replace(out[bins], quiet=max(out[bins].quiet, quiet))
            continue
        probes = min(max(math.ceil(MIN_DOF / len(bins)), math.ceil(MIN_AVERAGE_S * fs / STRIDE)),
                     max(math.ceil(MAX_AVERAGE_S * fs / STRIDE), 1))
        out[bins] = Band(name=name, bins=bins, probes=probes, sigma=1 / math.sqrt(probes * len(bins)), quiet=quiet)
    return list(out.values())


class ActivityGate:
    """Stateful block: ``feed(samples) -> [Piece | Close, ...]`` for consecutive input samples from
    ``reset(start)`` on. ``origin``: the absolute index regions are aligned to (``grid`` samples).
    The arrays fed are kept (views, up to the preroll) and must not be changed afterwards. Samples
    may come as complex64 arrays or as ``sdr.types.RawIQ`` (the bytes as read): then only the
    probes' samples and the regions' are converted (Pieces are complex64 either way)."""

    def __init__(self, sample_rate_hz: float, channels: dict[str, tuple[float, float, float]], *, grid: int = 1,
                 hold_s: float = HOLD_S, merge_s: float = MERGE_S):
        self.fs = float(sample_rate_hz)
        self.bands = plan_bands(self.fs, channels)
        self.grid = int(grid)
        self.lookback = max(b.probes for b in self.bands)  # probes a mean reaches back
        # samples an active probe asks for before it, per band: the mean's span and the quiet part
        self._back = np.array([b.probes * STRIDE + b.quiet for b in self.bands])
        self._quiet = np.array([b.quiet for b in self.bands])
        self.preroll = int(self._back.max())
        self.hold = int(round(hold_s * self.fs))
        self.merge = int(round(merge_s * self.fs))
        # bins away from every band (and from DC): an impulse lifts them with the bands, a meter does not
        near = {(k + d) % PROBE for b in self.bands for k in b.bins for d in (-1, 0, 1)}
        self._outside = [k for k in range(1, PROBE) if k not in near]
        if len(self._outside) < MIN_OUTSIDE_BINS:
            self._outside = []
        # each band's bins as runs of neighbouring bins (lo, hi): its power is a sum of rows of the
        # bins x probes powers (no matrix product: a BLAS library would spread it over threads that
        # spin on every core)
        self._band_runs: list[list[tuple[int, int]]] = []
        for band in self.bands:
            runs: list[tuple[int, int]] = []
            for k in sorted(band.bins):
                if runs and runs[-1][1] == k:
                    runs[-1] = (runs[-1][0], k + 1)  # the run goes on
                else:
                    runs.append((k, k + 1))
            self._band_runs.append(runs)
        self._nbins = np.array([len(b.bins) for b in self.bands])
        self._probes = np.array([b.probes for b in self.bands])
        self._factor = np.array([1 + THRESHOLD_SIGMAS * b.sigma for b in self.bands])
        self._bias = np.array([1 - QUANTILE_Z * b.sigma for b in self.bands])
        self.reset(0)

    @property
    def memory_s(self) -> float:
        """Input after which a run started anywhere decides as the whole stream does."""
        return ((FLOOR_BLOCKS + 1) * BLOCK_PROBES * STRIDE + self.preroll + self.hold + self.merge
                + self.grid) / self.fs

    def reset(self, start: int, origin: int | None = None) -> None:
        """Start afresh: the next sample fed is absolute index ``start``; regions are aligned to
        ``origin`` (default ``start``) plus multiples of ``grid``."""
        self.origin = start if origin is None else origin
        self._fed = start  # absolute index after the last sample fed
        self._kept: list[tuple[int, np.ndarray]] = []  # (absolute index, view) of samples still wanted
        self._next = -(-start // STRIDE)  # the next probe to take (probe m starts at m * STRIDE)
        self._means_hist = np.zeros((0, len(self.bands)))  # band powers of the last probes
        self._block = None  # the block whose floor is in _floor
        self._floor = None
        self._samples_by_block: dict[int, np.ndarray] = {}  # block -> subsampled band means
        self._open = False
        self._given = 0  # absolute index up to which the open region's samples were given
        self._want = 0  # end of the samples the open region has asked for so far
        self._quiet_now = 0  # the open region's quiet samples (Piece.quiet)
        self._outside_seen: dict[int, list[np.ndarray]] = {}  # block -> its outside powers so far
        # block -> [each outside bin's median power, the noise per band it implies], None: unusable
        self._outside_level: dict[int, list | None] = {}
        self.probes_clicked = 0
        self.samples_passed = 0

    # -- probes ---------------------------------------------------------------------------------

    def _probe_rows(self, pieces: list[tuple[int, np.ndarray | RawIQ]], m0: int, m1: int) -> np.ndarray:
        """Samples of probes m0 .. m1 - 1 as rows (from the consecutive pieces; a RawIQ piece
        converts the probes' samples only)."""
        rows = np.empty((m1 - m0, PROBE), dtype=np.complex64)
        done = np.zeros(m1 - m0, dtype=bool)
        for p0, arr in pieces:
            lo = max(m0, -(-p0 // STRIDE))
            hi = min(m1, (p0 + len(arr) - PROBE) // STRIDE + 1)
            if hi > lo:  # probes wholly inside this piece: a strided view
                if isinstance(arr, RawIQ):
                    arr.rows(lo * STRIDE - p0, hi - lo, STRIDE, PROBE, out=rows[lo - m0:hi - m0])
                else:
                    step = arr.strides[0]
                    rows[lo - m0:hi - m0] = as_strided(arr[lo * STRIDE - p0:], shape=(hi - lo, PROBE),
                                                       strides=(STRIDE * step, step), writeable=False)
                done[lo - m0:hi - m0] = True
        for i in np.flatnonzero(~done):  # a probe across pieces' ends (a few per call)
            a = (m0 + int(i)) * STRIDE
            for p0, arr in pieces:
                lo, hi = max(a, p0), min(a + PROBE, p0 + len(arr))
                if hi > lo:
                    rows[i, lo - a:hi - a] = as_complex(arr[lo - p0:hi - p0])
        return rows

    def _band_power(self, spec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each band's power per probe (probes x bands), and the outside bins' powers (outside bins
        x probes), from the probes' spectra (bins x probes)."""
        v = spec.view(np.float32)
        pt = np.square(v[:, 0::2])
        pt += np.square(v[:, 1::2])
        power = np.empty((len(self.bands), pt.shape[1]))
        for j, runs in enumerate(self._band_runs):
            np.add.reduce(pt[runs[0][0]:runs[0][1]], axis=0, dtype=np.float64, out=power[j])
            for lo, hi in runs[1:]:  # a band of two runs (one each side of DC)
                power[j] += np.add.reduce(pt[lo:hi], axis=0, dtype=np.float64)
        return power.T, pt[self._outside]

    def _active(self, power: np.ndarray, outside: np.ndarray, m0: int) -> tuple[np.ndarray, np.ndarray]:
        """For probes m0 .. m0 + len(power) - 1 (band powers ``power``, one row per probe, and
        outside bins' powers ``outside``, one column per probe): how many samples before it each
        asks for (-1: inactive) and how many of those are quiet (0 before the floor is known: every
        probe is active then)."""
        n = len(power)
        m = m0 + np.arange(n)
        blocks = m // BLOCK_PROBES
        spans = [(blk, slice(max(blk * BLOCK_PROBES - m0, 0), min((blk + 1) * BLOCK_PROBES - m0, n)))
                 for blk in range(int(blocks[0]), int(blocks[-1]) + 1)]
        if self._outside:
            power = self._declick(power, outside, spans)
        hist = np.concatenate((self._means_hist, power))
        k = len(self._means_hist)
        cum = np.concatenate((np.zeros((1, hist.shape[1])), np.cumsum(hist, axis=0)))
        means = np.empty((n, len(self.bands)))
        full = None  # which means are whole (None: all, once the history is long enough)
        for j, span in enumerate(self._probes):
            if k >= span:  # a whole average for every probe (the common case): slices
                means[:, j] = (cum[k + 1:, j] - cum[k + 1 - span:k + n + 1 - span, j]) / span
                continue
            idx = np.arange(k + 1, k + n + 1)
            lo = np.maximum(idx - span, 0)
            means[:, j] = (cum[idx, j] - cum[lo, j]) / (idx - lo)
            if full is None:
                full = np.ones((n, len(self.bands)), dtype=bool)
            full[:, j] = idx - lo == span  # a whole average (none is judged before)
        self._means_hist = hist[-self.lookback:]
        back = np.full(n, self.preroll)
        quiet = np.zeros(n, dtype=np.int64)
        for blk, sel in spans:
            floor = self._floor_of(int(blk))
            if floor is not None:
                over = means[sel] > floor * self._factor
                if full is not None:
                    over |= ~full[sel]
                if over.any():
                    back[sel] = np.where(over, self._back, -1).max(axis=1)
                    quiet[sel] = np.where(over, self._quiet, 0).max(axis=1)
                else:  # nothing on air (the common case)
                    back[sel] = -1
            first = sel.start + (-(m0 + sel.start)) % FLOOR_SUBSAMPLE
            pick = slice(first, sel.stop, FLOOR_SUBSAMPLE)
            new = means[pick] if full is None else means[pick][full[pick].all(axis=1)]
            got = self._samples_by_block.get(int(blk))
            self._samples_by_block[int(blk)] = new if got is None else np.concatenate((got, new))
        return back, quiet

    def _declick(self, power: np.ndarray, outside: np.ndarray, spans: list[tuple[int, slice]]) -> np.ndarray:
        """The band powers with clicks taken out: a probe whose outside bins hold, in their mean
        without the CLICK_TRIM most lifted, CLICK_FACTOR times their level (each bin's median over
        the block before) is a click — it lifts every bin, where another transmitter lifts a few —
        and counts as noise in every band
        that does not hold CLICK_DOMINANCE times more over its noise than the most lifted outside
        bin. Learns each block's levels."""
        keep = outside.shape[0] - CLICK_TRIM
        # each probe's outside levels: its block's before (inf where unknown: no probe is a click
        # there), learnt block by block in order
        level_of = np.empty(outside.shape, dtype=np.float32)
        levels: list[tuple[slice, list | None]] = []
        for blk, sel in spans:
            seen = self._outside_seen.setdefault(blk, [])
            seen.append(outside[:, sel])
            if sum(v.shape[1] for v in seen) == BLOCK_PROBES:  # a whole block: its levels
                v = np.concatenate(seen, axis=1)
                level = np.partition(v, BLOCK_PROBES // 2, axis=1)[:, BLOCK_PROBES // 2]
                # [level, the noise per band it implies (made when a click needs it)]; None: unusable
                self._outside_level[blk] = [level, None] if (level > 0).all() else None
            for old in [b for b in self._outside_seen if b < blk]:
                del self._outside_seen[old]
            for old in [b for b in self._outside_level if b < blk - 1]:
                del self._outside_level[old]
            known = self._outside_level.get(blk - 1)
            levels.append((sel, known))
            level_of[:, sel] = np.inf if known is None else known[0][:, None]
        ratios = outside / level_of  # outside bins x probes
        # the outside bins' mean lift without the CLICK_TRIM most lifted (another transmitter's),
        # on the probes it may exceed CLICK_FACTOR on: the mean without the most lifted bin bounds
        # it from above (most probes of noise lie under that bound)
        bound = (np.add.reduce(ratios, axis=0, dtype=np.float64) - ratios.max(axis=0)) / keep
        maybe = np.flatnonzero(bound > CLICK_FACTOR * (1 - 1e-4))
        if not len(maybe):
            return power
        rows = np.ascontiguousarray(ratios[:, maybe].T)
        lift = np.partition(rows, keep - 1, axis=1)[:, :keep].mean(axis=1)
        hits = maybe[lift > CLICK_FACTOR]  # ascending
        if not len(hits):
            return power
        power = power.copy()
        bounds = np.searchsorted(hits, [sel.start for sel, _ in levels] + [levels[-1][0].stop])
        for (_, known), a, b in zip(levels, bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
            hit = hits[a:b]  # the hits in this span (spans are consecutive)
            if not len(hit):
                continue
            if known[1] is None:
                # white noise: per bin the same mean (the median of an exponential is ln 2 of it)
                known[1] = float(known[0].mean()) / np.log(2) * self._nbins
            noise = known[1]
            rows = power[hit]
            # a click's spectrum is not flat: a band keeps its power only above every outside bin's
            calm = rows < CLICK_DOMINANCE * ratios[:, hit].max(axis=0)[:, None] * noise
            np.copyto(rows, noise, where=calm)
            power[hit] = rows
            self.probes_clicked += len(hit)
        return power

    def _floor_of(self, block: int) -> np.ndarray | None:
        """The bands' floors for probes of ``block``: the FLOOR_QUANTILE of the means of the blocks
        before it (None unless all of them were seen whole)."""
        if self._block == block:
            return self._floor
        need = range(block - FLOOR_BLOCKS, block)
        for old in [b for b in self._samples_by_block if b < block - FLOOR_BLOCKS]:
            del self._samples_by_block[old]
        whole = BLOCK_PROBES // FLOOR_SUBSAMPLE
        if all(b in self._samples_by_block and len(self._samples_by_block[b]) == whole for b in need):
            v = np.concatenate([self._samples_by_block[b] for b in need])
            k = int(FLOOR_QUANTILE * len(v))
            q = np.partition(v, k, axis=0)[k]
            floor = q / self._bias
        else:
            floor = None
        self._block, self._floor = block, floor
        return floor

    # -- regions --------------------------------------------------------------------------------

    def feed(self, samples: np.ndarray | list[np.ndarray]) -> list[Piece | Close]:
        parts = samples if isinstance(samples, list) else [samples]
        pieces = list(self._kept)
        at = self._fed
        for p in parts:
            if len(p):
                pieces.append((at, p))
                at += len(p)
        self._fed = at
        m0, m1 = self._next, max(self._next, (at - PROBE) // STRIDE + 1)
        out: list[Piece | Close] = []
        if m1 > m0:
            rows = self._probe_rows(pieces, m0, m1)
            # the spectra written bins x probes (a band's power is then a sum of a few rows,
            # vectorised over the probes)
            spec = np.empty((PROBE, m1 - m0), dtype=np.complex64)
            fastfft.fft(rows, axis=1, out=spec.T)
            back, quiet = self._active(*self._band_power(spec), m0)
            self._next = m1
            on = np.flatnonzero(back >= 0)
            self._regions(m0 + on, back[on], quiet[on], pieces, out)
        # nothing later can reach before this: the first sample a future probe may ask for
        reach = self._next * STRIDE - self.preroll - self.grid
        if self._open:
            self._give(pieces, min(self._want, self._fed), out)
            if reach > self._want + self.merge and self._fed >= self._want:
                out.append(Close(end=self._want))
                self._open = False
        keep_from = min(self._given if self._open else reach, self._next * STRIDE)
        self._keep(pieces, keep_from)
        return out

    def flush(self) -> list[Piece | Close]:
        """End of the input: the open region's last samples and its close."""
        out: list[Piece | Close] = []
        if self._open:
            self._give(self._kept, self._fed, out)
            out.append(Close(end=self._fed))
            self._open = False
        self._kept = []
        return out

    def _align(self, index: int) -> int:
        return self.origin + (index - self.origin) // self.grid * self.grid

    def _regions(self, hits: np.ndarray, back: np.ndarray, quiet: np.ndarray, pieces: list[tuple[int, np.ndarray]],
                 out: list) -> None:
        if len(hits) == 0:
            return
        lo = hits * STRIDE - back
        hi = (hits + 1) * STRIDE + self.hold
        # runs of hits whose asked spans lie less than MERGE apart
        breaks = np.flatnonzero(lo[1:] > hi[:-1] + self.merge)
        firsts = np.concatenate(([0], breaks + 1))
        lasts = np.concatenate((breaks, [len(hits) - 1]))
        earliest = pieces[0][0] if pieces else self._fed
        for a, b, q in zip(lo[firsts], hi[lasts], quiet[firsts], strict=True):
            start = max(self._align(int(a)), self.origin)
            if self._open and start <= self._want + self.merge:
                self._want = max(self._want, int(b))
                continue
            if self._open:
                self._give(pieces, self._want, out)
                out.append(Close(end=self._want))
            if start < earliest:  # samples no longer held (the start of a stream): from the first one held
                start = self.origin + -(-(earliest - self.origin) // self.grid) * self.grid
                q = 0
            self._open, self._given, self._want = True, start, int(b)
            self._quiet_now = int(q)

    def _give(self, pieces: list[tuple[int, np.ndarray]], end: int, out: list) -> None:
        """The open region's samples from ``_given`` to ``end`` as Pieces."""
        for p0, arr in pieces:
            a, b = max(self._given, p0), min(end, p0 + len(arr))
            if b > a:
                out.append(Piece(start=a, samples=as_complex(arr[a - p0:b - p0]), quiet=self._quiet_now))
                self.samples_passed += b - a
                self._given = b

    def _keep(self, pieces: list[tuple[int, np.ndarray]], keep_from: int) -> None:
        """Keep the samples from ``keep_from`` on, as views of the arrays fed (not copies: a
        narrow channel's quarter second of preroll would copy every sample; the arrays fed must
        not change afterwards, as the receiver's chunks do not)."""
        self._kept = [(p0 + max(keep_from - p0, 0), arr[max(keep_from - p0, 0):]) for p0, arr in pieces
                      if keep_from - p0 < len(arr)]
