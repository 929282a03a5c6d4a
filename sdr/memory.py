"""Hardware-free TX: ``memory:NAME`` keeps every burst (with its requested time) in a list, for
tests and for feeding a receiver in the same process."""

from __future__ import annotations

import numpy as np

from .sink import TxSink


class MemorySink(TxSink):
    """Bursts as sent: ``bursts_sent`` holds ``(at_ns or None, samples)`` in order."""

    def __init__(self, name: str = "", *, sample_rate_hz: float, center_freq_hz: float):
        super().__init__(name=f"memory:{name}", sample_rate_hz=sample_rate_hz, center_freq_hz=center_freq_hz)
        self.bursts_sent: list[tuple[int | None, np.ndarray]] = []

    def _write(self, samples: np.ndarray, at_ns: int | None) -> None:
        self.bursts_sent.append((at_ns, samples.copy()))
