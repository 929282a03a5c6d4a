"""FFT overlap-save channeliser: one FFT per block serves every wanted channel.

For each block of N = D * Nout input samples, the spectrum is multiplied by a low-pass response
shifted to the channel and only the Nout bins around the channel are inverse-transformed: that is
filtering, mixing to baseband and decimation by D in one step. Blocks are aligned to absolute
sample indices and carry their mixing phase, so the output is bit-identical for any chunking of
the input. Each channel also reports its power per output sub-block (the energy gate).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from . import fastfft

OUT_RATE_TARGET = 400e3
DC_SPAN_S = 0.05  # the tuner's DC level is the mean over this much of the past (Channelizer._remove_dc)


@dataclass(frozen=True, slots=True)
class Channel:
    name: str
    freq_hz: float
    offset_hz: float  # realised offset from the capture centre (integer FFT bin)
    bin: int


class Channelizer:
    """Stateful block: ``process(samples) -> {name: complex64 baseband}``; output sample k of a
    channel corresponds to input sample k * decimation (+ the filter delay, reported)."""

    def __init__(self, sample_rate_hz: float, center_freq_hz: float, channels: dict[str, float], *,
                 out_rate_target: float = OUT_RATE_TARGET, passband_hz: float = 175e3):
        self.fs = float(sample_rate_hz)
        self.decimation = max(1, int(round(self.fs / out_rate_target)))
        self.out_rate = self.fs / self.decimation
        nout = 1024 if self.fs < 6e6 else 512
        self.n_fft = self.decimation * nout
        self.n_out = nout
        cutoff = min(passband_hz, 0.45 * self.out_rate)
        transition = 0.5 * self.out_rate - cutoff
        taps = kaiser_lowpass(cutoff + transition / 2, transition, self.fs, max_taps=self.n_fft // 4 | 1)
        numtaps = len(taps)
        overlap = numtaps - 1
        self.overlap = -(-overlap // self.decimation) * self.decimation
        self.hop = self.n_fft - self.overlap
        self._dc_blocks = max(1, int(round(DC_SPAN_S * self.fs / self.hop)))
        self.delay = (numtaps - 1) / 2  # input samples
        h = np.zeros(self.n_fft)
        h[:numtaps] = taps
        self._h = np.fft.fft(h).astype(np.complex64)
        self.channels: list[Channel] = []
        half = self.fs / 2
        for name, freq in channels.items():
            off = freq - center_freq_hz
            if abs(off) > half - cutoff:
                raise ValueError(f"channel {name} at {freq / 1e6:.3f} MHz lies outside the captured band "
                                 f"{(center_freq_hz - half) / 1e6:.3f}-{(center_freq_hz + half) / 1e6:.3f} MHz")
            k = int(round(off / self.fs * self.n_fft))
            self.channels.append(Channel(name, freq, k * self.fs / self.n_fft, k))
        # The Nout bins around a channel are taken as one contiguous slice starting half a band below
        # it (no gather); inverse-transforming from there mixes by Nout/2 bins too much, which the
        # per-sample factor (-1)^n undoes (folded into the block phase correction).
        rel = np.arange(-nout // 2, nout // 2)
        self._lo = {c.name: c.bin - nout // 2 for c in self.channels}
        self._hsel = {c.name: self._h[rel % self.n_fft] / np.float32(self.decimation) for c in self.channels}
        self._alt = np.where(np.arange(nout) % 2, -1, 1).astype(np.complex64)[self.overlap // self.decimation:]
        # the mixing phase of a block starting at absolute index s is exp(-2j pi bin s / N): a table
        self._phase = np.exp(-2j * np.pi * np.arange(self.n_fft) / self.n_fft).astype(np.complex64)
        self.reset()

    def reset(self, start: int = 0) -> None:
        """Start afresh with input sample ``start`` (absolute index: it sets the mixing phase)."""
        self._buf = np.zeros(self.overlap, dtype=np.complex64)  # the overlap tail, zeros before the start
        self._consumed = start - self.overlap  # absolute index of _buf[0]
        self._dc_hist = np.zeros(0, dtype=np.complex128)  # the last block means (at most DC span - 1)
        self._spec_buf = np.empty((0, self.n_fft), dtype=np.complex64)
        self._sel_buf = np.empty((0, self.n_out), dtype=np.complex64)

    def _remove_dc(self, spec: np.ndarray) -> None:
        """Take the tuner's DC level (and its slow drift) out of bin 0 of every block, in place.

        A block's bin 0 is its mean times N: the DC offset is exactly there, but so is a signal's own
        mean over the block, which a signal tuned onto the channel needs (zeroing bins 0 and +-1
        cost 1.5-1.9 dB there). The level removed is the average of the block means over the last
        ``DC_SPAN_S`` (this block and those before it in the segment): a constant or drifting offset
        goes, while a burst's own means, changing from block to block, mostly stay. Each level is the
        sum of the same block means in the same order whatever the chunking, and the memory is
        finite, so a run started a little earlier gives the same levels (decode --jobs relies on it)."""
        means = (spec[:, 0] / np.float32(self.n_fft)).astype(np.complex128)
        k = self._dc_blocks
        hist = np.concatenate((self._dc_hist, means))
        # the level of block i of hist is the mean of hist[max(0, i - k + 1) : i + 1]
        i = np.arange(len(self._dc_hist), len(hist))
        lo = np.maximum(i - k + 1, 0)
        # sums of at most k terms, computed afresh per block (not a running difference of a long sum)
        win = sliding_window_view(np.concatenate((np.zeros(k - 1, np.complex128), hist)), k)[i]
        level = win.sum(axis=1) / (i - lo + 1)
        self._dc_hist = hist[-(k - 1):] if k > 1 else hist[:0]
        spec[:, 0] -= (level * self.n_fft).astype(np.complex64)

    def _work(self, nblocks: int) -> np.ndarray:
        """The spectrum buffer, reused from call to call (fresh pages cost more than the FFT's copy)."""
        if len(self._spec_buf) < nblocks:
            self._spec_buf = np.empty((nblocks, self.n_fft), dtype=np.complex64)
        return self._spec_buf[:nblocks]

    def process(self, samples: np.ndarray) -> dict[str, np.ndarray]:
        buf = np.concatenate((self._buf, np.asarray(samples, dtype=np.complex64)))
        nblocks = (len(buf) - self.overlap) // self.hop
        if nblocks <= 0:
            self._buf = buf
            return {c.name: np.zeros(0, dtype=np.complex64) for c in self.channels}
        used = nblocks * self.hop
        blocks = sliding_window_view(buf[: used + self.overlap], self.n_fft)[:: self.hop][:nblocks]
        spec = fastfft.fft(blocks, axis=1, out=self._work(nblocks))  # complex64 in and out
        self._remove_dc(spec)
        starts = self._consumed + self.hop * np.arange(nblocks)  # absolute index of each block's first sample
        skip = self.overlap // self.decimation
        out = {}
        if len(self._sel_buf) < nblocks:
            self._sel_buf = np.empty((nblocks, self.n_out), dtype=np.complex64)
        sel = self._sel_buf[:nblocks]  # the bins of one channel, filtered
        for c in self.channels:
            lo = self._lo[c.name] % self.n_fft
            if lo + self.n_out <= self.n_fft:
                np.multiply(spec[:, lo:lo + self.n_out], self._hsel[c.name], out=sel)
            else:  # the band wraps around the FFT edge
                cut = self.n_fft - lo
                np.multiply(spec[:, lo:], self._hsel[c.name][:cut], out=sel[:, :cut])
                np.multiply(spec[:, : self.n_out - cut], self._hsel[c.name][cut:], out=sel[:, cut:])
            y = fastfft.ifft(sel, axis=1, overwrite_x=True)[:, skip:]
            # mixing phase of each block start (so blocks join without phase jumps) times (-1)^n
            rot = self._phase[(c.bin * starts) % self.n_fft]
            out[c.name] = np.multiply(y, rot[:, None] * self._alt[None, :]).reshape(-1)
        self._buf = buf[used:]
        self._consumed += used
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
