"""Stream metadata and IQ chunks: the currency between sources, DSP blocks and sinks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamInfo:
    sample_rate_hz: float
    center_freq_hz: float
    source: str = ""  # file name or device URI, for messages


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class IQChunk:
    """complex64 samples scaled to full scale 1.0; ``start`` is the absolute index of samples[0]."""

    samples: np.ndarray
    info: StreamInfo
    start: int
    time_ns: int | None = None  # wall clock (time.time_ns) when the chunk's last sample reached us
    dropped: int = 0  # samples lost before this chunk (start already accounts for them)
    arrived: float | None = None  # the same moment on time.monotonic(), for timing replies

    @property
    def end(self) -> int:
        return self.start + len(self.samples)
