"""Live IQ sinks (transmitters): one base class, as :class:`sdr.source.Source` is for receivers.

A subclass implements ``_write(samples, at_ns)`` (one burst of complex64 samples, full scale 1.0;
``at_ns`` is the device time to start it, given only when the sink says ``hardware_time``) and, if
it needs them, ``_open()``, ``_close()`` and ``now_ns()`` (its clock; the host's monotonic clock by
default). Callers use ``with sink:`` (or ``open()`` / ``close()``) and ``send(samples, at_ns)``.
"""

from __future__ import annotations

import time

import numpy as np

from .errors import SDRError


class TxSink:
    hardware_time = False  # True when send(at_ns=...) starts the burst at that device time

    def __init__(self, *, name: str, sample_rate_hz: float, center_freq_hz: float):
        if not sample_rate_hz > 0:
            raise ValueError(f"{name}: sample rate {sample_rate_hz!r} must be positive")
        self.name = name
        self.sample_rate_hz = sample_rate_hz
        self.center_freq_hz = center_freq_hz
        self.sent = 0  # samples sent
        self.bursts = 0
        self._open_now = False

    # --- for subclasses -----------------------------------------------------------------------
    def _open(self) -> None:
        pass

    def _write(self, samples: np.ndarray, at_ns: int | None) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        pass

    def now_ns(self) -> int:
        """The sink's clock in ns: the device's when it has hardware time, else the host's monotonic."""
        return time.monotonic_ns()

    # --- public ---------------------------------------------------------------------------------
    def open(self):
        if not self._open_now:
            self._open()
            self._open_now = True
        return self

    def send(self, samples: np.ndarray, at_ns: int | None = None) -> None:
        """Transmit one burst; with ``hardware_time`` and ``at_ns`` it starts at that sink time."""
        if not self._open_now:
            raise SDRError(f"{self.name}: send() before open()")
        x = np.ascontiguousarray(samples, dtype=np.complex64)
        self._write(x, int(at_ns) if at_ns is not None and self.hardware_time else None)
        self.sent += len(x)
        self.bursts += 1

    def close(self) -> None:
        if self._open_now:
            self._open_now = False
            self._close()

    def __enter__(self):
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()
