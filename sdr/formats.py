"""Sample formats <-> complex64, and metadata from the usual file-name conventions.

    cu8   unsigned 8-bit I/Q (rtl_sdr)            (x - 127.5) / 127.5
    cs8   signed 8-bit I/Q (hackrf_transfer)      x / 128
    cs16  signed 16-bit little-endian I/Q         x / 32768
    cf32  float32 I/Q (GNU Radio complex)         as is
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import FormatError
from .types import BYTES_PER_SAMPLE

FORMATS = tuple(BYTES_PER_SAMPLE)

def to_complex(raw: bytes | np.ndarray, fmt: str) -> np.ndarray:
    """Raw interleaved bytes of whole samples -> complex64."""
    buf = np.frombuffer(raw, dtype=np.uint8) if not isinstance(raw, np.ndarray) else raw.view(np.uint8)
    if fmt in ("cu8", "cs8"):
        return bytes_to_float32(buf[: len(buf) - len(buf) % 2], fmt).view(np.complex64)
    if fmt == "cs16":
        f = buf.view("<i2").astype(np.float32) * np.float32(1 / 32768)
    elif fmt == "cf32":
        return buf.view("<c8").astype(np.complex64, copy=True)
    else:
        raise FormatError(f"unknown sample format {fmt!r}; use one of {', '.join(FORMATS)}")
    return f.view(np.complex64)


def bytes_to_float32(buf: np.ndarray, fmt: str, out: np.ndarray | None = None) -> np.ndarray:
    """cu8 / cs8 bytes (uint8, any shape and strides) -> their float32 values (I, Q, I, ...), into
    ``out`` when given. Float32 arithmetic, exact up to the one rounding of the division: the same
    values as a table of the 256 codes would give, at a third of a table look-up's cost."""
    if fmt == "cu8":
        f = np.subtract(buf, np.float32(127.5), dtype=np.float32, out=out)
        return np.divide(f, np.float32(127.5), out=f)
    if fmt == "cs8":
        return np.divide(buf.view(np.int8), np.float32(128), dtype=np.float32, out=out)
    raise FormatError(f"{fmt}: not an 8-bit sample format (cu8, cs8)")


def whole_samples(data: bytes, fmt: str) -> tuple[bytes, bytes]:
    """(the bytes that form whole samples, the remainder to carry into the next read)."""
    usable = len(data) - len(data) % BYTES_PER_SAMPLE[fmt]
    return data[:usable], data[usable:]


def from_complex(samples: np.ndarray, fmt: str) -> bytes:
    """complex64 (full scale 1.0, clipped) -> raw interleaved bytes."""
    f = np.asarray(samples, dtype=np.complex64).view(np.float32)
    if fmt == "cf32":
        return f.astype("<f4").tobytes()
    f = np.clip(f, -1.0, 1.0)
    if fmt == "cu8":
        return np.clip(np.rint(f * 127.5 + 127.5), 0, 255).astype(np.uint8).tobytes()
    if fmt == "cs8":
        return np.clip(np.rint(f * 128), -128, 127).astype(np.int8).tobytes()
    if fmt == "cs16":
        return np.clip(np.rint(f * 32768), -32768, 32767).astype("<i2").tobytes()
    raise FormatError(f"unknown sample format {fmt!r}; use one of {', '.join(FORMATS)}")


def quantize(samples: np.ndarray, fmt: str = "cu8") -> np.ndarray:
    """Round-trip through a sample format (8-bit quantisation and clipping for cu8)."""
    return to_complex(from_complex(samples, fmt), fmt)


@dataclass(frozen=True, slots=True)
class NameHints:
    fmt: str | None = None
    sample_rate_hz: float | None = None
    center_freq_hz: float | None = None


_FREQ = re.compile(r"(?<![0-9.])(\d{2,4}(?:\.\d+)?)M(?:hz)?(?![0-9])", re.I)
_RATE_K = re.compile(r"(?<![0-9.])(\d{3,5}(?:\.\d+)?)k(?:sps|hz)?(?![a-z0-9])", re.I)
_RATE_M = re.compile(r"(?<![0-9.])(\d{1,2})M(\d{1,3})(?![0-9])")  # 1M6, 2M4, 2M048
_RATE_MS = re.compile(r"(?<![0-9.])(\d{1,2}(?:\.\d+)?)M?S(?:ps)?(?![a-z])", re.I)


def hints_from_name(path: str | Path) -> NameHints:
    """Format, rate and centre frequency from names like ``g001_868.95M_1200k.cu8`` or
    ``rtlsdr_868.950M_1M6_samples.cu8`` (rtl_433 / rtl-wmbus conventions)."""
    name = Path(str(path)).name
    stem, _, ext = name.rpartition(".")
    fmt = ext.lower() if ext.lower() in BYTES_PER_SAMPLE else None
    if ext.lower() in ("raw", "bin", "iq") or not stem:
        stem = name
    freq = rate = None
    for m in _FREQ.finditer(stem):
        value = float(m.group(1))
        if 25 <= value <= 6000:
            freq = value * 1e6
            break
    m = _RATE_M.search(stem)
    if m:
        rate = float(f"{m.group(1)}.{m.group(2)}") * 1e6
    else:
        m = _RATE_K.search(stem)
        if m:
            rate = float(m.group(1)) * 1e3
    return NameHints(fmt=fmt, sample_rate_hz=rate, center_freq_hz=freq)
