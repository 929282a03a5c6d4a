"""RTL-SDR dongles over USB through pyrtlsdr (+ pyrtlsdrlib for a librtlsdr with every symbol)."""

from __future__ import annotations

from .errors import SDRError
from .source import Source
from .types import StreamInfo

INSTALL = "pip install 'wmbus-sdr[rtlsdr]' (pyrtlsdr and pyrtlsdrlib)"


class RtlSdrSource(Source):
    fmt = "cu8"

    def __init__(self, index: str, *, sample_rate_hz: float, center_freq_hz: float, gain: float | None = None,
                 ppm: int = 0, read_size: int = 1 << 16):
        super().__init__(StreamInfo(sample_rate_hz=sample_rate_hz, center_freq_hz=center_freq_hz,
                                    source=f"rtlsdr:{index}"))
        try:
            self.index = int(index)
        except ValueError:
            raise ValueError(f"rtlsdr:{index}: the device index must be a number") from None
        self.gain, self.ppm, self.read_size = gain, ppm, read_size
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

    def _read(self) -> bytes | None:
        return bytes(self._dev.read_bytes(self.read_size))

    def _close(self) -> None:
        if self._dev is not None:
            self._dev.close()
            self._dev = None
