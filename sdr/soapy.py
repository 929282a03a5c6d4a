"""Any SoapySDR device (HackRF, Airspy, LimeSDR, PlutoSDR ...) through Debian's python3-soapysdr."""

from __future__ import annotations

import logging
import math

import numpy as np

from .errors import SDRError
from .source import Source
from .types import StreamInfo

log = logging.getLogger(__name__)

INSTALL = ("sudo apt-get install python3-soapysdr soapysdr-module-all, then link both SoapySDR.py and "
           "_SoapySDR*.so from /usr/lib/python3/dist-packages into the venv's site-packages (or create "
           "the venv with --system-site-packages)")


class SoapySource(Source):
    fmt = "cf32"

    def __init__(self, args: str, *, sample_rate_hz: float, center_freq_hz: float, gain: float | None = None,
                 ppm: float = 0, read_samples: int = 1 << 15):
        super().__init__(StreamInfo(sample_rate_hz=sample_rate_hz, center_freq_hz=center_freq_hz,
                                    source=f"soapy:{args}"))
        self.args, self.gain, self.read_samples = args, gain, read_samples
        self.overflow_samples = read_samples  # counted as lost at each overflow (the driver does not say)
        self._overflowed = 0  # an overflow met while a block was filling, reported after its samples
        self.wanted_ppm = ppm
        self.ppm = 0  # the correction the device applies (set when opened, if it can)
        self._dev = self._stream = None

    def _open(self) -> None:
        try:
            import SoapySDR  # noqa: PLC0415 - optional driver
        except ImportError:
            raise SDRError(f"soapy:{self.args}: the SoapySDR Python bindings are missing; {INSTALL}") from None
        self._soapy = SoapySDR
        found = SoapySDR.Device.enumerate(self.args)
        if not found:
            raise SDRError(f"soapy:{self.args}: no SoapySDR device matches {self.args!r} "
                           "(SoapySDRUtil --find lists what is there)")
        dev = SoapySDR.Device(self.args)
        dev.setSampleRate(SoapySDR.SOAPY_SDR_RX, 0, self.info.sample_rate_hz)
        if self.wanted_ppm:
            if dev.hasFrequencyCorrection(SoapySDR.SOAPY_SDR_RX, 0):
                dev.setFrequencyCorrection(SoapySDR.SOAPY_SDR_RX, 0, float(self.wanted_ppm))
                self.ppm = self.wanted_ppm
            else:
                log.info("%s: the device has no frequency correction; --ppm %s is applied in software",
                         self.info.source, self.wanted_ppm)
        dev.setFrequency(SoapySDR.SOAPY_SDR_RX, 0, self.info.center_freq_hz)
        if self.gain is None:
            dev.setGainMode(SoapySDR.SOAPY_SDR_RX, 0, True)
        else:
            dev.setGain(SoapySDR.SOAPY_SDR_RX, 0, self.gain)
        self._stream = dev.setupStream(SoapySDR.SOAPY_SDR_RX, SoapySDR.SOAPY_SDR_CF32)
        dev.activateStream(self._stream)
        self._dev = dev

    def _set_block(self, seconds: float) -> int:
        self.read_samples = max(1, math.ceil(seconds * self.info.sample_rate_hz - 1e-6))
        return self.read_samples * 8

    def _read(self) -> np.ndarray | bytes | None:
        """``read_samples`` samples, gathered over as many readStream calls as the driver needs
        (most hand over one USB transfer per call); what came before an overflow or a timeout is
        handed over as it is, the overflow then counted as lost (``overflow_samples``)."""
        if self._overflowed:
            self.lost(self._overflowed)
            self._overflowed = 0
        buf = np.empty(self.read_samples, dtype=np.complex64)  # handed over as is: a new one each read
        got = 0
        while got < len(buf):
            sr = self._dev.readStream(self._stream, [buf[got:]], len(buf) - got, timeoutUs=1_000_000)
            if sr.ret > 0:
                got += sr.ret
                continue
            if sr.ret == self._soapy.SOAPY_SDR_OVERFLOW:
                if not got:
                    self.lost(self.overflow_samples)
                    return b""
                self._overflowed = self.overflow_samples
                break
            if sr.ret == self._soapy.SOAPY_SDR_TIMEOUT:
                break
            raise SDRError(f"soapy:{self.args}: readStream failed with code {sr.ret}")
        return buf[:got].view(np.uint8)

    def _close(self) -> None:
        if self._dev is not None:
            dev, self._dev = self._dev, None
            try:
                dev.deactivateStream(self._stream)
                dev.closeStream(self._stream)
            except (RuntimeError, OSError) as err:  # a device that vanished (the watchdog then reopens)
                log.warning("%s: closing the stream failed: %s", self.info.source, err)
