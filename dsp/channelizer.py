"""FFT overlap-save channeliser: one FFT per block serves every wanted channel.

For each block of N = D * Nout input samples, the spectrum is multiplied by a low-pass response
shifted to the channel and only the Nout bins around the channel are inverse-transformed: that is
filtering, mixing to baseband and decimation by D in one step. Blocks are aligned to absolute
sample indices and carry their mixing phase, so the output is bit-identical for any chunking of
the input.

Channels of another rate class (a narrow mode beside the wide ones: R2's ten 48 ksps channels in
an 868 MHz capture) can be cut from the same spectra when their decimation divides N (``shared``):
each class has its own filter, decimation and Nout, and only the overlap grows to the longest
filter. That costs a few percent of the forward FFT instead of a second full-rate FFT.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from . import fastfft

OUT_RATE_TARGET = 400e3
FFT_BATCH = 128  # blocks transformed at a time (bounds the spectrum buffer; smaller batches measured slower)
DC_SPAN_S = 0.05  # the tuner's DC level is the mean over this much of the past (Channelizer._remove_dc)
DC_LOUD_RATIO = 1.3  # a piece whose power exceeds the span's quietest by this holds a burst: its mean is left out
# of the DC level (noise pieces of ~500 samples stay within ~15 % of each other)
DC_PIECE = 480  # samples per stretch of that test (a block's new samples cut into equal pieces of about this)
PHASE_ALIGN_MAX = 1 / 64  # overlap (fraction of N) worth adding so that no block needs a mixing phase


@dataclass(frozen=True, slots=True)
class Channel:
    name: str
    freq_hz: float
    offset_hz: float  # realised offset from the capture centre (integer FFT bin)
    bin: int


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class RateClass:
    """Channels cut at one rate from a channeliser's spectra: output sample k of a channel
    corresponds to input sample k * decimation (+ ``delay``, the filter delay in input samples).
    ``n_fft`` and ``hop`` are the owning channeliser's block size and block step."""

    decimation: int
    out_rate: float
    delay: float
    n_out: int
    n_fft: int
    hop: int
    channels: tuple[Channel, ...]
    owner: Channelizer
    shared: bool = True  # cut from another class's spectra (the owner's process() returns them)


def shared_decimation(n_fft: int, sample_rate_hz: float, out_rate_target: float) -> int | None:
    """The decimation for a class of rate ``out_rate_target`` cut from spectra of ``n_fft`` points:
    the divisor of ``n_fft`` nearest ``sample_rate_hz / out_rate_target`` within 20 % (a rate
    at least 0.8 times the target), None when there is none."""
    ratio = sample_rate_hz / out_rate_target
    best = None
    for d in range(max(1, int(ratio * 0.8)), int(ratio * 1.2) + 1):
        if n_fft % d == 0 and n_fft // d >= 16 and (best is None or abs(d - ratio) < abs(best - ratio)):
            best = d
    return best


class _Cut:
    """One rate class's filter and channels inside a channeliser."""

    def __init__(self, fs: float, n_fft: int, decimation: int, center_freq_hz: float, channels: dict[str, float],
                 passband_hz: float):
        self.decimation = decimation
        self.out_rate = fs / decimation
        self.n_out = n_fft // decimation
        self.cutoff = min(passband_hz, 0.45 * self.out_rate)
        transition = 0.5 * self.out_rate - self.cutoff
        self.taps = kaiser_lowpass(self.cutoff + transition / 2, transition, fs, max_taps=n_fft // 4 | 1)
        self.delay = (len(self.taps) - 1) / 2  # input samples
        h = np.zeros(n_fft)
        h[:len(self.taps)] = self.taps
        h = np.fft.fft(h).astype(np.complex64)
        self.channels: list[Channel] = []
        half = fs / 2
        for name, freq in channels.items():
            off = freq - center_freq_hz
            if abs(off) > half - self.cutoff:
                raise ValueError(f"channel {name} at {freq / 1e6:.3f} MHz lies outside the captured band "
                                 f"{(center_freq_hz - half) / 1e6:.3f}-{(center_freq_hz + half) / 1e6:.3f} MHz")
            k = int(round(off / fs * n_fft))
            self.channels.append(Channel(name, freq, k * fs / n_fft, k))
        nout = self.n_out
        # The Nout bins around a channel go to the inverse FFT rotated so that the channel's own bin
        # lands on bin 0 (baseband without a further mix): up to four contiguous pieces of the
        # spectrum, each multiplied by its part of the filter straight into place.
        self.pieces = [_pieces(c.bin, nout, n_fft) for c in self.channels]
        rel = np.fft.ifftshift(np.arange(-nout // 2, nout // 2))  # IFFT position -> bin offset
        self.hsel = h[rel % n_fft] / np.float32(decimation)  # the low-pass response, the same for every channel
        self.bins = np.array([c.bin for c in self.channels], dtype=np.int64)
        self.sel = np.empty((0, nout), dtype=np.complex64)


class Channelizer:
    """Stateful block: ``process(samples) -> {name: complex64 baseband}``; output sample k of a
    channel corresponds to input sample k * decimation (+ the filter delay, reported). ``shared``:
    further rate classes ``(channels, out_rate_target, passband_hz)`` cut from the same spectra
    (see ``shared_decimation``; their outputs come from this ``process`` too, their figures from
    ``classes[1:]``)."""

    def __init__(self, sample_rate_hz: float, center_freq_hz: float, channels: dict[str, float], *,
                 out_rate_target: float = OUT_RATE_TARGET, passband_hz: float = 175e3,
                 shared: tuple[tuple[dict[str, float], float, float], ...] = ()):
        self.fs = float(sample_rate_hz)
        self.decimation = max(1, int(round(self.fs / out_rate_target)))
        self.out_rate = self.fs / self.decimation
        self.n_fft = self.block_size(self.fs, out_rate_target)
        self.n_out = self.n_fft // self.decimation
        cuts = [_Cut(self.fs, self.n_fft, self.decimation, center_freq_hz, channels, passband_hz)]
        for chans, rate, passband in shared:
            d = shared_decimation(self.n_fft, self.fs, rate)
            if d is None:
                raise ValueError(f"a {rate / 1e3:g} ksps class cannot share {self.n_fft}-point spectra at "
                                 f"{self.fs / 1e6:g} Msps (no decimation near {self.fs / rate:.1f} divides it)")
            cuts.append(_Cut(self.fs, self.n_fft, d, center_freq_hz, chans, passband))
        self._cuts = cuts
        self.delay = cuts[0].delay
        self.channels: list[Channel] = [c for cut in cuts for c in cut.channels]
        # the overlap holds the longest filter, on the grid of every decimation; when a little more
        # overlap makes every block start a multiple of N / gcd(N, bin) for the first class's
        # channels, their blocks need no mixing phase (a copy instead of a multiplication)
        step = math.lcm(*(cut.decimation for cut in cuts))
        need = max(len(cut.taps) for cut in cuts) - 1
        overlap = -(-need // step) * step
        phase_step = math.lcm(step, *(self.n_fft // math.gcd(self.n_fft, c.bin) for c in cuts[0].channels))
        aligned = -(-need // phase_step) * phase_step
        self.overlap = aligned if aligned - overlap <= PHASE_ALIGN_MAX * self.n_fft else overlap
        self.hop = self.n_fft - self.overlap
        self.grid_decimation = step  # input samples between possible starts of every class's output grid
        self._dc_blocks = max(1, int(round(DC_SPAN_S * self.fs / self.hop)))
        # bin 0 (where the tuner's DC lies) matters only to a channel whose bins include it
        self._uses_dc = any(sl.start == 0 for cut in cuts for pieces in cut.pieces for sl, _ in pieces)
        self._dc_pieces = max(1, round(self.hop / DC_PIECE))  # pieces of each block's new samples (the DC test)
        self._dc_piece_len = self.hop // self._dc_pieces
        # the mixing phase of a block starting at absolute index s is exp(-2j pi bin s / N): a table
        self._phase = np.exp(-2j * np.pi * np.arange(self.n_fft) / self.n_fft).astype(np.complex64)
        self.classes: list[RateClass] = [
            RateClass(decimation=cut.decimation, out_rate=cut.out_rate, delay=cut.delay, n_out=cut.n_out,
                      n_fft=self.n_fft, hop=self.hop, channels=tuple(cut.channels), owner=self, shared=i > 0)
            for i, cut in enumerate(cuts)]
        self.reset()

    @staticmethod
    def block_size(sample_rate_hz: float, out_rate_target: float) -> int:
        """N, the FFT size of a channeliser for these rates: the decimation times 1024 output bins
        (512 from 6 Msps on)."""
        return max(1, int(round(float(sample_rate_hz) / out_rate_target))) * (1024 if sample_rate_hz < 6e6 else 512)

    def reset(self, start: int = 0, *, dc_quiet_blocks: int = 0) -> None:
        """Start afresh with input sample ``start`` (absolute index: it sets the mixing phase).
        ``dc_quiet_blocks``: the input begins with this many blocks of noise (an activity gate's
        region): the DC level is their mean, held for the rest of the run, so a burst tuned onto a
        channel keeps all of its own mean."""
        # the input buffer lives on from call to call (fresh pages cost more than the copy into it);
        # its first _have samples are the overlap tail, zeros before the start
        self._in = np.zeros(max(self.overlap, 1 << 16), dtype=np.complex64)
        self._have = self.overlap
        self._consumed = start - self.overlap  # absolute index of _in[0]
        k = self._dc_blocks
        self._dc_hist = np.zeros(k - 1, dtype=np.complex128)  # the last k - 1 block means, zeros before the start
        self._dc_count = 0  # block means seen in this segment
        p = self._dc_pieces
        self._dc_energy_hist = np.full(p * (k - 1), np.inf)  # the pieces of the last k - 1 blocks: mean powers
        self._dc_piece_hist = np.zeros(p * (k - 1), dtype=np.complex128)  # (inf before the start), means
        self._dc_quiet = dc_quiet_blocks
        self._dc_quiet_sum = 0j  # the sum of the quiet blocks' means, then their mean
        self._spec_buf = np.empty((0, self.n_fft), dtype=np.complex64)

    def _remove_dc(self, spec: np.ndarray, new: np.ndarray) -> None:
        """Take the tuner's DC level (and its slow drift) out of bin 0 of every block, in place.

        A block's bin 0 is its mean times N: the DC offset is exactly there, but so is a signal's own
        mean over the block, which a signal tuned onto the channel needs (zeroing bins 0 and +-1
        cost 1.5-1.9 dB there). The level removed comes from the last ``DC_SPAN_S`` (this block and
        those before it in the segment), so a constant or drifting offset goes. After an activity
        gate's quiet start (``reset(dc_quiet_blocks=)``) it is the quiet blocks' mean, held. Without
        one it is the mean over the span's quiet pieces (``DC_PIECE`` samples whose power stays
        within ``DC_LOUD_RATIO`` of the quietest, and not next to a louder one), so a burst does
        not pull it: a C1 preamble's mean is most of its amplitude. Each level is computed from the
        same numbers in the same order whatever the chunking, and the memory is finite, so a run
        started a little earlier gives the same levels (decode --jobs relies on it)."""
        k = self._dc_blocks
        n = len(spec)
        means = (spec[:, 0] / np.float32(self.n_fft)).astype(np.complex128)
        hist = np.concatenate((self._dc_hist, means))  # k - 1 earlier means (zeros before the segment) + these
        if self._dc_quiet:
            # sums of k terms (zeros before the segment) computed afresh per block, each as one
            # contiguous row: the same additions in the same order whatever the chunking
            win = np.ascontiguousarray(sliding_window_view(hist, k))
            count = np.minimum(np.arange(self._dc_count + 1, self._dc_count + n + 1), k)
            level = win.sum(axis=1) / count
            # the quiet blocks' mean (summed block by block, in order), held from the block after them
            first = self._dc_count
            for i in range(max(0, min(n, self._dc_quiet - first))):
                self._dc_quiet_sum += complex(means[i])
            held = np.arange(first, first + n) >= self._dc_quiet
            if held.any():
                level[held] = self._dc_quiet_sum / self._dc_quiet
        else:
            # no gate tells where bursts are: the block's new samples in pieces of about DC_PIECE; a
            # piece whose power about the DC level rises well above the quietest piece's holds (part
            # of) a burst, whose own mean the level must not take in (power about the level, not
            # variance: a preamble's power lies largely in its mean). The level is the mean of the
            # quiet pieces' means, found twice: first with the power about zero, then about that
            # first level. A steady signal filling the span is all quiet, treated as before.
            p, m = self._dc_pieces, self._dc_piece_len
            x = new[:, : p * m].reshape(n, p, m)
            f = x.view(np.float32)
            # (single-precision sums of ~500 terms: ample for this test, and a third of the cost)
            energy = np.einsum("ijk,ijk->ij", f, f).reshape(-1).astype(np.float64) / m
            ehist = np.concatenate((self._dc_energy_hist, energy))
            mhist = np.concatenate((self._dc_piece_hist, x.sum(axis=2).reshape(-1).astype(np.complex128) / m))
            ewin = sliding_window_view(ehist, k * p)[::p]  # inf before the start
            mwin = np.ascontiguousarray(sliding_window_view(mhist, k * p)[::p])
            level = _quiet_mean(ewin, mwin)
            power = ewin - 2 * (mwin * level.conj()[:, None]).real + (level.real ** 2 + level.imag ** 2)[:, None]
            level = _quiet_mean(power, mwin)
            self._dc_energy_hist = ehist[n * p:]
            self._dc_piece_hist = mhist[n * p:]
        self._dc_hist = hist[n:]
        self._dc_count += n
        spec[:, 0] -= (level * self.n_fft).astype(np.complex64)

    def process(self, samples: np.ndarray | list[np.ndarray]) -> dict[str, np.ndarray]:
        """The channels' new output samples; ``samples``: an array, or consecutive pieces of one."""
        parts = [np.asarray(p, dtype=np.complex64) for p in samples] if isinstance(samples, list) else \
            [np.asarray(samples, dtype=np.complex64)]
        need = self._have + sum(len(p) for p in parts)
        if len(self._in) < need:
            grown = np.empty(max(need, 2 * len(self._in)), dtype=np.complex64)
            grown[: self._have] = self._in[: self._have]
            self._in = grown
        at = self._have
        for p in parts:
            self._in[at:at + len(p)] = p
            at += len(p)
        buf = self._in[:need]
        nblocks = (need - self.overlap) // self.hop
        if nblocks <= 0:
            self._have = need
            return {c.name: np.zeros(0, dtype=np.complex64) for c in self.channels}
        used = nblocks * self.hop
        blocks = sliding_window_view(buf[: used + self.overlap], self.n_fft)[:: self.hop][:nblocks]
        for cut in self._cuts:
            if len(cut.sel) < len(cut.channels) * nblocks:
                cut.sel = np.empty((len(cut.channels) * nblocks, cut.n_out), dtype=np.complex64)
        if len(self._spec_buf) < min(nblocks, FFT_BATCH):
            self._spec_buf = np.empty((min(nblocks, FFT_BATCH), self.n_fft), dtype=np.complex64)
        for g in range(0, nblocks, FFT_BATCH):
            m = min(FFT_BATCH, nblocks - g)
            spec = fastfft.fft(blocks[g:g + m], axis=1, out=self._spec_buf[:m])  # complex64 in and out
            if self._uses_dc:
                self._remove_dc(spec, blocks[g:g + m, self.overlap:])
            for cut in self._cuts:  # every channel's filtered bins
                sel = cut.sel[: len(cut.channels) * nblocks].reshape(len(cut.channels), nblocks, cut.n_out)
                for i, pieces in enumerate(cut.pieces):
                    for src, dst in pieces:
                        np.multiply(spec[:, src], cut.hsel[dst], out=sel[i, g:g + m, dst])
        starts = self._consumed + self.hop * np.arange(nblocks)  # absolute index of each block's first sample
        out = {}
        for cut in self._cuts:
            nch = len(cut.channels)
            y = fastfft.ifft(cut.sel[: nch * nblocks], axis=1, overwrite_x=True).reshape(nch, nblocks, cut.n_out)
            # the mixing phase of each block start, so that blocks join without phase jumps
            idx = (cut.bins[:, None] * starts[None, :]) % self.n_fft
            skip = self.overlap // cut.decimation
            o = np.empty((nch, nblocks, cut.n_out - skip), dtype=np.complex64)
            if idx.any():
                np.multiply(y[:, :, skip:], self._phase[idx][:, :, None], out=o)
            else:
                o[...] = y[:, :, skip:]
            out.update((c.name, o[i].reshape(-1)) for i, c in enumerate(cut.channels))
        rest = need - used
        self._in[:rest] = buf[used:].copy()
        self._have = rest
        self._consumed += used
        return out


def _quiet_mean(power: np.ndarray, means: np.ndarray) -> np.ndarray:
    """Per row: the mean of ``means`` over the quiet pieces, those whose ``power`` stays within
    DC_LOUD_RATIO of the row's quietest (inf: no piece) and that are not next to a louder one (a
    burst's first and last piece may hold too little of it to stand out); when that leaves none,
    the quietest piece."""
    floor = power.min(axis=1, keepdims=True)
    quiet = power <= np.maximum(floor * DC_LOUD_RATIO, floor)
    loud = ~quiet & np.isfinite(power)
    quiet[:, :-1] &= ~loud[:, 1:]
    quiet[:, 1:] &= ~loud[:, :-1]
    none = ~quiet.any(axis=1)
    quiet[none, power[none].argmin(axis=1)] = True
    return np.where(quiet, means, 0).sum(axis=1) / quiet.sum(axis=1)


def _pieces(center: int, nout: int, n_fft: int) -> list[tuple[slice, slice]]:
    """(spectrum slice, inverse-FFT slice) pairs that put bins ``center - nout/2 .. center + nout/2 - 1``
    (modulo ``n_fft``) at inverse-FFT positions ``k mod nout`` of their offset k from ``center``."""
    out = []
    for dst_lo, off_lo, n in ((0, 0, nout // 2), (nout // 2, -nout // 2, nout // 2)):
        src = (center + off_lo) % n_fft
        while n:
            take = min(n, n_fft - src)
            out.append((slice(src, src + take), slice(dst_lo, dst_lo + take)))
            dst_lo, src, n = dst_lo + take, 0, n - take
    return out


def kaiser_lowpass(cutoff_hz: float, transition_hz: float, fs: float, *, atten_db: float = 60.0,
                   max_taps: int = 4097) -> np.ndarray:
    """Windowed-sinc low-pass (Kaiser window; length and beta from Kaiser's design formulas)."""
    width = 2 * transition_hz / fs  # as a fraction of Nyquist
    numtaps = int(np.ceil((atten_db - 7.95) / (2.285 * np.pi * width))) + 1
    numtaps = min(numtaps | 1, max_taps)
    if atten_db > 50:
        beta = 0.1102 * (atten_db - 8.7)
    elif atten_db > 21:
        beta = 0.5842 * (atten_db - 21) ** 0.4 + 0.07886 * (atten_db - 21)
    else:
        beta = 0.0
    n = np.arange(numtaps) - (numtaps - 1) / 2
    h = 2 * cutoff_hz / fs * np.sinc(2 * cutoff_hz / fs * n) * np.kaiser(numtaps, beta)
    return h / h.sum()
