"""Live transmission through a TX-capable SoapySDR device (HackRF, LimeSDR, PlutoSDR, USRP ...).

Safety first: the sink refuses a device without a TX channel, a gain above ``SAFE_GAIN_DB`` unless
the caller raises the limit, and (in the CLI) a frequency outside the mode's channel unless asked.
With hardware time (``hasHardwareTime``) bursts go out at a device timestamp; otherwise at once.
"""

from __future__ import annotations

import time

import numpy as np

from .errors import SDRError
from .sink import TxSink
from .soapy import INSTALL

SAFE_GAIN_DB = 0.0  # lab default: the lowest output; conducted tests need attenuators anyway
WRITE_CHUNK = 1 << 14
TAIL = 64  # zero samples that close a burst


class SoapySink(TxSink):
    def __init__(self, args: str, *, sample_rate_hz: float, center_freq_hz: float, gain_db: float = SAFE_GAIN_DB,
                 max_gain_db: float = SAFE_GAIN_DB, soapy=None):
        if gain_db > max_gain_db:
            raise SDRError(f"soapy:{args}: TX gain {gain_db:g} dB exceeds the safe limit {max_gain_db:g} dB; "
                           "raise it with --max-gain only with an attenuator or a shielded set-up")
        super().__init__(name=f"soapy:{args}", sample_rate_hz=sample_rate_hz, center_freq_hz=center_freq_hz)
        self.args = args
        self.gain_db = gain_db
        self._soapy = soapy
        self._dev = self._stream = None
        self.hardware_time = False

    def _open(self) -> None:
        soapy = self._soapy
        if soapy is None:
            try:
                import SoapySDR as soapy  # noqa: PLC0415, N813 - optional driver
            except ImportError:
                raise SDRError(f"soapy:{self.args}: the SoapySDR Python bindings are missing; {INSTALL}") from None
            self._soapy = soapy
        if not soapy.Device.enumerate(self.args):
            raise SDRError(f"soapy:{self.args}: no SoapySDR device matches {self.args!r} "
                           "(SoapySDRUtil --find lists what is there)")
        dev = soapy.Device(self.args)
        if dev.getNumChannels(soapy.SOAPY_SDR_TX) < 1:
            raise SDRError(f"soapy:{self.args}: {dev.getHardwareKey()} cannot transmit (no TX channel); "
                           "use a HackRF, LimeSDR, PlutoSDR or USRP, or write a file with --out")
        dev.setSampleRate(soapy.SOAPY_SDR_TX, 0, self.sample_rate_hz)
        dev.setFrequency(soapy.SOAPY_SDR_TX, 0, self.center_freq_hz)
        dev.setGain(soapy.SOAPY_SDR_TX, 0, self.gain_db)
        self.hardware_time = bool(dev.hasHardwareTime())
        self._stream = dev.setupStream(soapy.SOAPY_SDR_TX, soapy.SOAPY_SDR_CF32)
        dev.activateStream(self._stream)
        self._dev = dev

    def now_ns(self) -> int:
        return int(self._dev.getHardwareTime()) if self.hardware_time else time.monotonic_ns()

    def _write(self, x: np.ndarray, at_ns: int | None) -> None:
        """One burst; with hardware time and ``at_ns`` it starts at that device time."""
        soapy = self._soapy
        flags, t = (soapy.SOAPY_SDR_HAS_TIME, at_ns) if at_ns is not None else (0, 0)  # on the first write only
        pos = 0
        while pos < len(x):
            pos += self._write_part(x[pos:pos + WRITE_CHUNK], flags, t, pos)
            flags, t = 0, 0
        # the burst ends with zero samples that carry END_BURST: a driver may accept fewer samples
        # than offered, so the flag cannot ride on a data write that might be split
        tail = np.zeros(TAIL, np.complex64)
        if self._write_part(tail, flags | soapy.SOAPY_SDR_END_BURST, t, pos) < TAIL:
            raise SDRError(f"soapy:{self.args}: the device did not take the {TAIL} end-of-burst samples whole")

    def _write_part(self, part: np.ndarray, flags: int, t: int, pos: int) -> int:
        sr = self._dev.writeStream(self._stream, [part], len(part), flags, t, timeoutUs=1_000_000)
        if sr.ret <= 0:
            raise SDRError(f"soapy:{self.args}: writeStream failed with code {sr.ret} after {pos} samples")
        return sr.ret

    def _close(self) -> None:
        if self._dev is not None:
            self._dev.deactivateStream(self._stream)
            self._dev.closeStream(self._stream)
            self._dev = None

