"""Frame demodulation inside a detected burst: (G)FSK discriminator, sync search over the mode's
chip-rate tolerance, chip timing and carrier tracking, soft decoding, block CRCs.

Per burst (a few thousand chips at most) the chip loop runs in Python; everything before it is
vectorised. Feed-forward first: carrier offset, deviation, chip rate and timing come from the
preamble + sync correlation; the loop then only follows small drifts.
"""

from __future__ import annotations

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

    def tones_to(self, demod: Demodulator, end: int) -> None:
        """Fill the tone output up to sample ``end`` (recomputed from a0, as one block)."""
        self.v[self.a0:end] = demod._tones(self.x[self.a0:end], self.sign * self.offset, self.dev, self.sign, self.w)
        self.done_to = end


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


def discriminator(x: np.ndarray, rate: float) -> np.ndarray:
    """Instantaneous frequency in Hz (length len(x); the first value repeats the second)."""
    d = np.angle(x[1:] * np.conj(x[:-1])) * (rate / (2 * np.pi))
    return np.concatenate((d[:1], d)) if len(d) else d


def _interp(m: np.ndarray, t: float) -> float:
    i = int(t)
    if i < 0 or i + 1 >= len(m):
        return 0.0
    f = t - i
    return m[i] * (1 - f) + m[i + 1] * f


class Demodulator:
    """Finds and decodes frames of the given modes in bursts of one channel."""

    def __init__(self, rate: float, modes: list[str] | list[ModeSpec], *, threshold: float | None = None,
                 rate_step: float = 0.015):
        self.rate = rate
        self.modes = [mode_named(m) if isinstance(m, str) else m for m in modes]
        self.rate_step = rate_step
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
            if search.taps is not None:
                look = self._tones(x, self._burst_carrier(x, search.mode), search.mode.deviation_hz, 1, w)
            for _score, pos, sps, sign, slip in self._candidates(look, tpl, sps0, search.factors, search.threshold,
                                                                 settle_on=m):
                # a candidate inside a decoded frame (or its sync template) is that frame seen again
                if any(r.sync_position - span * sps <= pos <= r.end_position for r in good):
                    continue
                res = self._decode(x, m if sign > 0 else -m, search, search.slip if slip else tpl, pos, sps, w,
                                   sign)
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

    def _candidates(self, m: np.ndarray, tpl: _Template, sps0: float, factors: np.ndarray, thr: float,
                    settle_on: np.ndarray | None = None):
        """(score, position, samples per chip, polarity, slipped) of sync-word candidates, best first.

        The search runs on the matched-filter output decimated to about 2 samples per chip, with
        one forward FFT per burst and two inverse FFTs per candidate chip rate: the template and its
        slipped form (one extra chip between preamble and sync word). ``settle_on`` (the
        discriminator's waveform when ``m`` is a tone output) settles each position last."""
        q = max(1, int(sps0 // 2))
        md = m[::q]
        n = len(md)
        c = np.concatenate(([0.0], np.cumsum(md)))
        c2 = np.concatenate(([0.0], np.cumsum(md * md)))
        lmax = int(np.floor(len(tpl.chips) * sps0 / q / factors.min())) + 1
        if lmax >= n:
            return []
        nfft = sfft.next_fast_len(n + lmax)
        spec = sfft.rfft(md, nfft)
        found = []
        slip = _slipped(tpl)
        for f in factors:
            sps = sps0 / f
            L = len(_upsample(tpl.chips, sps / q))
            s1 = c[L:] - c[:-L]
            s2 = c2[L:] - c2[:-L]
            energy = s2 - s1 * s1 / L
            # silent stretches (blanked, or zero padding at the end of a stream) must not score
            floor = 0.05 * max(float(np.median(energy)), 0.0) + 1e-12
            ls = max(1, int(np.floor(tpl.sync_len * sps / q)))
            for variant in (tpl, slip):
                t = _upsample(variant.chips, sps / q)
                corr = sfft.irfft(spec * sfft.rfft(t[::-1], nfft), nfft)[L - 1:n]
                corr = corr - s1 * t.mean()  # DC-free like the energy: a template of unequal chip counts
                norm = np.where(energy > floor, corr / np.sqrt(np.maximum(energy, floor) * L), 0.0)
                if np.abs(norm).max(initial=0.0) <= thr:
                    continue
                # Inside a long preamble the template's preamble part alone scores ~0.6 everywhere; the
                # sync word's own correlation (same alignment) tells the true position apart, so the
                # ranking uses both.
                # the sync word's own correlation, only where the full template passed the threshold
                over = np.flatnonzero(np.abs(norm) > thr)
                if len(over) > 20000:  # pathological input: keep the strongest
                    over = over[np.argsort(-np.abs(norm[over]))[:20000]]
                ts = t[L - ls:]
                win = np.lib.stride_tricks.sliding_window_view(md, ls)[over + L - ls]
                cs = win @ (ts - ts.mean())  # DC-free like e_s: an unbalanced sync part meets a carrier offset
                e_s = np.einsum("ij,ij->i", win, win) - win.sum(axis=1) ** 2 / ls
                norm_s = np.where(e_s > floor * ls / L, cs / np.sqrt(np.maximum(e_s, 1e-12) * ls), 0.0)
                score = np.zeros(len(norm))
                agree = np.sign(norm[over]) == np.sign(norm_s)
                score[over] = np.where(agree, 0.5 * (np.abs(norm[over]) + np.abs(norm_s)), 0.0)
                peaks = over[score[over] == centred_max(score, L | 1)[over]]
                best = peaks[np.argsort(-score[peaks])[:8]]
                found += [(float(score[i]), float(i * q), sps, 1 if norm[i] > 0 else -1, variant is slip)
                          for i in best]
        found.sort(key=lambda z: -z[0])
        out = []
        for cand in found:
            if len(out) == 8:
                break
            # one candidate per position, polarity and template: an inverted preamble one chip off can
            # outscore the true alignment, the decode decides
            if all(abs(cand[1] - o[1]) > len(tpl.chips) * cand[2] / 2 or cand[3:5] != o[3:5] for o in out):
                t_ = slip if cand[4] else tpl
                found_ = self._refine(m, t_, cand[:4], q)
                if settle_on is not None:
                    # a tone output's peak is flat on top: the discriminator's, sharper at a good SNR,
                    # settles the position within a few samples (no further, and not the chip rate: it
                    # wanders at a poor one)
                    found_ = (found_[0], self._refine(settle_on, t_, found_, 1)[1], found_[2], found_[3])
                out.append((*found_, cand[4]))
        # A normal frame reads as slipped one chip off nearly as well (and the reverse): where both
        # forms hold the same place, the normal one is decoded first
        def rank(i: int) -> float:
            c = out[i]
            if c[4]:
                near = [j for j, o in enumerate(out) if not o[4] and o[3] == c[3] and abs(o[1] - c[1]) <= 2.5 * c[2]]
                if near:
                    return near[0] + 0.5
            return float(i)

        return [out[i] for i in sorted(range(len(out)), key=rank)]

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
            top = -np.inf
            for p in range(int(pos) - q - 1, int(pos) + q + 2):
                if 0 <= p and p + L <= len(m):
                    seg = m[p:p + L]
                    v = sign * float(np.dot(seg - seg.mean(), t))
                    if v > top:
                        top = v
                        if v > best[0]:
                            best = (v, float(p), s_)
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
        ps = np.convolve(p, np.ones(smooth) / smooth, mode="same")
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
        f-dev, for a window ending at every sample (the optimal detector for orthogonal FSK)."""
        n = np.arange(len(x))
        base = x * np.exp(-2j * np.pi * offset * n / self.rate).astype(np.complex64)
        rot = np.exp(-2j * np.pi * dev * n / self.rate).astype(np.complex64)
        hi = base * rot
        lo = base * np.conj(rot)
        out = []
        for u in (hi, lo):
            c = np.concatenate(([0], np.cumsum(u, dtype=np.complex128)))
            s_ = np.empty(len(u), dtype=np.complex128)
            s_[w - 1:] = c[w:] - c[:-w]
            s_[: w - 1] = c[1:w]
            out.append(np.abs(s_))
        v = out[0] - out[1]
        return v if sign > 0 else -v

    def _decode(self, x: np.ndarray, m: np.ndarray, search: _Search, tpl: _Template, pos: float, sps: float,
                w: int, sign: int) -> FrameResult | None:
        """One sync candidate (on ``tpl``, the search's template or its slipped form) -> a frame (CRC
        good or the reason it is not), or None for no frame."""
        t = _upsample(tpl.chips, sps)  # the template's waveform at this candidate's chip rate
        pos = self._refine_position(m, t, pos)
        lock = self._estimate_carrier(x, m, search.mode, tpl, t, pos, sps, w, sign)
        if lock is None or not self._open_tones(lock, search.mode, t):
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
                if relock is not None and self._open_tones(relock, search.mode, t2):
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
        if sign < 0:
            offset = -offset  # m was negated for inverted polarity; keep offset in m's frame
        dev = float(np.dot(seg - offset, t[: len(seg)]) / len(seg))
        if not 0.2 * spec.deviation_hz <= dev <= 2.5 * spec.deviation_hz:
            return None
        return _Lock(x=x, v=np.zeros(len(x)), pos=pos, sps=sps, w=w, sign=sign, offset=offset, dev=dev)

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

    def _open_tones(self, lock: _Lock, spec: ModeSpec, t: np.ndarray) -> bool:
        """Chip decisions come from the two-tone matched filter around the measured carrier. The
        discriminator underestimates the deviation at low SNR, so the tone spacing is chosen on the
        sync template from a grid around the mode's nominal deviation; tones then run over the head
        (template + 4 bytes) only, the whole frame once the head is good. False when the template's
        amplitude on the tones is not positive."""
        x, pos, sps, w, sign = lock.x, lock.pos, lock.sps, lock.w, lock.sign
        L = len(t)
        a0, a1 = max(int(pos) - w, 0), min(int(pos) + L + w, len(x))
        best_amp, best_dev = -np.inf, spec.deviation_hz
        for k in (0.7, 0.8, 0.9, 1.0, 1.1, 1.25, 1.4):
            trial = spec.deviation_hz * k
            vt = self._tones(x[a0:a1], sign * lock.offset, trial, sign, w)[int(pos) - a0:int(pos) - a0 + L]
            ampt = float(np.dot(vt, t[: len(vt)])) / max(float(np.abs(vt).sum()), 1e-12)
            if ampt > best_amp:
                best_amp, best_dev = ampt, trial
        lock.dev, lock.a0 = best_dev, a0
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
        best_shift, best_score = 0, -np.inf
        for shift in (-2, -1, 0, 1, 2):
            s0 = start + shift * sps - tpl.sync_len * sps
            centres = s0 + np.arange(tpl.sync_len) * sps + (sps + w) / 2 - 1
            vals = np.array([_interp(v, c) for c in centres])
            score_ = float(np.dot(vals, sync))
            if score_ > best_score:
                best_score, best_shift = score_, shift
        return best_shift

    def _detect_format(self, lock: _Lock, search: _Search, start: float,
                       chips_locked: int) -> tuple[ModeSpec, str, _ChipTracker] | None:
        """Which mode and frame format the hit is: the sync chips after the searched ones decide
        (C: 0x54 then 0xCD for format A, 0x3D for B). The mode, format and a tracker on the first
        chip after the whole sync word; None when the search's own mode needs a match and none came."""
        tracker = _ChipTracker(lock.v, start, lock.sps, lock.w, 0.0, lock.amp, track_carrier=False,
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
        trial = _ChipTracker(v, t0, trial_sps, w, 0.0, amp, track_carrier=False, steady=lock.timed)
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
            soft = self._extend(lock, tracker, soft, cpb * n_bytes)
            res = self._check_blocks(lock, spec, fmt, tracker, soft, data_start, lval, n_bytes)
            if res.crc_ok:
                return res
            failure = failure or res
            if complete is None and res.reason != "truncated":
                complete = res
        failure = complete or failure
        # a clean head and a length that fits: noise gets no second reading. A coherent reading
        # (below) sees through twice the chip errors of the first: a head the first gate let
        # through gets one
        coherent = coding is MANCHESTER and spec.gaussian_bt is None
        clean = coding.max_head_violations if coherent else coding.max_head_violations // 2
        if failure is None or complete is None or head_violations > clean:
            return failure
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
            return failure
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
        return failure

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

        def read(y: np.ndarray, c0: float, s: float, dev: float):
            """(r1, r0) per bit, the template phase of a 1 per sample, the bit of each sample and
            the first sample of each bit"""
            rel = (t - (c0 - lo)) / (2 * s)
            bit = np.floor(rel).astype(np.int64)
            starts = np.searchsorted(bit, np.arange(n_bits + 1))
            tau = (rel - bit) * 2 * s
            phase = (-sign * 2 * np.pi * dev / rate) * np.minimum(tau, 2 * s - tau)
            ref = np.exp(-1j * phase)
            a, b = starts[0], starts[-1]
            r1 = np.add.reduceat((y * ref)[a:b], starts[:-1] - a)
            r0 = np.add.reduceat((y * np.conj(ref))[a:b], starts[:-1] - a)
            return r1, r0, phase, bit, a, b

        def energy(y: np.ndarray, c0: float, s: float, dev: float) -> float:
            r1, r0 = read(y, c0, s, dev)[:2]
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
            lock.tones_to(self, frame_end)
            tracker.refresh()
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
        raw = bytes([lval]) + raw[1:n_bytes]
        strip = mframe.strip_format_a if fmt == "A" else mframe.strip_format_b
        try:
            canonical, _ = strip(raw)
        except DecodeError as err:
            repaired = repair_blocks(raw, fmt, *coding.alternatives(soft[:n_chips]))
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
        return {lv: n for lv, n in sizes.items() if n >= 12}


class _ChipTracker:
    """Samples chips from the matched-filter output and follows timing and carrier drift."""

    def __init__(self, m: np.ndarray, start: float, sps: float, w: int, offset: float, dev: float, *,
                 track_carrier: bool = True, steady: bool = False):
        self.m = m
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
        # a chip period measured on a long preamble is kept, and the timing follows gently: at low
        # SNR the loop would follow noise
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
        out = []
        p = self.pos
        for _ in range(n):
            v = _interp(self.m, p + self.sps - 1 + (self.w - self.sps) / 2) - self.offset
            out.append(v)
            p += self.sps
        return np.array(out)

    def refresh(self) -> None:
        """The waveform array was extended in place: drop the list copy."""
        self._list = None

    def take(self, n: int) -> np.ndarray:
        if self._list is None:
            self._list = self.m.tolist()  # Python floats index far faster than numpy scalars
        m, out = self._list, [0.0] * n
        last = len(m) - 1
        sps, w, dev = self.sps, self.w, self.dev
        pos, off, prev = self.pos, self.offset, self._prev
        half = (w - sps) / 2
        kp, kr, ko = self._kp, self._kr, self._ko
        hw = w / 2 - 1
        for k in range(n):
            centre = pos + sps - 1 + half
            i = int(centre)
            if i + 1 >= last or i < 0:
                out = out[:k]
                break
            f = centre - i
            v = m[i] + (m[i + 1] - m[i]) * f - off
            out[k] = v
            s = 1.0 if v > 0 else -1.0
            # timing: at a transition the matched filter crosses the offset half a window into the chip
            if prev * s < 0:
                bc = pos + hw
                j = int(bc)
                b = (m[j] + (m[j + 1] - m[j]) * (bc - j) if 0 <= j < last else 0.0) - off
                tau = (b / dev) * (w / 2) * (1.0 if prev > 0 else -1.0)
                tau = max(-w / 2, min(w / 2, tau))
                pos += kp * tau
                sps += kr * tau
            # carrier: decision-directed, slow
            off += ko * (v - s * dev)
            self._err2 += (abs(v) - dev) ** 2
            self._sps_sum += sps
            self._off_sum += off
            self._count += 1
            prev = v
            pos += sps
        self.pos, self.sps, self.offset, self._prev = pos, sps, off, prev
        return np.asarray(out, dtype=np.float64)


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
