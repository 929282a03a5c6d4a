"""Stream metadata and IQ chunks: the currency between sources, DSP blocks and sinks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamInfo:
    sample_rate_hz: float
    center_freq_hz: float
    source: str = ""  # file name or device URI, for messages


BYTES_PER_SAMPLE = {"cu8": 2, "cs8": 2, "cs16": 4, "cf32": 8}  # bytes of one I/Q sample (sdr.formats)


@dataclass(frozen=True, slots=True, eq=False)
class RawIQ:
    """Interleaved samples as read (``fmt``: cu8, cs8, cs16, cf32 bytes), turned into complex64
    only where they are read: a receiver that looks at an eighth of most of a capture (the activity
    gate, dsp.gate) and at every sample of the rest does not convert what it never reads. Slices
    are RawIQ views; ``complex()`` (and ``np.asarray``) give complex64 as ``sdr.formats.to_complex``,
    the same values whatever the slice."""

    data: np.ndarray  # uint8, whole samples
    fmt: str

    @property
    def bytes_per_sample(self) -> int:
        return BYTES_PER_SAMPLE[self.fmt]

    def __len__(self) -> int:
        return len(self.data) // BYTES_PER_SAMPLE[self.fmt]

    def __getitem__(self, key: slice) -> RawIQ:
        if not isinstance(key, slice):
            raise TypeError(f"RawIQ takes slices only, not {type(key).__name__}")
        start, stop, step = key.indices(len(self))
        if step != 1:
            raise ValueError("RawIQ takes contiguous slices only")
        bps = BYTES_PER_SAMPLE[self.fmt]
        return RawIQ(self.data[start * bps:max(stop, start) * bps], self.fmt)

    def complex(self) -> np.ndarray:
        from .formats import to_complex

        return to_complex(self.data, self.fmt)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        x = self.complex()
        return x if dtype is None else x.astype(dtype, copy=False)

    def rows(self, first: int, count: int, stride: int, width: int, *, out: np.ndarray | None = None) -> np.ndarray:
        """complex64 rows (count, width): row r holds samples first + r * stride ... + width - 1
        (all inside), converted alone (into ``out``, a C-contiguous complex64 array of that
        shape, when given)."""
        from numpy.lib.stride_tricks import as_strided

        from .formats import bytes_to_float32, to_complex

        bps = BYTES_PER_SAMPLE[self.fmt]
        if out is None:
            out = np.empty((count, width), dtype=np.complex64)
        if count <= 0:
            return out
        if first < 0 or first + (count - 1) * stride + width > len(self):
            raise IndexError(f"rows {first} + {count} x {stride} (+{width}) outside {len(self)} samples")
        base = self.data[first * bps:]
        row, step = width * bps, stride * bps
        if self.fmt in ("cu8", "cs8"):
            if row % 8 == 0 and step % 8 == 0 and base.ctypes.data % 8 == 0:
                # the rows' bytes gathered as 8-byte words first (a third of the strided cast's cost)
                words = base[:len(base) // 8 * 8].view(np.uint64)
                view = np.ascontiguousarray(as_strided(words, shape=(count, row // 8), strides=(step, 8),
                                                       writeable=False)).view(np.uint8)
            else:
                view = as_strided(base, shape=(count, row), strides=(step, 1), writeable=False)
            bytes_to_float32(view, self.fmt, out=out.view(np.float32))
        else:
            view = as_strided(base, shape=(count, row), strides=(step, 1), writeable=False)
            out[...] = to_complex(np.ascontiguousarray(view).reshape(-1), self.fmt).reshape(count, width)
        return out


def as_complex(samples: np.ndarray | RawIQ) -> np.ndarray:
    """complex64 samples of an array or a RawIQ."""
    return samples.complex() if isinstance(samples, RawIQ) else samples


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class IQChunk:
    """complex64 samples scaled to full scale 1.0 (or, from a source asked for them, a RawIQ that
    converts where it is read); ``start`` is the absolute index of samples[0]."""

    samples: np.ndarray | RawIQ
    info: StreamInfo
    start: int
    time_ns: int | None = None  # wall clock (time.time_ns) when the chunk's last sample reached us
    dropped: int = 0  # samples lost before this chunk (start already accounts for them)
    arrived: float | None = None  # the same moment on time.monotonic(), for timing replies

    @property
    def end(self) -> int:
        return self.start + len(self.samples)
