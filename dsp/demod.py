"""Frame demodulation inside a detected burst: (G)FSK discriminator, sync search over the mode's
chip-rate tolerance, chip timing and carrier tracking, soft decoding, block CRCs.

Per burst (a few thousand chips at most) the chip loop runs in Python; everything before it is
vectorised. Feed-forward first: carrier offset, deviation, chip rate and timing come from the
preamble + sync correlation; the loop then only follows small drifts.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from mbus import frame as mframe
from mbus.crc import crc16
from mbus.errors import DecodeError

from . import fastfft as sfft  # scipy.fft's own pocketfft, without its import cost
from .coding import MANCHESTER
from .modes import ModeSpec, search_template_chips, shared_search
from .modes import mode as mode_named
from .phy import onair_size
from .running import centred_max  # = scipy.ndimage.maximum_filter1d, without its import cost

_DEV_TRIALS = (0.7, 0.8, 0.9, 1.0, 1.1, 1.25, 1.4)  # tone spacings tried on the sync template (x nominal)
RX_CLOCK_TOLERANCE = 2e-4  # the receiver's own sample-clock error (an RTL-SDR's crystal), relative


@dataclass(frozen=True, slots=True, kw_only=True)
class FrameResult:
    mode: str
    frame_format: str | None
    telegram: bytes  # canonical when crc_ok, else the raw on-air bytes
    crc_ok: bool
    reason: str  # "ok" or why it was rejected
    position: float  # sample index (channel rate) of the first chip after the sync word
    sync_position: float  # sample index where the preamble part of the template starts
    sync_start: float  # sample index (channel rate) where the sync word starts
    chip_rate_hz: float
    freq_offset_hz: float  # carrier offset from the channel centre (Hz)
    deviation_hz: float
    snr_db: float
    violations: int
    n_chips: int
    end_position: float
    repaired: bool = False  # a block CRC only matched after flipping unreliable decisions


@dataclass(frozen=True, slots=True)
class _Template:
    mode: ModeSpec
    chips: np.ndarray  # +-1
    sync_len: int


def _template(mode: ModeSpec) -> _Template:
    """The end of the preamble (mode.rx_preamble_chips) then the searched sync chips, as +-1."""
    return _Template(mode, 2.0 * np.array(search_template_chips(mode), dtype=np.float64) - 1.0,
                     len(mode.search_sync))


def _slipped(tpl: _Template) -> _Template:
    """The template of a frame with one extra chip between preamble and sync word (some Engelmann
    meters, wmbusmeters #953): the preamble part one chip later, i.e. inverted against the sync word."""
    chips = tpl.chips.copy()
    chips[: len(chips) - tpl.sync_len] *= -1.0
    return _Template(tpl.mode, chips, tpl.sync_len)


@dataclass(frozen=True, slots=True)
class _Search:
    """One sync search: the mode searched, its template, the chip-rate grid and the threshold, and
    the modes whose longer sync word is told apart after a hit (``checks``): other modes this
    search serves (`shared_search`), then the mode itself when its formats differ after the
    searched chips."""

    mode: ModeSpec
    tpl: _Template
    slip: _Template  # the same with one extra chip before the sync word
    factors: np.ndarray
    threshold: float
    checks: tuple[ModeSpec, ...]
    must_check: bool  # a hit that matches none of ``checks`` is no frame
    taps: np.ndarray | None  # low-pass before the discriminator the search runs on (None: the channel's)


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class _Bank:
    """A search's templates on its decimated grid, one row per (chip rate, template form), with
    their conjugated spectra at one FFT size (``Demodulator._bank``)."""

    nfft: int
    l0: int  # template length at the nominal chip rate
    lens: np.ndarray  # template length per row
    sync_lens: np.ndarray  # length of the sync word's part per row
    sps: np.ndarray  # samples per chip (full rate) per row
    slipped: np.ndarray  # the row is the slipped form
    means: np.ndarray
    padded: np.ndarray  # the templates, rows x longest
    sync_padded: np.ndarray  # each template's sync part alone (DC-free), in place
    spectra: np.ndarray | None  # conjugated spectra of ``padded``, rows x (nfft // 2 + 1), when kept
    sync_spectra: np.ndarray | None  # the same of ``sync_padded``

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.padded, self.sync_padded, self.spectra, self.sync_spectra)
                   if a is not None)

    def spectra_of(self, rows: np.ndarray | slice, *, sync: bool = False) -> np.ndarray:
        """Conjugated spectra of some rows (of the sync parts with ``sync``), kept (a view for a
        slice of rows) or made now."""
        kept = self.sync_spectra if sync else self.spectra
        if kept is not None:
            return kept[rows]
        return np.conj(sfft.rfft((self.sync_padded if sync else self.padded)[rows], self.nfft, axis=1))


def _from_each(c: np.ndarray, offsets: np.ndarray, width: int) -> np.ndarray:
    """Rows ``c[o:o + width]`` for each offset o, the last value of ``c`` repeated past its end."""
    ext = np.concatenate((c, np.full(max(int(offsets.max()) + width - len(c), 0), c[-1])))
    return np.lib.stride_tricks.sliding_window_view(ext, width)[offsets]


def _fft_size(n: int) -> int:
    """The smallest 2^k or 3 x 2^k >= n: few sizes, so template spectra are shared between bursts."""
    p = 1 << max(0, (n - 1).bit_length())
    return 3 * p // 4 if 3 * p // 4 >= n else p


@dataclass(slots=True, eq=False)
class _Lock:
    """A candidate being decoded: where its chips are and the waveform they are read from."""

    x: np.ndarray  # channel samples of the burst
    v: np.ndarray  # two-tone matched-filter output (filled up to done_to)
    pos: float  # template start (on the matched filter's lagged clock)
    sps: float
    w: int
    sign: int
    offset: float  # carrier estimate in m's frame (sign applied by _tones)
    dev: float
    amp: float = 0.0
    a0: int = 0  # first sample of the tone output
    done_to: int = 0  # tone output is valid below this sample
    timed: bool = False  # sps comes from a long preamble (a straight clock good over the frame)

    def tones_to(self, demod: Demodulator, end: int) -> tuple[int, int]:
        """Fill the tone output up to sample ``end``: only the samples not yet filled, each window
        from its own samples (w - 1 before the new ones). Returns the range filled."""
        start = max(self.done_to, self.a0)
        end = min(end, len(self.x))
        if end <= start:
            self.done_to = max(self.done_to, end)
            return start, start
        lead = min(start - self.a0, self.w - 1)
        vals = demod._tones(self.x[start - lead:end], self.sign * self.offset, self.dev, self.sign, self.w)
        self.v[start:end] = vals[lead:]
        self.done_to = end
        return start, end


def _search_filter(spec: ModeSpec, rate: float, n_taps: int = 31) -> np.ndarray | None:
    """Low-pass taps (Hamming-windowed sinc, unit DC gain) that keep the mode's signal whatever its
    deviation and carrier error within the mode's limits (carrier: transmitter plus an equal
    receiver error) and one chip rate of sidebands, for the discriminator the sync search reads.
    Below its FM threshold the discriminator suffers from every Hz of noise it sees: a narrow mode in
    a wide channel (S: ~+-140 kHz of +-175) gains about 3 dB there. None when the channel is
    no wider."""
    limits = dict(spec.limits)
    dev_max = (limits.get("deviation_hz") or (None, None))[1] or 1.3 * spec.deviation_hz
    ppm = max(abs(v) for v in (limits.get("carrier_error_ppm") or (25.0, 25.0)) if v is not None)
    cutoff = dev_max + 0.5 * spec.chip_rate + 2 * ppm * 1e-6 * spec.channel_hz
    if cutoff >= 0.4 * rate:
        return None
    n = np.arange(n_taps) - (n_taps - 1) / 2
    taps = np.sinc(2 * cutoff / rate * n) * np.hamming(n_taps)
    return taps / taps.sum()


@functools.lru_cache(maxsize=64)
def _isi_factor(bt: float, sps: float, chips: tuple[int, ...] | None) -> float:
    """Mean magnitude of a chip's average frequency (in deviations) after Gaussian shaping of BT
    ``bt`` at ``sps`` samples per chip: over ``chips``, or over random data when None (a fixed
    pseudo-random sequence, so the figure is the same on every run)."""
    if chips is None:
        chips = tuple(int(c) for c in np.random.default_rng(0).integers(0, 2, 2048))
    a = 2.0 * np.asarray(chips, dtype=np.float64) - 1.0
    k = (np.arange(int(len(a) * sps)) / sps).astype(np.int64)
    from .modulate import gaussian_taps  # noqa: PLC0415 (Gaussian modes only: ~2.5 ms of start-up)

    freq = np.convolve(a[k], gaussian_taps(bt, sps), mode="same")
    avg = np.bincount(k, freq) / np.bincount(k)
    return float(np.abs(avg[2:-2]).mean())  # the ends lack a neighbour


def _bits(values: np.ndarray) -> tuple[int, ...]:
    return tuple(int(b) for b in (values > 0))


def _sync_continues(spec: ModeSpec) -> bool:
    return any(len(w) > len(spec.search_sync) for w in spec.syncs.values())


def _upsample(chips: np.ndarray, sps: float) -> np.ndarray:
    n = int(np.floor(len(chips) * sps))
    return chips[np.minimum((np.arange(n) / sps).astype(np.int64), len(chips) - 1)]


def _moving_average(x: np.ndarray, w: int) -> np.ndarray:
    c = np.concatenate(([0.0], np.cumsum(x, dtype=np.float64)))
    out = np.empty(len(x))
    out[w - 1:] = (c[w:] - c[:-w]) / w
    out[: w - 1] = c[1:w] / np.arange(1, w)
    return out


def _in_preamble(m: np.ndarray, frame: FrameResult, pos: float, rate: float) -> bool:
    """Whether the chips from ``pos`` up to ``frame``'s sync word alternate as a preamble does
    (read on the frame's own chip clock from the moving-averaged discriminator ``m``, whose
    sample at the end of a chip holds that chip): at least PREAMBLE_RUN of them, nine in ten
    changing sign."""
    sps = rate / frame.chip_rate_hz
    k = np.arange(1, int((frame.sync_start - pos) / sps))
    at = (frame.sync_start - k * sps - 1).astype(np.int64)
    at = at[(at >= 0) & (at < len(m))]
    if len(at) < PREAMBLE_RUN:
        return False
    sign = m[at] > 0
    return float(np.mean(sign[1:] != sign[:-1])) >= 0.9


PREAMBLE_RUN = 16
_PHASOR_BLOCK = 64


def _phasors(freqs_hz: np.ndarray, n: int, rate: float) -> np.ndarray:
    """exp(-2j pi f k / rate) for k = 0 .. n-1, one complex64 row per frequency: the product of a
    coarse (every 64th k) and a fine table, one complex multiplication per sample instead of an
    exponential."""
    b = _PHASOR_BLOCK
    w = (-2j * np.pi / rate) * np.asarray(freqs_hz, dtype=np.float64)[:, None]
    fine = np.exp(w * np.arange(b))
    coarse = np.exp(w * (np.arange(-(-n // b)) * b))
    out = (coarse[:, :, None] * fine[:, None, :]).reshape(len(freqs_hz), -1)[:, :n]
    return out.astype(np.complex64)


def _smooth_same(p: np.ndarray, k: int) -> np.ndarray:
    """``np.convolve(p, np.ones(k) / k, mode="same")`` in O(len(p)) from one cumulative sum (the
    spectrum of a long S burst smoothed over half its chip rate is a 1300-tap box)."""
    n = len(p)
    if k >= n:
        return np.convolve(p, np.ones(k) / k, mode="same")
    c = np.concatenate(([0.0], np.cumsum(p)))
    i = np.arange(n)
    hi = np.minimum(i + (k - 1) // 2 + 1, n)
    lo = np.clip(i + (k - 1) // 2 - k + 1, 0, n)
    return (c[hi] - c[lo]) / k


def discriminator(x: np.ndarray, rate: float) -> np.ndarray:
    """Instantaneous frequency in Hz (length len(x); the first value repeats the second)."""
    d = np.angle(x[1:] * np.conj(x[:-1])) * (rate / (2 * np.pi))
    return np.concatenate((d[:1], d)) if len(d) else d


def _interp_at(m: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Linear interpolation of ``m`` at every point of ``t``: 0 where a point has no two samples
    around it (before 0 or at the last sample)."""
    i = t.astype(np.int64)  # truncation, as int()
    ok = (i >= 0) & (i + 1 < len(m))
    i = np.where(ok, i, 0)
    f = t - i
    return np.where(ok, m[i] * (1 - f) + m[np.minimum(i + 1, len(m) - 1)] * f, 0.0)


# the coherent Manchester reading's searches (deviation, first chip, chip period) compare the
# energy of every this many bits: the frame's whole span at a third of the cost
COHERENT_SEARCH_EVERY = 3


class Demodulator:
    """Finds and decodes frames of the given modes in bursts of one channel."""

    def __init__(self, rate: float, modes: list[str] | list[ModeSpec], *, threshold: float | None = None,
                 rate_step: float = 0.015):
        self.rate = rate
        self.modes = [mode_named(m) if isinstance(m, str) else m for m in modes]
        self.rate_step = rate_step
        self._banks: dict[tuple, _Bank] = {}  # template banks per search and FFT size (_bank), bounded
        # a mode another one's search serves (T1's finds C1: same channel, its template is the end of
        # C's preamble + 0x543D) gets no search of its own; its sync word is checked after the hit
        served = {id(b) for a in self.modes for b in self.modes if shared_search(a, b)}
        self._search: list[_Search] = []
        for m in self.modes:
            if id(m) in served:
                continue
            tol = m.chip_rate_tolerance
            steps = max(1, int(np.ceil(tol / rate_step)))
            factors = 1 + rate_step * np.arange(-steps, steps + 1) if tol > 0.006 else np.array([1.0])
            riders = tuple(b for b in self.modes if shared_search(m, b))
            own = _sync_continues(m)
            tpl = _template(m)
            self._search.append(_Search(m, tpl, _slipped(tpl), factors,
                                        m.sync_threshold if threshold is None else threshold,
                                        riders + ((m,) if own else ()), own, _search_filter(m, rate)))

    def demodulate(self, x: np.ndarray) -> list[FrameResult]:
        if len(x) < 64:
            return []
        d_raw = None
        good: list[FrameResult] = []
        bad: list[FrameResult] = []
        for search in self._search:
            tpl = search.tpl
            sps0 = self.rate / search.mode.chip_rate
            w = max(1, int(round(sps0)))
            if search.taps is None:
                d_raw = discriminator(x, self.rate) if d_raw is None else d_raw
                d = d_raw
            else:
                d = discriminator(np.convolve(x, search.taps, mode="same"), self.rate)
            m = _moving_average(d, w)
            span = len(tpl.chips)
            # a narrow mode is searched on the two-tone matched filter around the burst's carrier
            # (from its spectrum), which keeps working where the discriminator has gone below its
            # FM threshold
            look = m
            if search.taps is not None or search.mode.carrier_from_chips:
                look = self._tones(x, self._burst_carrier(x, search.mode), search.mode.deviation_hz, 1, w)
            cands, q = self._candidates(look, tpl, sps0, search.factors, search.threshold)
            # the chip rate the search fitted, kept within the mode's tolerance and the receiver's clock
            # error: a fit over a 40-chip template can stray a per cent, which a crystal-timed mode
            # (F: 0.1 %) never does, and which puts the chips of a long frame out of step
            tol = search.mode.chip_rate_tolerance + RX_CLOCK_TOLERANCE
            # the shortest frame any mode of the search can send, in chips after the template
            least = MIN_FRAME_BYTES * min(m_.coding.chips_per_byte for m_ in (search.mode, *search.checks))
            found = self._both_searches(cands, look, m, tpl, sps0, search, good, (span + least) * sps0) \
                if look is not m and search.taps is None else ((c, look) for c in cands)
            for (score, pos, sps, sign, slip), where in found:
                # a candidate inside a decoded frame (or its sync template) is that frame seen again;
                # one whose shortest frame would run into a decoded one is part of its preamble.
                # Checked before the candidate is placed at full rate (a few samples off) and after
                if any(r.sync_position - (span + least) * sps - q - 3 <= pos <= r.end_position + q + 3
                       for r in good):
                    continue
                # one in a decoded frame's preamble (S: 558 chips, where every alignment reads as
                # some sync word and L-field): the chips from it to that frame's sync word alternate
                if any(pos < r.sync_start and _in_preamble(m, r, pos, self.rate) for r in good):
                    continue
                variant = search.slip if slip else tpl
                pos, sps = self._place(where, m, variant, (score, pos, sps, sign), q)
                sps = min(max(sps, sps0 / (1 + tol)), sps0 / (1 - tol))
                if any(r.sync_position - span * sps <= pos <= r.end_position for r in good):
                    continue
                res = self._decode(x, m if sign > 0 else -m, search, variant, pos, sps, w, sign)
                if res is None:
                    continue
                (good if res.crc_ok else bad).append(res)
        # a failed attempt that overlaps a good frame was the same transmission seen at a wrong offset
        bad = [b for b in bad if not any(g.sync_position - 8 <= b.sync_position <= g.end_position
                                         or b.sync_position <= g.sync_position <= b.end_position for g in good)]
        kept: list[FrameResult] = []
        for b in sorted(bad, key=lambda r: -r.snr_db):
            if not any(k.sync_position <= b.sync_position <= k.end_position or
                       b.sync_position <= k.sync_position <= b.end_position for k in kept):
                kept.append(b)
        return sorted(good + kept, key=lambda r: r.position)

    def _both_searches(self, cands: list, look: np.ndarray, m: np.ndarray, tpl: _Template, sps0: float,
                       search: _Search, good: list[FrameResult], shortest: float) -> Iterator[tuple[tuple, np.ndarray]]:
        """The tone search's candidates (each with the waveform to place it on), then the
        discriminator's at other places: the tones sit at the nominal deviation and at the burst's
        one carrier, and a transmitter far from either (F at -30 %: the tones a third of the chip
        rate off; frames of several meters merged into one burst) may pass the discriminator's
        search only — also where a tone candidate was tried and failed (its carrier or deviation
        was another frame's). Skipped when the frames found leave no stretch of the burst where a
        frame (``shortest``: samples of the shortest one, template included) could still hide."""
        yield from ((c, look) for c in cands)
        if good:
            spans = sorted((r.sync_position - len(tpl.chips) * sps0, r.end_position) for r in good)
            free, reached = 0.0, 0.0
            for a, b in spans:
                free = max(free, a - reached)
                reached = max(reached, b)
            if max(free, len(m) - reached) < shortest:
                return
        more, _ = self._candidates(m, tpl, sps0, search.factors, search.threshold)
        yield from ((c, m) for c in more)

    def _candidates(self, m: np.ndarray, tpl: _Template, sps0: float, factors: np.ndarray,
                    thr: float) -> tuple[list[tuple[float, float, float, int, bool]], int]:
        """(score, position, samples per chip, polarity, slipped) of sync-word candidates, best
        first, on the grid of the decimation step (refined later by ``_place``), and that step.

        The search runs on the matched-filter output decimated to about 2 samples per chip: one
        forward FFT per burst, then one batch of inverse FFTs against the bank of templates (every
        candidate chip rate, the template and its slipped form: one extra chip between preamble
        and sync word)."""
        q = max(1, int(sps0 // 2))
        md = m[::q]
        n = len(md)
        bank = self._bank(tpl, sps0, factors, q, n)
        if bank is None:
            return [], q
        c = np.concatenate(([0.0], np.cumsum(md)))
        c2 = np.concatenate(([0.0], np.cumsum(md * md)))
        spec = sfft.rfft(md, bank.nfft)
        # silent stretches (blanked, or zero padding at the end of a stream) must not score: a floor
        # at 5 % of the median energy of a template-long window, measured once at the nominal rate
        # (the energy of a window grows with its length)
        l0 = bank.l0
        e0 = (c2[l0:] - c2[:-l0]) - (c[l0:] - c[:-l0]) ** 2 / l0
        mid = len(e0) // 2
        median0 = max(float(np.partition(e0, mid)[mid]), 0.0) / l0
        # candidates kept: 8, or more in a long burst (frames back to back merge into one burst; a
        # frame is longer than four templates, so no more fit)
        keep = max(8, int(np.ceil(len(m) / (4 * len(tpl.chips) * sps0))))
        # chip rates in batches, so that a long burst keeps the arrays (rates x positions) bounded
        rates = len(bank.lens) // 2
        step = max(1, SEARCH_BATCH // bank.nfft)
        found = []
        for f0 in range(0, rates, step):
            found += self._search_rates(bank, slice(f0, min(f0 + step, rates)), spec, c, c2, n, median0, thr, q,
                                        keep)
        found.sort(key=lambda z: -z[0])
        out = []
        for cand in found:
            if len(out) == keep:
                break
            # one candidate per position, polarity and template: an inverted preamble one chip off can
            # outscore the true alignment, the decode decides
            if all(abs(cand[1] - o[1]) > len(tpl.chips) * cand[2] / 2 or cand[3:5] != o[3:5] for o in out):
                out.append(cand)

        # A normal frame reads as slipped one chip off nearly as well (and the reverse): where both
        # forms hold the same place, the normal one is decoded first
        def rank(i: int) -> float:
            c = out[i]
            if c[4]:
                near = [j for j, o in enumerate(out) if not o[4] and o[3] == c[3] and abs(o[1] - c[1]) <= 2.5 * c[2]]
                if near:
                    return near[0] + 0.5
            return float(i)

        return [out[i] for i in sorted(range(len(out)), key=rank)], q

    def _search_rates(self, bank: _Bank, rates: slice, spec: np.ndarray, c: np.ndarray, c2: np.ndarray, n: int,
                      median0: float, thr: float, q: int, keep: int) -> list[tuple[float, float, float, int, bool]]:
        """The candidates (``keep`` per template at most) of the bank's chip rates ``rates`` (both
        template forms of each):
        correlation of every template with the waveform at every start, normalised, then the sync
        word's own correlation where a template passed the threshold."""
        rows = np.arange(2 * rates.start, 2 * rates.stop)
        flens = bank.lens[rows[::2]]
        width = n - int(flens.min()) + 1
        full = sfft.irfft(spec[None, :] * bank.spectra_of(slice(2 * rates.start, 2 * rates.stop)), bank.nfft, axis=1)
        # rows come in pairs (the template and its slipped form) of one length: the energy of a
        # window is computed once per chip rate
        lens = flens[:, None].astype(np.float64)
        inside = np.arange(width)[None, :] <= n - flens[:, None]
        # window sums of every template length at every start: rows of the cumulative sums from
        # each length on (held at the last value past the end)
        cw = _from_each(c, flens, width)
        s1 = cw - c[:width]
        energy = (_from_each(c2, flens, width) - c2[:width]) - s1 * s1 / lens
        floor = 0.05 * median0 * lens + 1e-12
        scale = np.maximum(energy, floor)
        scale *= lens
        np.sqrt(scale, out=scale)
        np.divide(1.0, scale, out=scale)
        scale[~((energy > floor) & inside)] = 0.0
        # DC-free like the energy (a template of unequal chip counts), then normalised: in place, on
        # the correlations' own array
        corr3 = full.reshape(len(flens), 2, -1)[:, :, :width]
        corr3 -= s1[:, None, :] * bank.means[rows].reshape(-1, 2)[:, :, None]
        corr3 *= scale[:, None, :]
        norm = full[:, :width]
        passing = np.flatnonzero(np.maximum(norm.max(axis=1), -norm.min(axis=1)) > thr)  # in ``rows``
        if len(passing) == 0:
            return []
        # Inside a long preamble the template's preamble part alone scores ~0.6 everywhere; the
        # sync word's own correlation (same alignment) tells the true position apart, so the
        # ranking uses both: the sync part of each passing template, DC-free (an unbalanced sync
        # part meets a carrier offset), correlated in one more batch, only on the columns where
        # some passing template is over the threshold
        normp = norm[passing]
        cols = np.flatnonzero(np.maximum(normp.max(axis=0), -normp.min(axis=0)) > thr)
        lo, hi = int(cols[0]), int(cols[-1]) + 1
        normp = normp[:, lo:hi]
        absp = np.abs(normp)
        over = absp > thr
        which = rows[passing]  # rows of the bank
        cs = sfft.irfft(spec[None, :] * bank.spectra_of(which, sync=True), bank.nfft, axis=1)[:, lo:hi]
        lp = bank.lens[which][:, None]
        lsp = bank.sync_lens[which][:, None].astype(np.float64)
        starts = bank.lens[which] - bank.sync_lens[which]  # of the sync part in the template
        s1s = cw[passing // 2, lo:hi] - _from_each(c, starts + lo, hi - lo)
        e_s = ((_from_each(c2, bank.lens[which] + lo, hi - lo) - _from_each(c2, starts + lo, hi - lo))
               - s1s * s1s / lsp)
        norm_s = np.where(e_s > floor[passing // 2] * lsp / lp, cs / np.sqrt(np.maximum(e_s, 1e-12) * lsp), 0.0)
        score = np.where(over & (np.sign(normp) == np.sign(norm_s)), 0.5 * (absp + np.abs(norm_s)), 0.0)
        return self._peaks(score, over, bank, which, lo, q, normp, keep)

    @staticmethod
    def _peaks(score: np.ndarray, over: np.ndarray, bank: _Bank, passing: np.ndarray, lo: int, q: int,
               normp: np.ndarray, keep: int = 8) -> list[tuple[float, float, float, int, bool]]:
        """Per passing template, its (at most) ``keep`` best positions over the threshold whose score is
        the largest within half a template either side: (score, position, samples per chip,
        polarity, slipped). Scores are >= 0 and 0 off the threshold, so a window reaching past the
        columns kept (``lo`` on) or a template's last start sees the same maximum."""
        rows, at = np.nonzero(over)
        if len(rows) == 0:
            return []
        halves = (bank.lens[passing] | 1) // 2
        h = int(halves.max())
        # windows gathered at every position over the threshold, unless a long preamble puts so many
        # over it that a running maximum along each template's row costs less (or a pathological
        # burst would need too much memory)
        if len(rows) * (2 * h + 1) > min(PEAK_WINDOWS_BUDGET, 2 * score.size + 10_000 * len(passing)):
            tops = np.concatenate([centred_max(score[k], 2 * int(halves[k]) + 1) for k in range(len(passing))])
            top = tops.reshape(score.shape)[rows, at]
        else:
            padded = np.zeros((score.shape[0], score.shape[1] + 2 * h))
            padded[:, h:h + score.shape[1]] = score
            win = np.lib.stride_tricks.sliding_window_view(padded, 2 * h + 1, axis=1)[rows, at]
            reach = np.abs(np.arange(-h, h + 1))[None, :] <= halves[rows][:, None]
            top = np.max(win, axis=1, where=reach, initial=0.0)
        vals = score[rows, at]
        is_peak = vals == top
        rows, at, vals = rows[is_peak], at[is_peak], vals[is_peak]
        # the best of each template: sorted by template, then score (highest first)
        order = np.lexsort((-vals, rows))
        rows, at, vals = rows[order], at[order], vals[order]
        first = np.searchsorted(rows, rows)  # index of each template's first entry
        best = np.arange(len(rows)) - first < keep
        return [(float(v), float((lo + i) * q), float(bank.sps[passing[k]]), 1 if normp[k, i] > 0 else -1,
                 bool(bank.slipped[passing[k]]))
                for k, i, v in zip(rows[best].tolist(), at[best].tolist(), vals[best], strict=True)]

    def _bank(self, tpl: _Template, sps0: float, factors: np.ndarray, q: int, n: int) -> _Bank | None:
        """The search's templates on the decimated grid for a waveform of ``n`` samples, with their
        spectra (conjugated) at an FFT size of 2^k or 3 x 2^k: kept per size, so that bursts of
        similar length share them. None when the longest template does not fit."""
        lmax = int(np.floor(len(tpl.chips) * sps0 / q / factors.min())) + 1
        if lmax >= n:
            return None
        nfft = _fft_size(n + lmax)
        key = (id(tpl), round(sps0, 9), q, nfft)
        bank = self._banks.get(key)
        if bank is not None:
            return bank
        slip = _slipped(tpl)
        rows = []
        for f in factors:
            sps = sps0 / f
            ls = max(1, int(np.floor(tpl.sync_len * sps / q)))
            for variant in (tpl, slip):
                rows.append((_upsample(variant.chips, sps / q), ls, sps, variant is slip))
        lens = np.array([len(r[0]) for r in rows])
        padded = np.zeros((len(rows), int(lens.max())))
        sync = np.zeros_like(padded)  # each template's last sync_len samples, DC-free, in place
        for i, (t, ls, _, _) in enumerate(rows):
            padded[i, :len(t)] = t
            sync[i, len(t) - ls:len(t)] = t[len(t) - ls:] - t[len(t) - ls:].mean()
        # spectra are kept for the FFT sizes of common bursts; a long one's are made batch by batch
        keep = 2 * len(rows) * (nfft // 2 + 1) * 16 <= BANK_BYTES // 4
        bank = _Bank(nfft=nfft, l0=len(_upsample(tpl.chips, sps0 / q)), lens=lens,
                     sync_lens=np.array([r[1] for r in rows]), sps=np.array([r[2] for r in rows]),
                     slipped=np.array([r[3] for r in rows]),
                     means=np.array([r[0].mean() for r in rows]), padded=padded, sync_padded=sync,
                     spectra=np.conj(sfft.rfft(padded, nfft, axis=1)) if keep else None,
                     sync_spectra=np.conj(sfft.rfft(sync, nfft, axis=1)) if keep else None)
        if keep:
            self._banks[key] = bank
            while sum(b.nbytes for b in self._banks.values()) > BANK_BYTES:  # bounded: the oldest goes
                self._banks.pop(next(iter(self._banks)))
        return bank

    def _place(self, look: np.ndarray, m: np.ndarray, tpl: _Template, cand: tuple[float, float, float, int],
               q: int) -> tuple[float, float]:
        """A candidate's position and samples per chip at full rate: refined on the searched waveform
        within the decimation step and one step of chip rate, then settled on the discriminator's
        ``m`` (a tone output's peak is flat on top: the discriminator's, sharper at a good SNR,
        settles the position within a few samples; no further, and not the chip rate: it wanders
        at a poor one)."""
        _, pos, sps, _ = found = self._refine(look, tpl, cand, q)
        return self._refine(m, tpl, found, 1)[1], sps

    def _refine(self, m: np.ndarray, tpl: _Template, cand, q: int):
        """Full-rate search around a decimated candidate: position within the decimation step and
        chip rate within one grid step, then a parabolic fit of the rate."""
        score, pos, sps, sign = cand
        step = self.rate_step
        scores = []
        best = (-np.inf, pos, sps)
        for f in (1 - step, 1.0, 1 + step):
            s_ = sps / f
            t = _upsample(tpl.chips, s_)
            L = len(t)
            # every position in the step at once: (seg - seg.mean()) . t = seg . (t - t.mean())
            lo, hi = max(int(pos) - q - 1, 0), min(int(pos) + q + 1, len(m) - L)
            if hi < lo:
                scores.append(-np.inf)
                continue
            vals = sign * (np.lib.stride_tricks.sliding_window_view(m[lo:hi + L], L) @ (t - t.mean()))
            k = int(np.argmax(vals))
            top = float(vals[k])
            if top > best[0]:
                best = (top, float(lo + k), s_)
            scores.append(top)
        a, b, c = scores
        den = a - 2 * b + c
        # near the end of a burst a rate may have no room for the template (score -inf): no fit then
        if np.isfinite(den) and b >= max(a, c) and den < 0:
            delta = 0.5 * (a - c) / den  # in grid steps, towards the better neighbour
            sps_fit = sps / (1 + delta * step)
        else:
            sps_fit = best[2]
        return score, best[1], float(sps_fit), sign

    def _burst_carrier(self, x: np.ndarray, spec: ModeSpec) -> float:
        """The carrier (Hz) of the strongest FSK signal in a burst: where the power spectrum,
        smoothed over half a chip rate, has the most power in its two tones (their spacing tried
        over the mode's deviation limits). White noise adds the same everywhere, so at low SNR it
        does not shrink towards 0 Hz as a phase estimate does. Within +-2x the mode's carrier limit
        (transmitter and receiver)."""
        n = 1 << int(np.ceil(np.log2(max(len(x), 64))))
        n = min(n, 1 << 16)
        p = np.fft.fftshift(np.abs(np.fft.fft(x[:n], n)) ** 2)
        bin_hz = self.rate / n
        smooth = max(1, int(0.5 * spec.chip_rate / bin_hz))
        ps = _smooth_same(p, smooth)
        limits = dict(spec.limits)
        ppm = max(abs(v) for v in (limits.get("carrier_error_ppm") or (25.0, 25.0)) if v is not None)
        dev_lo, dev_hi = limits.get("deviation_hz") or (0.7 * spec.deviation_hz, 1.3 * spec.deviation_hz)
        reach = int(2 * ppm * 1e-6 * spec.channel_hz / bin_hz)
        centre = n // 2
        best = (-np.inf, 0.0, spec.deviation_hz)
        step = max(1, int(2500 / bin_hz))
        for k_dev in range(int(dev_lo / bin_hz), int(dev_hi / bin_hz) + 1, step):
            ks = np.arange(max(centre - reach, k_dev), min(centre + reach, n - k_dev - 1) + 1)
            if len(ks) == 0:
                continue
            score = ps[ks - k_dev] + ps[ks + k_dev]
            i = int(np.argmax(score))
            if score[i] > best[0]:
                best = (float(score[i]), float((ks[i] - centre) * bin_hz), float(k_dev * bin_hz))
        # on a grid of an eighth of the chip rate (the tones lose nothing to that), so that the
        # extent of the burst, which moves the estimate by a few hundred Hz, does not move the frame
        grid = spec.chip_rate / 8
        return float(np.round(best[1] / grid) * grid)

    def _tones(self, x: np.ndarray, offset: float, dev: float, sign: int, w: int) -> np.ndarray:
        """Noncoherent two-tone matched filter: |sum over one chip of x at f+dev| minus the same at
        f-dev, for a window ending at every sample (the optimal detector for orthogonal FSK). The
        first w - 1 windows hold the samples there are."""
        return self._tone_trials(x, offset, np.array([dev]), sign, w)[0]

    def _tone_trials(self, x: np.ndarray, offset: float, devs: np.ndarray, sign: int, w: int) -> np.ndarray:
        """``_tones`` for several tone spacings at once: one row per deviation in ``devs``."""
        k = len(devs)
        ph = _phasors(np.concatenate((offset + devs, offset - devs)), len(x), self.rate)
        u = ph * np.asarray(x, dtype=np.complex64)
        c = np.cumsum(u, axis=1, dtype=np.complex128)
        s_ = np.empty_like(c)
        s_[:, :w] = c[:, :w]
        s_[:, w:] = c[:, w:] - c[:, :-w]
        a = np.abs(s_)
        v = a[:k] - a[k:]
        return v if sign > 0 else -v

    def _decode(self, x: np.ndarray, m: np.ndarray, search: _Search, tpl: _Template, pos: float, sps: float,
                w: int, sign: int) -> FrameResult | None:
        """One sync candidate (on ``tpl``, the search's template or its slipped form) -> a frame (CRC
        good or the reason it is not), or None for no frame. A Gaussian mode's frame read on the
        tones of its nominal deviation that fails its CRC is read again on the tones the template
        picks (a transmitter far from the nominal deviation; see `_open_tones`)."""
        res = self._decode_on(x, m, search, tpl, pos, sps, w, sign, nominal_tones=True)
        if search.mode.gaussian_bt is None or res is None or res.crc_ok:
            return res
        again = self._decode_on(x, m, search, tpl, pos, sps, w, sign, nominal_tones=False)
        return again if again is not None and again.crc_ok else res

    def _decode_on(self, x: np.ndarray, m: np.ndarray, search: _Search, tpl: _Template, pos: float, sps: float,
                   w: int, sign: int, *, nominal_tones: bool) -> FrameResult | None:
        """`_decode` on the tones `_open_tones` chooses (``nominal_tones``: its argument)."""
        t = _upsample(tpl.chips, sps)  # the template's waveform at this candidate's chip rate
        pos = self._refine_position(m, t, pos)
        lock = self._estimate_carrier(x, m, search.mode, tpl, t, pos, sps, w, sign)
        if lock is None or not self._open_tones(lock, search.mode, t, nominal_tones):
            return None
        # chip k of the template occupies [pos + k*sps, pos + (k+1)*sps); the sliding windows (matched
        # filter, tones) end at the sample they are stored at, so their waveform lags the chips by
        # (w - 1) / 2 samples: the template start found on them does too.
        start = pos - (w - 1) / 2 + len(tpl.chips) * sps  # first chip after the searched sync part
        shift = self._settle_sync(lock, tpl, start)
        start += shift * sps
        if shift:
            # the sync word moved: the preamble before it may fit the other template (a normal frame
            # found as slipped one chip off, or the reverse); lock again on the one that fits
            other = search.slip if tpl is search.tpl else search.tpl
            p2 = pos + shift * sps
            t2 = _upsample(other.chips, sps)
            seg = m[max(int(p2), 0):max(int(p2), 0) + len(t2)]
            if len(seg) == len(t2) and np.dot(seg - seg.mean(), t2) > np.dot(seg - seg.mean(), t[:len(seg)]):
                # its own peak within half a chip (the first template's peak was a shoulder of it)
                lo, hi = max(int(p2 - sps / 2), 0), min(int(p2 + sps / 2) + 1, len(m) - len(t2))
                if hi > lo:
                    scores = [float(np.dot(m[q:q + len(t2)] - m[q:q + len(t2)].mean(), t2)) for q in range(lo, hi)]
                    p2 = self._refine_position(m, t2, float(lo + int(np.argmax(scores))))
                relock = self._estimate_carrier(x, m, search.mode, other, t2, p2, sps, w, sign)
                if relock is not None and self._open_tones(relock, search.mode, t2, nominal_tones):
                    tpl, lock, pos, shift = other, relock, p2, 0
                    start = pos - (w - 1) / 2 + len(tpl.chips) * sps
        # a long preamble times the chips far better than the template (where the template ends
        # stays the search's)
        sps_pre = self._preamble_clock(lock, search.mode)
        lock.sps, lock.timed = sps_pre, sps_pre != lock.sps
        found = self._detect_format(lock, search, start, len(tpl.chips) + shift)
        if found is None:
            return None
        spec, fmt, tracker = found
        return self._decode_blocks(lock, spec, fmt, tracker)

    @staticmethod
    def _refine_position(m: np.ndarray, t: np.ndarray, pos: float) -> float:
        """Position to a fraction of a sample from the neighbours of the correlation peak of the
        template waveform ``t``."""
        L = len(t)

        def corr_at(p):
            i = int(p)
            if i < 0 or i + L > len(m):
                return -1e9
            return float(np.dot(m[i:i + L], t))

        c0, cm, cp = corr_at(pos), corr_at(pos - 1), corr_at(pos + 1)
        den = cm - 2 * c0 + cp
        frac = 0.5 * (cm - cp) / den if den < 0 else 0.0
        return pos + float(np.clip(frac, -0.5, 0.5))

    def _estimate_carrier(self, x: np.ndarray, m: np.ndarray, spec: ModeSpec, tpl: _Template, t: np.ndarray,
                          pos: float, sps: float, w: int, sign: int) -> _Lock | None:
        """Carrier offset from the preamble, then the discriminator's deviation on the template; None
        when that is far from the mode's (not this mode's preamble).

        Carrier: angle of the lag-1 autocorrelation over the balanced part of the template (the
        +-deviation terms cancel). The mean discriminator output would shrink towards 0 Hz at low SNR
        and carry the imbalance of the sync word."""
        seg = m[int(pos):int(pos) + len(t)]
        a0 = max(int(pos - (w - 1) / 2), 0)
        # the whole template when its sync word is balanced (S, T), else the preamble part only (C)
        span = len(tpl.chips) if abs(float(np.sum(tpl.chips))) < 1 else len(tpl.chips) - tpl.sync_len
        pre = x[a0:a0 + int(span * sps) + 1]
        if len(pre) > 8:
            # lag of one sample: over balanced chips the +-deviation phasors are conjugate pairs, so the
            # angle of their sum is the carrier alone (unambiguous within +-rate/2)
            offset = float(np.angle(np.vdot(pre[:-1], pre[1:])) * self.rate / (2 * np.pi))
            offset = self._long_preamble_carrier(x, spec, a0, sps, offset)
        else:
            offset = float(seg.mean())
        if spec.carrier_from_chips:
            offset = self._chips_carrier(x, spec, tpl, pos - (w - 1) / 2, sps, sign, offset)
        if sign < 0:
            offset = -offset  # m was negated for inverted polarity; keep offset in m's frame
        dev = float(np.dot(seg - offset, t[: len(seg)]) / len(seg))
        if not 0.2 * spec.deviation_hz <= dev <= 2.5 * spec.deviation_hz:
            return None
        return _Lock(x=x, v=np.zeros(len(x)), pos=pos, sps=sps, w=w, sign=sign, offset=offset, dev=dev)

    def _chips_carrier(self, x: np.ndarray, spec: ModeSpec, tpl: _Template, start: float, sps: float, sign: int,
                       guess_hz: float) -> float:
        """The carrier (Hz) measured over the chips known at a sync candidate: the template (whose
        first chip begins at sample ``start``) and the rest of the mode's preamble before it. Each
        chip's expected tone (+-deviation) is taken out and the chips' own spectra are summed: the
        peak, within one chip rate (at most 1.5 deviations) of ``guess_hz``, is the carrier. Each chip
        is taken on its own (noncoherently), so a deviation or a timing error blurs the peak but does
        not move it, where a reference phase over the whole preamble would need the timing to a few
        per cent of a chip at a high modulation index (F: 4.6). Over 40-100 chips it finds the
        carrier to a few per cent of the chip rate; the lag-one estimate shrinks towards the channel
        centre at a low SNR (the filtered noise is correlated from sample to sample). The template is
        tried one chip early and late too (the search can be a chip off before the tones settle it).
        ``guess_hz`` when the chips do not fit inside the burst."""
        w = max(1, int(round(sps)))
        nfft = 1 << int(np.ceil(np.log2(64 * sps)))  # bins of a 64th of the chip rate
        bin_hz = self.rate / nfft
        reach = min(spec.chip_rate, 1.5 * spec.deviation_hz)
        bins = np.arange(int(np.floor((guess_hz - reach) / bin_hz)), int(np.ceil((guess_hz + reach) / bin_hz)) + 1)
        extra = min(max(2 * spec.preamble_pairs - spec.rx_preamble_chips, 0), 64)
        limits = dict(spec.limits)
        lo, hi = limits.get("deviation_hz") or (0.7 * spec.deviation_hz, 1.3 * spec.deviation_hz)

        def peaks(shift: int, devs: np.ndarray) -> list[tuple[float, float]]:
            """Per deviation in ``devs``, (height, frequency) of the summed chip spectra's peak;
            (-1, guess) when the chips lie out of the burst."""
            a1 = start + shift * sps
            ext = min(extra, int(a1 / sps) // 2 * 2) if a1 > 0 else 0  # whole preamble pairs
            chips = np.concatenate((np.resize(tpl.chips[:2], ext), tpl.chips))
            a0 = a1 - ext * sps
            first = np.round(a0 + np.arange(len(chips)) * sps).astype(np.int64)
            if first[0] < 0 or first[-1] + w > len(x) or len(chips) < 8:
                return [(-1.0, guess_hz)] * len(devs)
            i0, n = int(first[0]), int(first[-1]) + w - int(first[0])
            # the chips' frequency (in deviations) sample by sample, Gaussian-shaped where the mode is
            k = np.minimum(((np.arange(i0, i0 + n) - a0) / sps).astype(np.int64), len(chips) - 1)
            freq = chips[k]
            if spec.gaussian_bt is not None:
                from .modulate import gaussian_taps  # noqa: PLC0415

                freq = np.convolve(freq, gaussian_taps(spec.gaussian_bt, sps), mode="same")
            # each chip's own phase ramp (from its start) taken out, so that it adds up at the carrier:
            # the ramp per unit deviation, scaled for every deviation at once
            phase = np.cumsum(freq) * (2 * np.pi * sign / self.rate)
            idx = first[:, None] - i0 + np.arange(w)[None, :]
            ramp = phase[idx] - phase[idx[:, :1]]
            rows = x[i0:i0 + n][idx][None, :, :] * np.exp(-1j * devs[:, None, None] * ramp[None, :, :])
            # the zero-padded nfft-point spectrum of each chip at the searched bins only: a chip is a
            # few samples, so a DFT of those bins costs less than the FFT of every bin
            p = np.abs(rows @ dft) ** 2
            p = p.sum(axis=1)
            out = []
            for row in p:
                i = int(np.argmax(row))
                frac = 0.0
                if 0 < i < len(row) - 1:
                    den = row[i - 1] - 2 * row[i] + row[i + 1]
                    frac = 0.5 * (row[i - 1] - row[i + 1]) / den if den < 0 else 0.0
                out.append((float(row[i]), float((bins[i] + frac) * bin_hz)))
            return out

        dft = np.exp(-2j * np.pi * np.outer(np.arange(w), bins % nfft) / nfft)
        # the deviation on a grid over the mode's limits (a chip at the wrong deviation spreads over
        # two peaks, one per tone), then the template a chip early and late at that deviation
        grid = np.linspace(lo, hi, 7)
        best = max((pk + (dev,) for pk, dev in zip(peaks(0, grid), grid, strict=True)), key=lambda z: z[0])
        dev = np.array([best[2]])
        best = max((best[:2], peaks(-1, dev)[0], peaks(1, dev)[0]), key=lambda z: z[0])
        return best[1]

    def _long_preamble_carrier(self, x: np.ndarray, spec: ModeSpec, a0: int, sps: float, offset: float) -> float:
        """The carrier (Hz) from the whole preamble of a long-preamble mode (S1: 558 chips, a
        template holds 28): its 0101 chips repeat the waveform every two chips, so the lag of one
        period turns the carrier alone by 2 pi f 2T, a lag 2 x samples-per-chip times longer than
        one sample (the ambiguity of +-1/4T is resolved by the one-sample estimate ``offset``,
        taken over the same longer stretch). ``offset`` unchanged for a short preamble."""
        before = min(max(2 * spec.preamble_pairs - spec.rx_preamble_chips, 0), int(a0 / sps))
        if before + spec.rx_preamble_chips < 128:
            return offset
        pre = x[int(a0 - before * sps):int(a0 + spec.rx_preamble_chips * sps)]
        coarse = float(np.angle(np.vdot(pre[:-1], pre[1:])) * self.rate / (2 * np.pi))
        lag = int(round(2 * sps))
        turn = float(np.angle(np.vdot(pre[:-lag], pre[lag:])))
        step = 2 * np.pi * lag / self.rate  # radians per Hz
        return coarse + float(np.angle(np.exp(1j * (turn - coarse * step)))) / step

    def _preamble_clock(self, lock: _Lock, spec: ModeSpec) -> float:
        """Samples per chip from the whole preamble of a long-preamble mode (S1: 558 chips; the
        template's 46 leave the rate a percent off at low SNR, chips adrift over a frame): the
        tone output over its 0101 chips is a wave of period two chips, whose frequency the peak
        of its spectrum (8x zero-padded, within the mode's tolerance) gives. ``lock.sps`` for a short
        preamble."""
        sps, w = lock.sps, lock.w
        a0 = lock.pos - (w - 1) / 2
        before = min(max(2 * spec.preamble_pairs - spec.rx_preamble_chips, 0), int(a0 / sps))
        if before + spec.rx_preamble_chips < 128:
            return sps
        b0, b1 = int(a0 - before * sps), int(a0 + spec.rx_preamble_chips * sps)
        v = self._tones(lock.x[b0:b1], lock.sign * lock.offset, spec.deviation_hz, lock.sign, w)
        v = v - v.mean()
        nfft = sfft.next_fast_len(8 * len(v))  # bins an eighth of the spectrum's resolution apart
        power = np.abs(sfft.rfft(v, nfft)) ** 2
        reach = max(1.2 * spec.chip_rate_tolerance, 0.005) + abs(sps * spec.chip_rate / self.rate - 1)
        nominal = self.rate / spec.chip_rate
        k0 = max(int((1 - reach) / (2 * nominal) * nfft), 1)
        k1 = min(int((1 + reach) / (2 * nominal) * nfft) + 1, len(power) - 1)
        if k1 <= k0 + 2:
            return sps
        i = k0 + int(np.argmax(power[k0:k1]))
        if i in (k0, k1 - 1):
            return sps  # no peak inside the tolerance
        a, b, c = power[i - 1:i + 2]
        den = a - 2 * b + c
        frac = 0.5 * (a - c) / den if den < 0 else 0.0
        return float(nfft / (2 * (i + frac)))

    def _open_tones(self, lock: _Lock, spec: ModeSpec, t: np.ndarray, nominal_tones: bool = False) -> bool:
        """Chip decisions come from the two-tone matched filter around the measured carrier. The
        discriminator underestimates the deviation at low SNR, so the tone spacing is chosen on the
        sync template from a grid around the mode's nominal deviation; tones then run over the head
        (template + 4 bytes) only, the whole frame once the head is good. False when the template's
        amplitude on the tones is not positive.

        Gaussian shaping pulls each chip's mean frequency in from its neighbours, most in the
        alternating preamble (BT 0.5: to 0.66 of the deviation over N's template, 0.78 over random
        data): the grid picks the preamble's tones, which miss the data's chips at the nominal
        deviation (N 2.4 kcps format B at 11 dB: 70 % of frames against 89 %). With
        ``nominal_tones`` a Gaussian mode's tones sit at the nominal deviation times the data's
        factor instead; the grid still serves a transmitter far from the nominal deviation."""
        x, pos, sps, w, sign = lock.x, lock.pos, lock.sps, lock.w, lock.sign
        L = len(t)
        a0, a1 = max(int(pos) - w, 0), min(int(pos) + L + w, len(x))
        if nominal_tones and spec.gaussian_bt is not None:
            lock.dev = spec.deviation_hz * _isi_factor(spec.gaussian_bt, round(sps, 2), None)
        else:
            trials = spec.deviation_hz * np.array(_DEV_TRIALS)
            vt = self._tone_trials(x[a0:a1], sign * lock.offset, trials, sign, w)[:, int(pos) - a0:int(pos) - a0 + L]
            amps = (vt @ t[: vt.shape[1]]) / np.maximum(np.abs(vt).sum(axis=1), 1e-12)
            lock.dev = float(trials[int(np.argmax(amps))])
        lock.a0 = a0
        lock.tones_to(self, int(pos + L + (4 * spec.coding.chips_per_byte + 24) * sps + 2 * w))
        tv = lock.v[int(pos):int(pos) + L]
        lock.amp = float(np.dot(tv, t[: len(tv)]) / max(len(tv), 1))
        return lock.amp > 0

    @staticmethod
    def _settle_sync(lock: _Lock, tpl: _Template, start: float) -> int:
        """At low SNR the preamble part can pull the alignment a period off; settle it on the sync
        word alone, sampled on the more reliable tone output, within +-2 chips. Returns the shift in
        chips."""
        sps, w, v = lock.sps, lock.w, lock.v
        sync = 2.0 * np.array(tpl.chips[-tpl.sync_len:]) - 0.0
        shifts = np.arange(-2, 3)
        s0 = start + shifts * sps - tpl.sync_len * sps
        centres = s0[:, None] + np.arange(tpl.sync_len)[None, :] * sps + (sps + w) / 2 - 1
        scores = _interp_at(v, centres) @ sync
        return int(shifts[int(np.argmax(scores))])  # the first best, as -2 .. 2 are tried

    def _detect_format(self, lock: _Lock, search: _Search, start: float,
                       chips_locked: int) -> tuple[ModeSpec, str, _ChipTracker] | None:
        """Which mode and frame format the hit is: the sync chips after the searched ones decide
        (C: 0x54 then 0xCD for format A, 0x3D for B). The mode, format and a tracker on the first
        chip after the whole sync word; None when the search's own mode needs a match and none came."""
        tracker = _ChipTracker(lock.v, start, lock.sps, lock.w, 0.0, lock.amp, track_carrier=False, lock=lock,
                               steady=lock.timed)
        for spec in search.checks:
            matched = self._match_sync(lock, spec, start, chips_locked)
            if matched is not None:
                fmt, tracker, lock.sps = matched
                tracker.take(len(spec.syncs[fmt]) - len(spec.search_sync))
                return spec, fmt, tracker
        if search.must_check:
            return None
        return search.mode, "A", tracker

    def _match_sync(self, lock: _Lock, spec: ModeSpec, start: float,
                    chips_locked: int) -> tuple[str, _ChipTracker, float] | None:
        """Read the chips after the searched sync part and match them to ``spec``'s format sync
        words. The search estimated the chip rate within the searching mode's tolerance; the mode's
        nominal rate is tried as well. A sync word that repeats the searched part further on (C
        format B: 543D 543D) may have been locked on its repeat, so the earlier start is tried too
        (accepted only when the chips before it are the sync word's beginning). Exact matches are
        looked for first; then, at the start found, one wrong chip in 8 or more (the format words
        differ in more: C 0xCD / 0x3D in 4), which a weak signal (C at its lowest deviation,
        Gaussian shaped) needs."""
        sps = lock.sps
        head = spec.search_sync
        p = len(head)
        nominal = self.rate / spec.chip_rate
        rates = (sps, nominal) if abs(nominal / sps - 1) > 1e-3 else (sps,)
        backs = sorted({0} | {k for word in spec.syncs.values() for k in range(1, len(word) - p + 1)
                              if word[k:k + p] == head})
        for errors in (0, 1):
            for back in backs if errors == 0 else (0,):
                for trial_sps in rates:
                    found = self._sync_at(lock, spec, start, chips_locked, back, trial_sps, errors)
                    if found is not None:
                        return found
        return None

    def _sync_at(self, lock: _Lock, spec: ModeSpec, start: float, chips_locked: int, back: int, trial_sps: float,
                 errors: int) -> tuple[str, _ChipTracker, float] | None:
        """The format whose sync word reads at ``back`` chips before ``start`` on a clock of
        ``trial_sps``, with at most ``errors`` wrong chips after the searched part."""
        sps, w, amp, v = lock.sps, lock.w, lock.amp, lock.v
        head = spec.search_sync
        p = len(head)
        t0 = start + (trial_sps - sps) * chips_locked - back * trial_sps
        trial = _ChipTracker(v, t0, trial_sps, w, 0.0, amp, track_carrier=False, lock=lock, steady=lock.timed)
        for fmt, word in spec.syncs.items():
            rest = word[p:]
            if back and word[back:back + p] != head:
                continue
            if errors and len(rest) < 8:
                continue
            if sum(a != b for a, b in zip(_bits(trial.peek(len(rest))), rest, strict=True)) > errors:
                continue
            if back:
                # the chips before must be the sync word's beginning (a T sync after its
                # preamble reads 543D too, but is preceded by preamble, 5555)
                before = _ChipTracker(v, t0 - p * trial_sps, trial_sps, w, 0.0, amp, track_carrier=False)
                if _bits(before.peek(p)) != word[:p]:
                    continue
            return fmt, trial, trial_sps
        return None

    def _decode_blocks(self, lock: _Lock, spec: ModeSpec, fmt: str, tracker: _ChipTracker) -> FrameResult | None:
        """Head (4 bytes) -> L-field candidates -> chips for each -> block CRCs with repair: the first
        candidate whose blocks check out, else the first failure, else None (noise)."""
        coding = spec.coding
        cpb = coding.chips_per_byte
        data_start = tracker.position  # first chip after the whole sync word
        first = tracker.take(4 * cpb)
        if len(first) < 4 * cpb:
            return None
        head, head_violations = coding.soft_decode(first)
        # noise that happened to correlate with the sync word: 3-of-6 words that are no code word,
        # Manchester pairs with two equal chips (half of them in noise)
        if head_violations > coding.max_head_violations:
            return None
        sizes = self._length_candidates(head[0], coding.alternatives(first[:cpb]), fmt)
        if not sizes:
            return None
        # chips for the most likely L first; more only if another candidate needs them
        soft = first
        failure = None
        complete = None  # the first failure of a length the burst holds (a wrong L can claim more)
        for lval, n_bytes in sizes.items():
            # a length that cannot fit in the rest of the burst (by a margin no clock drift reaches)
            # is truncated without reading the chips up to the burst's end: in a long preamble (S)
            # every alignment of noise reads as some L
            room = len(lock.x) - tracker.position
            if (cpb * n_bytes - len(soft)) * tracker.sps <= 1.1 * room + 4 * tracker.sps:
                soft = self._extend(lock, tracker, soft, cpb * n_bytes)
            res = self._check_blocks(lock, spec, fmt, tracker, soft, data_start, lval, n_bytes)
            if res.crc_ok:
                return res
            failure = failure or res
            if complete is None and res.reason != "truncated":
                complete = res
        # reported when nothing decodes: the most likely length's failure ("truncated" there lets the
        # receiver carry the frame of a cut burst into the next one); the second reading below needs
        # a length the burst holds
        reported = failure
        failure = complete or failure
        # a clean head and a length that fits: noise gets no second reading. A coherent reading
        # (below) sees through twice the chip errors of the first: a head the first gate let
        # through gets one
        coherent = coding is MANCHESTER and spec.gaussian_bt is None
        clean = coding.max_head_violations if coherent else coding.max_head_violations // 2
        if failure is None or complete is None or head_violations > clean:
            return reported
        # Read the chips again on the straight clock that opens the eye most over the frame (the
        # chip loop follows noise at low SNR; a transmitter's crystal does not wander within a
        # frame), the L-field too
        # (a clock from a long preamble is better than the loop's mean and needs a narrower search)
        sps = lock.sps if lock.timed else tracker.sps_mean
        avail = int((len(lock.x) - data_start - 2 * lock.w) / sps) - 4
        n_chips = min(max(sizes.values()) * cpb, avail // cpb * cpb)
        drift = 0.3 if lock.timed else 1.5
        fitted = self._refit(lock, data_start, sps, n_chips, drift) if n_chips >= 4 * cpb else None
        if fitted is None:
            return reported
        again, moved, sps = fitted
        readings = [again]
        if coherent:
            # a Manchester bit is one known phase-continuous waveform of two chips: read coherently
            # first (about 1.5 dB better than two chips' tone envelopes)
            reading = self._coherent_manchester(lock, spec, data_start + moved, sps, again)
            readings = ([reading] if reading is not None else []) + readings
        for soft in readings:
            first_byte = coding.soft_decode(soft[:cpb])[0][0]
            for lval, n_bytes in self._length_candidates(first_byte, coding.alternatives(soft[:cpb]), fmt).items():
                if n_bytes * cpb <= len(soft):
                    res = self._check_blocks(lock, spec, fmt, tracker, soft, data_start + moved, lval, n_bytes)
                    if res.crc_ok:
                        return res
        return reported

    def _refit(self, lock: _Lock, data_start: float, sps: float, n_chips: int,
               drift_chips: float = 1.5) -> tuple[np.ndarray, float, float] | None:
        """Soft chips on the straight clock (first chip, chip period) that opens the eye most over
        the whole frame: the chip loop follows noise at low SNR, a transmitter's crystal does not
        wander within a frame. With how far (samples) that clock moved the first chip and its chip
        period (searched within ``drift_chips`` of ``sps`` at the frame's end); None when the burst
        ends before the frame does."""
        w = lock.w
        k = np.arange(n_chips, dtype=np.float64)
        base = data_start + (sps + w) / 2 - 1
        end = int(base + (n_chips + 4) * sps + 2)
        if end >= len(lock.x) or base - sps < 0:
            return None
        if end > lock.done_to:
            lock.tones_to(self, end)
        v = lock.v
        idx = np.arange(len(v), dtype=np.float64)

        def eye(p0: float, s: float, every: int) -> float:
            kk = k[::every]
            i = base + p0 + kk * s
            j = i.astype(np.int64)
            return float(np.abs(v[j] + (v[j + 1] - v[j]) * (i - j)).sum())

        best = (eye(0.0, sps, 1), 0.0, sps)
        # end drift in chips x start offset in chips, coarse (every 4th chip) then fine (every 2nd)
        for span_d, span_p, steps, every in ((drift_chips, 0.4, 7, 4), (drift_chips / 6, 0.1, 5, 2)):
            _, p_c, s_c = best
            best = (eye(p_c, s_c, every), p_c, s_c)
            for dd in np.linspace(-span_d, span_d, 2 * steps + 1):
                s_ = s_c + dd * sps / max(n_chips, 1)
                for pp in np.linspace(-span_p, span_p, 5):
                    val = eye(p_c + pp * sps, s_, every)
                    if val > best[0]:
                        best = (val, p_c + pp * sps, s_)
        _, p0, s = best
        return np.interp(base + p0 + k * s, idx, v), p0, s

    def _coherent_manchester(self, lock: _Lock, spec: ModeSpec, first_chip: float, sps: float,
                             chips: np.ndarray) -> np.ndarray | None:
        """Soft chips (-b/2, +b/2 per bit, b > 0 for a 1) from a coherent reading of a
        phase-continuous Manchester FSK frame whose first chip starts at sample ``first_chip``;
        ``chips`` is a noncoherent reading of it (decisions to start from).

        Each bit's two chips swing the phase out by 2 pi dev T and back, so every bit starts at the
        carrier's phase: a bit is one of two known waveforms. Taking the decided waveforms off the
        signal leaves the bare carrier, whose frequency an FFT of the whole frame finds to a few Hz
        (the preamble's estimate is kHz off at low SNR, radians per bit); the deviation and the
        clock are then settled on the frame's bit energy (one sample of timing is 2 pi dev / rate
        of phase), and each bit is read against the phase of its neighbours. None when the burst
        is too short."""
        x, rate, sign = lock.x, self.rate, lock.sign
        # as many bits as the burst holds with a chip to spare
        n_bits = min(len(chips) // 2, int((len(x) - first_chip - 5 * sps) / (2 * sps)))
        nominal_dev = spec.deviation_hz
        dev_range = dict(spec.limits).get("deviation_hz") or (0.7 * nominal_dev, 1.4 * nominal_dev)
        lo = int(first_chip) - 2
        hi = int(first_chip + 2 * n_bits * sps + 4 * sps)
        if n_bits < 8 or lo < 0 or hi >= len(x):
            return None
        t = np.arange(hi - lo, dtype=np.float64)
        y = x[lo:hi] * np.exp(-2j * np.pi * (sign * lock.offset / rate) * (t + lo))
        decided = np.where(chips[1:2 * n_bits:2] > chips[0:2 * n_bits:2], 1.0, -1.0)

        def template(tau: np.ndarray, s: float, dev: float) -> np.ndarray:
            """the phase of a 1 ``tau`` samples into its bit (bits of 2 ``s`` samples)"""
            return (-sign * 2 * np.pi * dev / rate) * np.minimum(tau, 2 * s - tau)

        def read(y: np.ndarray, c0: float, s: float, dev: float):
            """(r1, r0) per bit, the template phase of a 1 per sample, the bit of each sample and
            the first sample of each bit"""
            rel = (t - (c0 - lo)) / (2 * s)
            bit = np.floor(rel).astype(np.int64)
            starts = np.searchsorted(bit, np.arange(n_bits + 1))
            phase = template((rel - bit) * 2 * s, s, dev)
            ref = np.exp(-1j * phase)
            a, b = starts[0], starts[-1]
            r1 = np.add.reduceat((y * ref)[a:b], starts[:-1] - a)
            r0 = np.add.reduceat((y * np.conj(ref))[a:b], starts[:-1] - a)
            return r1, r0, phase, bit, a, b

        every = COHERENT_SEARCH_EVERY
        picked = np.arange(0, n_bits, every)
        span = np.arange(int(np.ceil(2 * sps * 1.05)) + 2)

        def energy(y: np.ndarray, c0: float, s: float, dev: float) -> float:
            """The decided bit energy of every ``every``-th bit (what the searches below compare:
            the same bits for every trial, spread over the whole frame)"""
            first = np.floor(c0 - lo + 2 * s * picked).astype(np.int64)
            idx = first[:, None] + span[None, :]
            tau = idx - (c0 - lo) - (2 * s) * picked[:, None]  # samples into its bit
            inside = (tau >= 0) & (tau < 2 * s) & (idx < len(y))
            yy = np.where(inside, y[np.minimum(idx, len(y) - 1)], 0)
            ref = np.exp(-1j * template(tau, s, dev))
            r1 = (yy * ref).sum(axis=1)
            r0 = (yy * np.conj(ref)).sum(axis=1)
            return float(np.maximum(np.abs(r1), np.abs(r0)).sum())

        def carrier(y: np.ndarray, c0: float, s: float, dev: float, d: np.ndarray) -> np.ndarray:
            """y turned by the carrier left once the decided waveforms are taken off"""
            _, _, phase, bit, a, b = read(y, c0, s, dev)
            u = y[a:b] * np.exp(1j * phase[a:b] * d[bit[a:b]])
            nfft = 1 << int(np.ceil(np.log2(4 * len(u))))
            p = np.abs(np.fft.fft(u, nfft)) ** 2
            i = int(np.argmax(p))
            pm, p0, pp = p[i - 1], p[i], p[(i + 1) % nfft]
            den = pm - 2 * p0 + pp
            frac = 0.5 * (pm - pp) / den if den < 0 else 0.0
            f = ((i + frac + nfft / 2) % nfft - nfft / 2) * rate / nfft
            return y * np.exp(-2j * np.pi * f / rate * t)

        c0, s = first_chip, sps
        y = carrier(y, c0, s, nominal_dev, decided)
        dev = max(np.arange(dev_range[0], dev_range[1] * 1.001, 0.03 * nominal_dev),
                  key=lambda d: energy(y, c0, s, d))
        for _ in range(2):
            dev = max((dev * f for f in (0.98, 0.99, 1.0, 1.01, 1.02)), key=lambda d: energy(y, c0, s, d))
            c0 = max((c0 + d for d in (-0.5, -0.25, 0.0, 0.25, 0.5)), key=lambda c: energy(y, c, s, dev))
            s = max((s + d / (2 * n_bits) for d in (-0.6, -0.3, 0.0, 0.3, 0.6)), key=lambda q: energy(y, c0, q, dev))
        r1, r0 = read(y, c0, s, dev)[:2]
        y = carrier(y, c0, s, dev, np.where(np.abs(r1) >= np.abs(r0), 1.0, -1.0))
        r1, r0 = read(y, c0, s, dev)[:2]
        # the bits' common phase from their neighbours' decided waveforms (not the bit itself)
        z = np.where(np.abs(r1) >= np.abs(r0), r1, r0)
        half = 16
        c = np.concatenate(([0], np.cumsum(z)))
        j = np.arange(n_bits)
        around = c[np.minimum(j + half + 1, n_bits)] - c[np.maximum(j - half, 0)] - z
        b = np.real((r1 - r0) * np.conj(around) / np.maximum(np.abs(around), 1e-30))
        out = np.empty(2 * n_bits)
        out[0::2] = -b / 2
        out[1::2] = b / 2
        return out

    def _extend(self, lock: _Lock, tracker: _ChipTracker, soft: np.ndarray, n_chips: int) -> np.ndarray:
        """Soft chips up to ``n_chips`` (fewer at the end of the burst), running the tones further first."""
        need = n_chips - len(soft)
        if need <= 0:
            return soft
        frame_end = int(tracker.position + (need + 8) * lock.sps + 2 * lock.w)
        if frame_end > lock.done_to:
            tracker.refresh(*lock.tones_to(self, frame_end))
        return np.concatenate((soft, tracker.take(need)))

    def _check_blocks(self, lock: _Lock, spec: ModeSpec, fmt: str, tracker: _ChipTracker, soft: np.ndarray,
                      data_start: float, lval: int, n_bytes: int) -> FrameResult:
        """The frame for one L-field value: decoded, block CRCs checked (repaired when they fail)."""
        coding = spec.coding
        n_chips = n_bytes * coding.chips_per_byte
        chip_rate = self.rate / tracker.sps_mean
        snr = 10 * np.log10(max(lock.amp * lock.amp / max(tracker.noise_var, 1e-12), 1e-9))
        common = dict(mode=spec.name, frame_format=fmt, position=data_start, sync_position=lock.pos,
                      sync_start=data_start - len(spec.syncs[fmt]) * self.rate / chip_rate, chip_rate_hz=chip_rate,
                      freq_offset_hz=lock.sign * lock.offset, deviation_hz=lock.dev, snr_db=float(snr),
                      violations=0, n_chips=n_chips, end_position=data_start + n_chips * lock.sps)
        if len(soft) < n_chips:
            return FrameResult(telegram=coding.soft_decode(soft)[0], crc_ok=False, reason="truncated", **common)
        raw, common["violations"] = coding.soft_decode(soft[:n_chips])
        decided_l = raw[0]
        raw = bytes([lval]) + raw[1:n_bytes]
        strip = mframe.strip_format_a if fmt == "A" else mframe.strip_format_b
        try:
            canonical, _ = strip(raw)
        except DecodeError as err:
            # flips are tried only under the L-field the chips decided: under every other guess a
            # repair would be one more chance of a false CRC match (a wrong frame delivered)
            repaired = repair_blocks(raw, fmt, *coding.alternatives(soft[:n_chips])) if lval == decided_l else None
            if repaired is None:
                return FrameResult(telegram=raw, crc_ok=False, reason=err.reason, **common)
            canonical, _ = strip(repaired)
            common["repaired"] = True
        return FrameResult(telegram=canonical, crc_ok=True, reason="ok", **common)

    @staticmethod
    def _length_candidates(first_byte: int, alternatives, fmt: str) -> dict[int, int]:
        """The L-field fixes the frame length but no CRC protects it by itself: besides the best
        decision, the values one or two unreliable decisions away; block 1's CRC decides. Maps each
        plausible L to its on-air size in bytes, most likely first."""
        sizes = {lv: onair_size(lv, fmt) for lv in _l_candidates(first_byte, *alternatives)}
        return {lv: n for lv, n in sizes.items() if n >= MIN_FRAME_BYTES}


class _ChipTracker:
    """Samples chips from the matched-filter output and follows timing and carrier drift."""

    def __init__(self, m: np.ndarray, start: float, sps: float, w: int, offset: float, dev: float, *,
                 track_carrier: bool = True, lock: _Lock | None = None, steady: bool = False):
        self.m = m
        self.lock = lock  # whose tone output m is: zero from lock.done_to on
        self.pos = start  # start of the next chip
        self.sps = sps
        self.w = w
        self.offset = offset
        self.dev = dev
        self._sps_sum = 0.0
        self._off_sum = 0.0
        self._count = 0
        self._err2 = 0.0
        self._prev = 0.0
        self._ko = 0.02 if track_carrier else 0.0
        # timing loop: phase and period gains per transition; a chip period measured on a long
        # preamble is kept, and the timing follows gently: at low SNR the loop would follow noise
        self._kp, self._kr = (0.05, 0.0) if steady else (0.15, 0.004)
        self._list: list[float] | None = None

    @property
    def position(self) -> float:
        return self.pos

    @property
    def sps_mean(self) -> float:
        return self._sps_sum / self._count if self._count else self.sps

    @property
    def offset_mean(self) -> float:
        return self._off_sum / self._count if self._count else self.offset

    @property
    def noise_var(self) -> float:
        return self._err2 / self._count if self._count else 0.0

    def peek(self, n: int) -> np.ndarray:
        """The next ``n`` soft chips on the current clock, without following it."""
        p = self.pos + np.arange(n) * self.sps
        return _interp_at(self.m, p + self.sps - 1 + (self.w - self.sps) / 2) - self.offset

    def refresh(self, start: int, end: int) -> None:
        """The waveform array was filled in place from ``start`` to ``end``: update the list copy."""
        if self._list is not None and end > start:
            self._list[start:end] = self.m[start:end].tolist()

    def take(self, n: int) -> np.ndarray:
        """The next ``n`` soft chips (fewer at the end of the waveform), following the timing: at
        each transition the window half a chip in tells how far the chip clock is off."""
        if self._list is None:
            # Python floats index far faster than numpy scalars; only the part from a little before
            # the clock on is read (the clock moves back less than a chip in all), and m is zero
            # past filled_to
            m_ = self.m
            lo = min(max(int(self.pos) - 2 * (self.w + int(self.sps)) - 4, 0), len(m_))
            hi = min(max(self.lock.done_to if self.lock is not None else len(m_), lo), len(m_))
            self._list = [0.0] * lo + m_[lo:hi].tolist() + [0.0] * (len(m_) - hi)
        m, out = self._list, [0.0] * n
        last = len(m) - 1
        sps, w, dev = self.sps, self.w, self.dev
        pos, off, prev = self.pos, self.offset, self._prev
        half = (w - sps) / 2
        kp, kr, ko = self._kp, self._kr, self._ko
        hw = w / 2 - 1
        lim = w / 2
        err2, sps_sum, off_sum = self._err2, self._sps_sum, self._off_sum
        done = n
        # the loop body is the whole cost of a frame's chips: locals only, no calls but int()
        for k in range(n):
            centre = pos + sps - 1 + half
            i = int(centre)
            if i + 1 >= last or i < 0:
                done = k
                break
            f = centre - i
            v = m[i] + (m[i + 1] - m[i]) * f - off
            out[k] = v
            # timing: at a transition the matched filter crosses the offset half a window into the chip
            if (prev < 0.0) if v > 0 else (prev > 0.0):
                bc = pos + hw
                j = int(bc)
                b = (m[j] + (m[j + 1] - m[j]) * (bc - j) if 0 <= j < last else 0.0) - off
                tau = (b / dev) * lim if prev > 0 else -((b / dev) * lim)
                if tau > lim:
                    tau = lim
                elif tau < -lim:
                    tau = -lim
                pos += kp * tau
                sps += kr * tau
                half = (w - sps) / 2  # the chip centre follows the period (take(a); take(b) == take(a + b))
            if ko:
                # carrier: decision-directed, slow
                off += ko * (v - (dev if v > 0 else -dev))
            e = (v if v >= 0 else -v) - dev
            err2 += e * e
            sps_sum += sps
            off_sum += off
            prev = v
            pos += sps
        if done < n:
            out = out[:done]
        self._err2, self._sps_sum, self._off_sum = err2, sps_sum, off_sum
        self._count += done
        self.pos, self.sps, self.offset, self._prev = pos, sps, off, prev
        return np.asarray(out, dtype=np.float64)


SEARCH_BATCH = 1 << 18  # chip rates searched at once: rates x FFT size at most this (bounded memory)
BANK_BYTES = 48 << 20  # template spectra kept per demodulator (the oldest FFT size goes first)
PEAK_WINDOWS_BUDGET = 4_000_000  # samples the sync search's peak test gathers at once (then row by row)
MIN_FRAME_BYTES = 12  # on air: the shortest frame a length field may announce (L = 9 and its CRCs)
MAX_REPAIR_FLIPS = 6  # 2^6 candidates per block: a false CRC match stays below 0.1 %


def block_spans(n_bytes: int, fmt: str) -> list[tuple[int, int]]:
    """(start, end) of each CRC-protected block in the on-air bytes (CRC = last 2 bytes)."""
    if fmt == "A":
        spans, pos = [(0, min(12, n_bytes))], 12
        while pos < n_bytes:
            end = min(pos + 18, n_bytes)
            spans.append((pos, end))
            pos = end
        return spans
    return [(0, n_bytes)] if n_bytes <= 128 else [(0, 128), (128, n_bytes)]


def repair_blocks(raw: bytes, fmt: str, byte_idx: np.ndarray, masks: np.ndarray, margins: np.ndarray):
    """Chase-style repair: in each block whose CRC fails, try every combination of flips of its
    least reliable decisions; None when some block cannot be repaired. The L-field is never touched
    (it fixed the frame length already)."""
    out = bytearray(raw)
    for a, b in block_spans(len(raw), fmt):
        block = out[a:b]
        if len(block) < 3 or crc16(block[:-2]) == int.from_bytes(block[-2:], "big"):
            continue
        sel = np.flatnonzero((byte_idx >= max(a, 1)) & (byte_idx < b))
        if len(sel) == 0:
            return None
        weakest = sel[np.argsort(margins[sel])[:MAX_REPAIR_FLIPS]]
        fixed = None
        for combo in range(1, 1 << len(weakest)):
            trial = bytearray(block)
            for bit, k in enumerate(weakest):
                if combo >> bit & 1:
                    trial[byte_idx[k] - a] ^= int(masks[k])
            if crc16(trial[:-2]) == int.from_bytes(trial[-2:], "big"):
                fixed = trial
                break
        if fixed is None:
            return None
        out[a:b] = fixed
    return bytes(out)


def _l_candidates(best: int, byte_idx: np.ndarray, masks: np.ndarray, margins: np.ndarray) -> list[int]:
    """L-field values in order of likelihood: the decision, then 1 and 2 of its weakest decisions
    flipped (at most 8 values)."""
    sel = np.flatnonzero(byte_idx == 0)
    weak = [int(masks[k]) for k in sel[np.argsort(margins[sel])][:4]]
    out = [best] + [best ^ m for m in weak]
    out += [best ^ weak[i] ^ weak[j] for i in range(min(3, len(weak))) for j in range(i + 1, min(3, len(weak)))]
    return list(dict.fromkeys(out))
