"""RTL-SDR dongles over USB through pyrtlsdr (+ pyrtlsdrlib for a librtlsdr with every symbol)."""

from __future__ import annotations

import logging

from .errors import SDRError
from .source import Source
from .types import StreamInfo

log = logging.getLogger(__name__)

INSTALL = "pip install 'wmbus-sdr[rtlsdr]' (pyrtlsdr and pyrtlsdrlib)"


class RtlSdrSource(Source):
    fmt = "cu8"

    def __init__(self, index: str, *, sample_rate_hz: float, center_freq_hz: float, gain: float | None = None,
                 ppm: int = 0, read_size: int = 1 << 16, retries: int | None = None):
        index = index or "0"  # rtlsdr: is the first dongle
        info = StreamInfo(sample_rate_hz=sample_rate_hz, center_freq_hz=center_freq_hz,
                          source=f"rtlsdr:{index}")
        super().__init__(info, queue_chunks=self.queue_chunks_for(info, read_size))
        try:
            self.index = int(index)
        except ValueError:
            raise ValueError(f"rtlsdr:{index}: the device index must be a number") from None
        self.gain, self.ppm, self.read_size = gain, ppm, read_size
        if retries is not None:
            self.watchdog(max_restarts=retries)
        self.reopens = 0
        self._dev = None

    def _open(self) -> None:
        try:
            from rtlsdr import RtlSdr  # noqa: PLC0415 - optional driver
        except ImportError as err:
            raise SDRError(f"rtlsdr:{self.index}: the RTL-SDR driver is not installed ({err}); {INSTALL}") from None
        except AttributeError as err:  # Debian's librtlsdr 0.6 lacks rtlsdr_set_dithering
            raise SDRError(f"rtlsdr:{self.index}: librtlsdr is too old for pyrtlsdr ({err}); {INSTALL}") from None
        try:
            dev = RtlSdr(device_index=self.index)
        except Exception as err:  # noqa: BLE001 - pyrtlsdr raises LibUSBError/IOError variants
            raise SDRError(f"rtlsdr:{self.index}: no RTL-SDR device #{self.index} could be opened ({err}); "
                           "is the dongle plugged in and the DVB-T kernel driver unloaded?") from err
        dev.sample_rate = self.info.sample_rate_hz
        dev.center_freq = self.info.center_freq_hz
        if self.ppm:
            dev.freq_correction = self.ppm
        dev.gain = "auto" if self.gain is None else self.gain
        self._dev = dev

    def _set_block(self, seconds: float) -> int:
        # whole 16 KiB transfers, as rtl_sdr reads (librtlsdr wants a multiple of 512 bytes)
        self.read_size = self.block_bytes(self.info.sample_rate_hz, seconds, multiple=1 << 14)
        return self.read_size

    def _read(self) -> bytes | None:
        """A USB error (stalled or unplugged dongle) closes the device and reopens it with back-off;
        the samples missed meanwhile are a counted gap."""
        while True:
            try:
                return bytes(self._dev.read_bytes(self.read_size))
            except (OSError, RuntimeError) as err:  # pyrtlsdr's LibUSBError is an OSError
                if self._stop.is_set():
                    return None
                log.warning("%s: read failed (%s); reopening", self.info.source, err)
                self._close()
                if not self.recover(self._open, None, f"USB read failed ({err})"):
                    return None
                self.reopens += 1

    def _close(self) -> None:
        if self._dev is not None:
            try:
                self._dev.close()
            except (OSError, RuntimeError):
                pass  # a device that already vanished
            self._dev = None
