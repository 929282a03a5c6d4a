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
        return (cum[..., k + 1:k + n + 1] - cum[..., k + 1 - span:k + n + 1 - span]) / span
    idx = np.arange(k + 1, k + n + 1)
    lo = np.maximum(idx - span, 0)
    return (cum[..., idx] - cum[..., lo]) / (idx - lo)


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class _Chunk:
    new: np.ndarray  # the chunk as complex64 (not kept beyond the read)
    n: int  # complete windows it ends
    used: int  # its samples inside those windows
    powers: np.ndarray  # the windows' mean powers


def _levels(finders: list[BurstFinder], p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Running averages, noise floor and the open test of every window of ``p`` (one row per
    finder; the finders share settings and history lengths), each row with its finder's history,
    so every window sees the same past whatever the chunking; updates the finders' history."""
    f0 = finders[0]
    n = p.shape[1]
    first = f0._nwin
    k = len(f0._powers)
    hist = np.concatenate((np.stack([f._powers for f in finders]), p), axis=1)
    cum = np.concatenate((np.zeros((len(finders), 1)), np.cumsum(hist, axis=1)), axis=1)
    avg = _trailing_mean(cum, k, n, f0.span)
    favg = _trailing_mean(cum, k, n, f0.floor_span)
    keep = max(f0.span, f0.floor_span)
    # the first windows of a stream see the filters filling up (zeros before sample 0): keep them
    # out of the noise floor (after ``mute``, every average of fewer than ``floor_span`` windows:
    # their minimum lies far under the noise's mean)
    guard = f0._guard
    if first < guard:
        favg[:, : guard - first] = np.inf
    old = len(f0._avgs)
    fhist = np.concatenate((np.stack([f._avgs for f in finders]), favg), axis=1)
    floor = trailing_min(fhist, f0.floor_windows)[:, old:] * f0.floor_bias
    if not np.isfinite(floor).all():  # no floor yet: nothing can open
        floor = np.where(np.isfinite(floor), floor, np.inf)
    for i, f in enumerate(finders):
        f._powers = hist[i, -keep:]
        f._avgs = fhist[i, -f0.floor_windows:]
        f._floor = float(floor[i, -1])
    return avg, floor, avg > floor * f0.open


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
        self._mute_to = 0  # no burst opens in windows before this one (mute)
        self._guard = 2  # the first windows kept out of the noise floor
        self.windows_busy = 0

    def mute(self, windows: int) -> None:
        """No burst opens in the next ``windows`` windows: they only teach the noise floor (a
        stream known to begin with noise)."""
        self._mute_to = self._nwin + windows
        self._guard = max(self._guard, self._nwin + self.floor_span)

    @property
    def noise_floor(self) -> float | None:
        return self._floor

    def process(self, samples: np.ndarray) -> Iterator[Burst]:
        """The bursts that closed in ``samples`` (read at once: the caller's array is not kept, and
        the finder's state is whole whether or not the bursts are iterated)."""
        return iter(self._read(samples))

    def _read(self, samples: np.ndarray) -> list[Burst]:
        chunk = self._prepare(samples)
        if chunk is None:
            return []
        avg, floor, above = _levels([self], chunk.powers[None, :])
        return self._decide(chunk, avg[0], floor[0], above[0])

    @classmethod
    def read_many(cls, finders: list[BurstFinder], chunks: list[np.ndarray]) -> list[list[Burst]]:
        """``[f.process(x) for f, x in zip(finders, chunks)]`` as lists, with the running averages,
        the noise floor and the threshold of all channels computed at once: finders of one
        channeliser class see chunks of equal length, and a dozen narrow channels (R2, N) spent
        most of their time in per-call overhead. The same bursts as one by one: finders are read
        together where their settings, history lengths and chunk lengths agree."""
        groups: dict[tuple, list[int]] = {}
        for i, (f, x) in enumerate(zip(finders, chunks, strict=True)):
            key = (f.window, f.span, f.floor_span, f.floor_windows, f.floor_bias, f.open, f._nwin, f._guard,
                   len(f._carry), len(f._powers), len(f._avgs), len(x))
            groups.setdefault(key, []).append(i)
        out: list[list[Burst]] = [[] for _ in finders]
        for idx in groups.values():
            if len(idx) == 1:
                out[idx[0]] = finders[idx[0]]._read(chunks[idx[0]])
                continue
            group = [finders[i] for i in idx]
            prepared = [f._prepare(chunks[i]) for f, i in zip(group, idx, strict=True)]
            if prepared[0] is None:  # no complete window yet: every chunk was carried
                continue
            avg, floor, above = _levels(group, np.stack([c.powers for c in prepared]))
            for row, (i, f, c) in enumerate(zip(idx, group, prepared, strict=True)):
                out[i] = f._decide(c, avg[row], floor[row], above[row])
        return out

    def _prepare(self, samples: np.ndarray) -> _Chunk | None:
        """First stage of reading a chunk: the powers of its complete windows (None when it completes
        none: then it was carried whole)."""
        new = np.asarray(samples, dtype=np.complex64)
        win = self.window
        c = len(self._carry)
        n = (c + len(new)) // win
        if n == 0:
            self._carry = np.concatenate((self._carry, new))
            return None
        # the chunk is read in place (no copy of it): the carry completes the first window
        used = n * win - c  # samples of ``new`` in complete windows
        p = np.empty(n)
        body = new[win - c if c else 0:used]
        if c:
            # the window that straddles the chunks is summed exactly as every other (output must
            # not depend on the chunking)
            p[0] = _powers(np.concatenate((self._carry, new[:win - c])), win)[0]
            p[1:] = _powers(body, win)
        else:
            p[:] = _powers(body, win)
        return _Chunk(new=new, n=n, used=used, powers=p)

    def _decide(self, chunk: _Chunk, avg: np.ndarray, floor: np.ndarray, above: np.ndarray) -> list[Burst]:
        """Second stage: open and close bursts on the chunk's windows (``_levels`` has set the
        running state of the averages and the floor)."""
        new, n, used = chunk.new, chunk.n, chunk.used
        win = self.window
        c = len(self._carry)
        first = self._nwin
        if first < self._mute_to:
            above = above.copy()
            above[: self._mute_to - first] = False
        at = first * win  # absolute index of the carry's first sample
        self._current = [(at, self._carry), (at + c, new[:used])] if c else [(at, new[:used])]
        self._nwin += n
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
