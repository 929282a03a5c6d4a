"""Device URIs -> sources, with lazy imports so a missing driver never breaks the package.

    rtlsdr:0                         RTL-SDR over USB (pyrtlsdr + pyrtlsdrlib)
    rtltcp://HOST:PORT               an rtl_tcp server (our own client)
    soapy:driver=hackrf,serial=...   any SoapySDR device (Debian's python3-soapysdr)
    file:PATH                        a recording replayed at real-time pace
"""

from __future__ import annotations

from .errors import SDRError
from .source import Source


def open_device(uri: str, *, sample_rate_hz: float, center_freq_hz: float, gain: float | None = None,
                ppm: int = 0) -> Source:
    scheme, sep, rest = uri.partition(":")
    if not sep:
        raise ValueError(f"device {uri!r}: use rtlsdr:N, rtltcp://HOST:PORT, soapy:ARGS or file:PATH")
    scheme = scheme.lower()
    if scheme == "rtltcp":
        from .rtltcp import RtlTcpSource

        return RtlTcpSource(rest.lstrip("/"), sample_rate_hz=sample_rate_hz, center_freq_hz=center_freq_hz,
                            gain=gain, ppm=ppm)
    if scheme == "rtlsdr":
        from .rtlsdr import RtlSdrSource

        return RtlSdrSource(rest or "0", sample_rate_hz=sample_rate_hz, center_freq_hz=center_freq_hz, gain=gain,
                            ppm=ppm)
    if scheme == "soapy":
        from .soapy import SoapySource

        return SoapySource(rest, sample_rate_hz=sample_rate_hz, center_freq_hz=center_freq_hz, gain=gain)
    if scheme == "file":
        from .replay import ReplaySource

        return ReplaySource(rest, sample_rate_hz=sample_rate_hz, center_freq_hz=center_freq_hz)
    raise ValueError(f"device {uri!r}: unknown kind {scheme!r}; use rtlsdr, rtltcp, soapy or file")


__all__ = ["open_device", "SDRError"]
