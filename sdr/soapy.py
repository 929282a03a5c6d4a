"""Any SoapySDR device (HackRF, Airspy, LimeSDR, PlutoSDR ...) through Debian's python3-soapysdr."""

from __future__ import annotations

import logging

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
        self._buf = np.empty(self.read_samples, dtype=np.complex64)

    def _read(self) -> bytes | None:
        sr = self._dev.readStream(self._stream, [self._buf], len(self._buf), timeoutUs=1_000_000)
        if sr.ret > 0:
            return self._buf[: sr.ret].tobytes()
        if sr.ret == self._soapy.SOAPY_SDR_OVERFLOW:
            self.lost(len(self._buf))
            return b""
        if sr.ret == self._soapy.SOAPY_SDR_TIMEOUT:
            return b""
        raise SDRError(f"soapy:{self.args}: readStream failed with code {sr.ret}")

    def _close(self) -> None:
        if self._dev is not None:
            dev, self._dev = self._dev, None
            try:
                dev.deactivateStream(self._stream)
                dev.closeStream(self._stream)
            except (RuntimeError, OSError) as err:  # a device that vanished (the watchdog then reopens)
                log.warning("%s: closing the stream failed: %s", self.info.source, err)
