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
        self._carry = np.zeros(0, dtype=np.complex64)
        self._powers = np.zeros(0)  # window powers kept for running averages (history tail)
        self._avgs = np.zeros(0)  # floor_span averages kept for the running minimum (history tail)
        self._samples = np.zeros(0, dtype=np.complex64)  # samples from _sample_start on
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
        # the kept samples end where the carry (the last incomplete window) begins: one copy joins all
        keep = len(self._samples)
        buf = np.concatenate((self._samples, self._carry, np.asarray(samples, dtype=np.complex64)))
        n = (len(buf) - keep) // self.window
        end = keep + n * self.window
        self._carry = buf[end:]
        if n == 0:
            return
        x = buf[keep:end]
        self._samples = buf[:end]
        p = np.square(x.view(np.float32)).reshape(n, -1).sum(axis=1) / self.window
        first = self._nwin
        self._nwin += n
        # running averages with history, so every window sees the same past whatever the chunking
        hist = np.concatenate((self._powers, p))
        c = np.concatenate(([0.0], np.cumsum(hist)))
        k = len(self._powers)
        avg = np.empty(n)
        favg = np.empty(n)
        for arr, span in ((avg, self.span), (favg, self.floor_span)):
            idx = np.arange(k, k + n) + 1
            lo = np.maximum(idx - span, 0)
            arr[:] = (c[idx] - c[lo]) / (idx - lo)
        self._powers = hist[-max(self.span, self.floor_span):]
        # the first windows of a stream see the filters filling up (zeros before sample 0): keep them
        # out of the noise floor
        warm = np.arange(first, first + n) < 2
        if warm.any():
            favg = np.where(warm, np.inf, favg)
        fhist = np.concatenate((self._avgs, favg))
        mins = trailing_min(fhist, self.floor_windows)[len(self._avgs):]
        self._avgs = fhist[-self.floor_windows:]
        floor = mins * self.floor_bias
        if not np.isfinite(floor).all():  # no floor yet: nothing can open
            floor = np.where(np.isfinite(floor), floor, np.inf)
        self._floor = float(floor[-1])
        above = avg > floor * self.open
        quiet = avg < floor * self.close
        i = 0
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
            yield self._emit(first + end)
            i = end + 1
        self._trim()

    def _emit(self, last_win: int) -> Burst:
        a = self._burst_from * self.window - self._sample_start
        b = (last_win + 1) * self.window - self._sample_start
        seg = self._samples[max(a, 0):b]
        power = float(np.mean(np.square(seg.view(np.float32)))) * 2 if len(seg) else 0.0
        burst = Burst(channel=self.channel, start=self._burst_from * self.window, samples=seg.copy(),
                      power=power, noise=self._burst_floor)
        self._burst_from = None
        self._quiet = 0
        return burst

    def _trim(self) -> None:
        """Keep only the samples a burst may still need (its start, or the margin before a new one)."""
        if self._burst_from is not None:
            keep_from = self._burst_from * self.window
        else:
            keep_from = max(0, (self._nwin - self.span - self.margin) * self.window)
        drop = keep_from - self._sample_start
        if drop > 0:
            self._samples = self._samples[drop:]
            self._sample_start = keep_from

    def flush(self) -> Iterator[Burst]:
        if self._burst_from is not None:
            yield self._emit(self._nwin - 1)
