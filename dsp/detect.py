"""Burst detection on one channel's baseband: where is something above the noise floor?

Power is averaged over absolutely aligned windows of ``window`` samples. The noise floor is the
running minimum (over ``floor_windows``) of ``floor_span``-window averages, corrected for the
minimum's bias. A burst opens when the average of ``span`` windows exceeds the floor by
``open_db`` and closes after ``hang`` windows whose ``span`` average is below ``close_db`` (single
windows fluctuate too much: after the channel filter the floor estimate sits ~15 % under the
noise's mean, and waiting for eight single windows under 0.7 dB took up to 128 ms). Everything is vectorised over a
chunk; bursts come out whole, once, with their samples and absolute start index, even when they
span chunks, and the output does not depend on the chunking.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .running import trailing_min


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Burst:
    channel: str
    start: int  # absolute index in the channel's sample stream
    samples: np.ndarray
    power: float  # mean power inside the burst (full scale 1.0)
    noise: float  # noise floor power


def _powers(x: np.ndarray, window: int) -> np.ndarray:
    """Mean power of each complete window of ``window`` samples (complex64 in, one pass)."""
    v = x.view(np.float32).reshape(-1, 2 * window)
    return np.einsum("ij,ij->i", v, v) / window


def _trailing_mean(cum: np.ndarray, k: int, n: int, span: int) -> np.ndarray:
    """Mean of the last ``span`` values (fewer at the start) ending at values k .. k+n-1 of the
    series whose cumulative sum (with a leading 0) is ``cum``."""
    if k >= span:  # a full span of history: slices (the common case)
        return (cum[k + 1:k + n + 1] - cum[k + 1 - span:k + n + 1 - span]) / span
    idx = np.arange(k + 1, k + n + 1)
    lo = np.maximum(idx - span, 0)
    return (cum[idx] - cum[lo]) / (idx - lo)


class BurstFinder:
    def __init__(self, channel: str, *, window: int = 64, span: int = 4, open_db: float = 1.4,
                 close_db: float = 1.0, hang: int = 8, margin: int = 6, max_windows: int = 4096,
                 floor_span: int = 8, floor_windows: int = 1024, floor_bias: float = 1.12):
        self.channel = channel
        self.window = window
        self.span = span
        self.open = 10 ** (open_db / 10)
        self.close = 10 ** (close_db / 10)
        self.hang = hang
        self.margin = margin
        self.max_windows = max_windows
        self.floor_span = floor_span
        self.floor_windows = floor_windows
        self.floor_bias = floor_bias
        self.reset()

    def reset(self) -> None:
        self._carry = np.zeros(0, dtype=np.complex64)  # the last incomplete window (a copy)
        self._powers = np.zeros(0)  # window powers kept for running averages (history tail)
        self._avgs = np.zeros(0)  # floor_span averages kept for the running minimum (history tail)
        # samples a burst may still need, as copies: (absolute index of the first sample, samples)
        self._parts: list[tuple[int, np.ndarray]] = []
        self._current: list[tuple[int, np.ndarray]] = []  # the chunk being read, in place
        self._sample_start = 0
        self._nwin = 0  # windows seen
        self._burst_from: int | None = None  # first window of the open burst
        self._quiet = 0
        self._floor = None
        self.windows_busy = 0

    @property
    def noise_floor(self) -> float | None:
        return self._floor

    def process(self, samples: np.ndarray) -> Iterator[Burst]:
        """The bursts that closed in ``samples`` (read at once: the caller's array is not kept, and
        the finder's state is whole whether or not the bursts are iterated)."""
        return iter(self._read(samples))

    def _read(self, samples: np.ndarray) -> list[Burst]:
        new = np.asarray(samples, dtype=np.complex64)
        win = self.window
        c = len(self._carry)
        n = (c + len(new)) // win
        if n == 0:
            self._carry = np.concatenate((self._carry, new))
            return []
        # the chunk is read in place (no copy of it): the carry completes the first window
        used = n * win - c  # samples of ``new`` in complete windows
        first = self._nwin
        at = first * win  # absolute index of the carry's first sample
        current = [(at, self._carry), (at + c, new[:used])] if c else [(at, new[:used])]
        p = np.empty(n)
        body = new[win - c if c else 0:used]
        if c:
            # the window that straddles the chunks is summed exactly as every other (output must
            # not depend on the chunking)
            p[0] = _powers(np.concatenate((self._carry, new[:win - c])), win)[0]
            p[1:] = _powers(body, win)
        else:
            p[:] = _powers(body, win)
        self._current = current
        self._nwin += n
        # running averages with history, so every window sees the same past whatever the chunking
        k = len(self._powers)
        hist = np.concatenate((self._powers, p))
        cum = np.concatenate(([0.0], np.cumsum(hist)))
        avg = _trailing_mean(cum, k, n, self.span)
        favg = _trailing_mean(cum, k, n, self.floor_span)
        self._powers = hist[-max(self.span, self.floor_span):]
        # the first windows of a stream see the filters filling up (zeros before sample 0): keep them
        # out of the noise floor
        if first < 2:
            favg[: 2 - first] = np.inf
        fhist = np.concatenate((self._avgs, favg))
        mins = trailing_min(fhist, self.floor_windows)[len(self._avgs):]
        self._avgs = fhist[-self.floor_windows:]
        floor = mins * self.floor_bias
        if not np.isfinite(floor).all():  # no floor yet: nothing can open
            floor = np.where(np.isfinite(floor), floor, np.inf)
        self._floor = float(floor[-1])
        above = avg > floor * self.open
        i = 0
        quiet = None
        out = []
        while i < n:
            if self._burst_from is None:
                hits = np.flatnonzero(above[i:])
                if len(hits) == 0:
                    break
                j = i + int(hits[0])
                self._burst_from = max(first + j - self.span - self.margin + 1, 0)
                self._quiet = 0
                self._burst_floor = float(floor[j])
                i = j + 1
                continue
            if quiet is None:
                quiet = avg < floor * self.close
            # inside a burst: find where `hang` quiet windows in a row end, or the length limit
            q = quiet[i:]
            run = self._quiet
            end = None
            limit = self._burst_from + self.max_windows - 1 - first
            # vectorised run-length of quiet windows
            runs = np.zeros(len(q), dtype=np.int64)
            if len(q):
                qi = q.astype(np.int64)
                cs = np.cumsum(qi)
                reset = np.maximum.accumulate(np.where(qi == 0, cs, 0))
                runs = cs - reset
                runs[: np.argmax(qi == 0) if (qi == 0).any() else len(q)] += run
            hit = np.flatnonzero(runs >= self.hang)
            if len(hit):
                end = i + int(hit[0])
            if limit < n and (end is None or limit < end) and limit >= i:
                end = limit
            if end is None:
                self._quiet = int(runs[-1]) if len(runs) else run
                self.windows_busy += n - i
                break
            self.windows_busy += end - i + 1
            out.append(self._emit(first + end))
            i = end + 1
        self._keep(new[used:])
        return out

    def _range(self, a: int, b: int) -> np.ndarray:
        """Samples from absolute index ``a`` to ``b`` (kept parts, then the chunk being read)."""
        pieces = []
        for start, part in self._parts + self._current:
            lo, hi = max(a - start, 0), min(b - start, len(part))
            if hi > lo:
                pieces.append(part[lo:hi])
        return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.complex64)

    def _emit(self, last_win: int) -> Burst:
        a = max(self._burst_from * self.window, self._sample_start)
        seg = self._range(a, (last_win + 1) * self.window)
        power = float(np.mean(np.square(seg.view(np.float32)))) * 2 if len(seg) else 0.0
        burst = Burst(channel=self.channel, start=self._burst_from * self.window, samples=seg,
                      power=power, noise=self._burst_floor)
        self._burst_from = None
        self._quiet = 0
        return burst

    def _keep(self, carry: np.ndarray) -> None:
        """Keep only the samples a burst may still need (its start, or the margin before a new one),
        copying those of the chunk just read, and the incomplete last window."""
        if self._burst_from is not None:
            keep_from = self._burst_from * self.window
        else:
            keep_from = max(0, (self._nwin - self.span - self.margin) * self.window)
        keep_from = max(keep_from, self._sample_start)
        kept = []
        for owned, parts in ((True, self._parts), (False, self._current)):
            for start, part in parts:
                lo = max(keep_from - start, 0)
                if lo < len(part):
                    kept.append((start + lo, part[lo:] if owned else part[lo:].copy()))
        self._parts, self._current = kept, []
        self._sample_start = keep_from
        self._carry = carry.copy()

    def flush(self) -> Iterator[Burst]:
        if self._burst_from is not None:
            self._current = []
            yield self._emit(self._nwin - 1)
