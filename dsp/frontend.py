"""Front-end clean-up before channelisation: impulse blanking.

RTL-SDR captures carry periodic impulsive interference far above the noise and the wanted
signal (clusters of 1-14 samples every ~125 µs in the shared recording); left in, it smears across
every channel after filtering. Samples are judged in absolutely aligned blocks of B samples against
the largest median level of the block and its two neighbours (one block of look-ahead), so the
edges of a transmission are measured against the transmission, not the noise before or after it.
A sample's level is its larger component, max(|I|, |Q|) (within 3 dB of its magnitude, and a
block's peak of it is two plain float reductions instead of a magnitude per sample); the median
level of a block is taken from every ``SUBSAMPLE``-th sample. Samples more than ``threshold_db``
above that reference are candidates; runs of candidates shorter
than ``max_run`` samples are impulses and are set to zero (with ``guard`` neighbours) — a neutral
erasure for the FM discriminator. Chunk-invariant: blocks do not depend on how the input was split.
"""

from __future__ import annotations

import numpy as np

SUBSAMPLE = 8  # every how many samples of a block its median level is taken from


class ImpulseBlanker:
    def __init__(self, block: int = 1024, threshold_db: float = 12.0, guard: int = 1, max_run: int = 48):
        self.block = block
        self.factor = np.float32(10 ** (threshold_db / 20))  # on amplitudes
        self.guard = guard
        self.max_run = max_run
        self.reset()

    def reset(self) -> None:
        self._carry = np.zeros(0, dtype=np.complex64)
        self._prev_med = np.float32(0)
        self.blanked = 0

    def process(self, samples: np.ndarray, *, final: bool = False) -> np.ndarray:
        """Blanked samples for every block whose next block has arrived (all of them when final)."""
        if not final:
            parts = self.process_parts(samples)
            return np.concatenate(parts) if parts else np.zeros(0, dtype=np.complex64)
        buf = np.concatenate((self._carry, np.asarray(samples, dtype=np.complex64)))
        total = -(-len(buf) // self.block)
        if len(buf) % self.block:
            buf = np.concatenate((buf, np.zeros(self.block - len(buf) % self.block, dtype=np.complex64)))
        self._carry = np.zeros(0, dtype=np.complex64)
        if total == 0:
            return np.zeros(0, dtype=np.complex64)
        rows = buf.reshape(total, self.block)
        med = _median_level(rows[:, ::SUBSAMPLE])
        self._blank([rows], med, np.concatenate((med[1:], [0])))
        return buf

    def process_parts(self, samples: np.ndarray) -> list[np.ndarray]:
        """As ``process``, the output as consecutive pieces: the held-back block joined to the first
        new samples (a copy), then a view of the rest of ``samples`` (copied only when something in
        it is blanked). Saves the receiver a copy of every chunk; the pieces are read before the
        next call."""
        x = np.asarray(samples, dtype=np.complex64)
        bsz = self.block
        h = min(len(x), -len(self._carry) % bsz)
        head = np.concatenate((self._carry, x[:h]))  # whole blocks unless the input ran out
        if len(head) % bsz:
            self._carry = head
            return []
        body = x[h:h + (len(x) - h) // bsz * bsz]
        tail = x[h + len(body):]
        nh, nb = len(head) // bsz, len(body) // bsz
        if nh + nb < 2:  # the one complete block waits for its successor
            self._carry = np.concatenate((head, body, tail))
            return []
        head_rows, body_rows = head.reshape(nh, bsz), body.reshape(nb, bsz)
        med = np.concatenate((_median_level(head_rows[:, ::SUBSAMPLE]), _median_level(body_rows[:, ::SUBSAMPLE])))
        # the last complete block (and the samples after it) wait for the next call
        if nb:
            self._carry = np.concatenate((body[(nb - 1) * bsz:], tail))
            body_rows = body_rows[: nb - 1]
        else:
            self._carry = np.concatenate((head[(nh - 1) * bsz:], tail))
            head_rows = head_rows[: nh - 1]
        out = self._blank([head_rows, body_rows], med[:-1], med[1:])
        return [r.reshape(-1) for r in out if len(r)]

    def _blank(self, parts: list[np.ndarray], med: np.ndarray, nxt: np.ndarray) -> list[np.ndarray]:
        """Blank the blocks (rows of ``parts``, in order; ``med`` their median levels, ``nxt`` those of
        the blocks after them). Returns the parts, a part copied before anything in it is zeroed
        unless it is the first (this call's own copy)."""
        n = len(med)
        prev = np.concatenate(([self._prev_med], med[: n - 1]))
        ref = np.maximum(np.maximum(prev, med), nxt)
        self._prev_med = med[n - 1]
        limit = ref * self.factor
        # most blocks hold no candidate at all: look closer only at those whose peak is over the limit
        peak = np.concatenate([np.maximum(f.max(axis=1), -f.min(axis=1))
                               for f in (p.view(np.float32) for p in parts) if len(f)])
        busy = np.flatnonzero(peak > limit)
        if len(busy) == 0:
            return parts
        bounds = np.cumsum([0] + [len(p) for p in parts])
        part_of = np.searchsorted(bounds, busy, side="right") - 1
        rows_busy = np.concatenate([parts[k][busy[part_of == k] - bounds[k]] for k in range(len(parts))])
        hot = _level(rows_busy) > limit[busy, None]
        rows, cols = np.nonzero(hot)
        flat = busy[rows] * self.block + cols
        # runs of consecutive candidates (a gap of up to `guard` samples joins them), never across a
        # block boundary, so every block is judged on its own samples whatever the chunking
        blk = flat // self.block
        breaks = np.flatnonzero((np.diff(flat) > self.guard + 1) | (np.diff(blk) != 0))
        starts = flat[np.concatenate(([0], breaks + 1))]
        ends = flat[np.concatenate((breaks, [len(flat) - 1]))]
        short = (ends - starts + 1) <= self.max_run
        if not short.any():
            return parts
        # zero every short run with its guard, clipped to its block: marks +1 / -1 at the run's ends,
        # summed along the rows of the blocks concerned
        a, b = starts[short], ends[short]
        row = np.searchsorted(busy, a // self.block)
        lo = np.maximum(a % self.block - self.guard, 0)
        hi = np.minimum(b % self.block + self.guard + 1, self.block)
        marks = np.zeros((len(busy), self.block + 1), dtype=np.int32)
        np.add.at(marks, (row, lo), 1)
        np.add.at(marks, (row, hi), -1)
        rows_busy[np.cumsum(marks[:, :-1], axis=1) > 0] = 0
        self.blanked += int((hi - lo).sum())  # each run with its guard, clipped to its block
        out = list(parts)
        for k in range(len(parts)):
            sel = part_of == k
            if sel.any():
                if k > 0:
                    out[k] = out[k].copy()  # a view of the caller's samples: never written to
                out[k][busy[sel] - bounds[k]] = rows_busy[sel]
        return out

    def flush(self) -> np.ndarray:
        """The held-back samples (the last blocks), blanked; the output then has the input's length."""
        n = len(self._carry)
        out = self.process(np.zeros(0, dtype=np.complex64), final=True)[:n] if n else self._carry
        self._carry = np.zeros(0, dtype=np.complex64)
        return out


def _level(x: np.ndarray) -> np.ndarray:
    """max(|I|, |Q|) per sample (float32)."""
    return np.maximum(np.abs(x.real), np.abs(x.imag))


def _median_level(sub: np.ndarray) -> np.ndarray:
    """The median level of every row (the upper middle one of an even count)."""
    level = _level(sub)
    mid = level.shape[1] // 2
    return np.partition(level, mid, axis=1)[:, mid]
