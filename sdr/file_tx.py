"""TX into a file: ``file:PATH.cu8`` (or .cs8, .cs16, .cf32) records what a transmitter would send.

The file is a device with a perfect clock (``hardware_time``): its time is the number of samples
written so far, so a burst sent ``at_ns`` lands at sample ``at_ns * rate``, the gap before it
filled with zeros, and bursts scheduled ``interval`` apart are that far apart in the file. A burst
asked for a time already written is appended late and counted in ``late``."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from .errors import SDRError
from .formats import BYTES_PER_SAMPLE, from_complex
from .sink import TxSink

log = logging.getLogger(__name__)

ZERO_BLOCK = 1 << 16


class FileSink(TxSink):
    hardware_time = True

    def __init__(self, path: str, *, sample_rate_hz: float, center_freq_hz: float, fmt: str | None = None):
        super().__init__(name=f"file:{path}", sample_rate_hz=sample_rate_hz, center_freq_hz=center_freq_hz)
        self.path = Path(path)
        self.fmt = fmt or self.path.suffix.lower().lstrip(".")
        if self.fmt not in BYTES_PER_SAMPLE:
            raise ValueError(f"{self.name}: give a .cu8, .cs8, .cs16 or .cf32 file (or fmt=)")
        self.written = 0  # samples in the file
        self.late = 0
        self._file = None

    def _open(self) -> None:
        try:
            self._file = self.path.open("wb")
        except OSError as err:
            raise SDRError(f"{self.name}: cannot write ({err.strerror or err})") from err
        self.written = 0

    def now_ns(self) -> int:
        return round(self.written * 1e9 / self.sample_rate_hz)

    def _write(self, samples: np.ndarray, at_ns: int | None) -> None:
        if at_ns is not None:
            target = round(at_ns * self.sample_rate_hz / 1e9)
            if target < self.written:
                self.late += 1
                log.warning("%s: burst for sample %d sent at sample %d (late)", self.name, target, self.written)
            zeros = max(0, target - self.written)
            while zeros:
                n = min(zeros, ZERO_BLOCK)
                self._put(np.zeros(n, np.complex64))
                zeros -= n
        self._put(samples)

    def _put(self, x: np.ndarray) -> None:
        try:
            self._file.write(from_complex(x, self.fmt))
        except OSError as err:
            raise SDRError(f"{self.name}: write failed ({err.strerror or err})") from err
        self.written += len(x)

    def _close(self) -> None:
        self._file.close()
        self._file = None
