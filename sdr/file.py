"""Recordings as IQ sources: raw files (cu8, cs8, cs16, cf32), SigMF, WAV, and stdin.

Sample rate and centre frequency come from SigMF metadata, the WAV header (rate), the file name
(``rtlsdr_868.950M_1M6_x.cu8``) or the caller; when one stays unknown a FormatError names the
option to give. Reading is chunked: memory stays bounded whatever the file size.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .errors import FormatError
from .formats import BYTES_PER_SAMPLE, FORMATS, from_complex, hints_from_name, to_complex, whole_samples
from .types import IQChunk, RawIQ, StreamInfo

SIGMF_TYPES = {"cu8": "cu8", "ci8": "cs8", "ci16_le": "cs16", "cf32_le": "cf32"}
DEFAULT_CHUNK = 1 << 18


class FileSource:
    """Iterate a recording as IQChunks. Counts what could not be used (a trailing partial sample,
    non-finite values) instead of failing."""

    def __init__(self, path: str, *, fmt: str | None = None, sample_rate_hz: float | None = None,
                 center_freq_hz: float | None = None, chunk_samples: int = DEFAULT_CHUNK, lazy: bool = False):
        self.path = path
        self.chunk_samples = chunk_samples
        # chunks of an integer format (cu8, cs8, cs16) carry the bytes as read (sdr.types.RawIQ),
        # converted where a consumer reads them (the receiver's activity gate reads an eighth of most
        # samples); the others are converted as they are read (non-finite values are replaced)
        self.lazy = lazy
        self.trailing_bytes = 0
        self.bad_samples = 0
        self.samples_read = 0
        self.annotations: list[dict] = []
        self._wav = None
        self._offset_bytes = 0
        self.start_time_ns: int | None = None  # UTC of sample 0 (SigMF core:datetime), when the file says
        meta_rate = meta_freq = meta_fmt = None
        data_path = path
        if path != "-":
            p = Path(path)
            if p.suffix in (".sigmf-meta", ".sigmf-data"):
                data_path, meta_fmt, meta_rate, meta_freq = self._sigmf(p)
            elif p.suffix.lower() == ".wav":
                meta_fmt, meta_rate = self._wav_header(p)
            elif not p.exists():
                raise FormatError(f"{path}: no such file")
        hints = hints_from_name(path) if path != "-" else hints_from_name("")
        self.fmt = fmt or meta_fmt or hints.fmt
        if self.fmt is None:
            raise FormatError(f"{path}: sample format unknown; give --format ({', '.join(FORMATS)})")
        if self.fmt not in BYTES_PER_SAMPLE and self.fmt != "wav":
            raise FormatError(f"{path}: unknown sample format {self.fmt!r}; use one of {', '.join(FORMATS)}")
        rate = sample_rate_hz or meta_rate or hints.sample_rate_hz
        freq = center_freq_hz or meta_freq or hints.center_freq_hz
        if rate is None:
            raise FormatError(f"{path}: sample rate unknown; give --rate (e.g. --rate 1.6e6)")
        if freq is None:
            raise FormatError(f"{path}: centre frequency unknown; give --center (e.g. --center 868.95e6)")
        if not 0.2e6 <= rate <= 20e6:
            raise FormatError(f"{path}: sample rate {rate:g} Hz is outside 0.2-20 Msps")
        self.info = StreamInfo(sample_rate_hz=float(rate), center_freq_hz=float(freq), source=str(path))
        self.data_path = data_path

    # --- metadata readers ---------------------------------------------------------------------

    def _sigmf(self, p: Path):
        base = str(p)[: -len(p.suffix)]  # not with_suffix: names like x_868.625M have dots of their own
        meta_path, data_path = Path(base + ".sigmf-meta"), Path(base + ".sigmf-data")
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError) as err:
            raise FormatError(f"{meta_path}: cannot read SigMF metadata: {err}") from None
        glob = meta.get("global", {})
        dtype = glob.get("core:datatype", "")
        fmt = SIGMF_TYPES.get(dtype)
        if fmt is None:
            raise FormatError(f"{meta_path}: SigMF datatype {dtype!r} is not supported "
                              f"(supported: {', '.join(SIGMF_TYPES)})")
        rate = glob.get("core:sample_rate")
        captures = meta.get("captures") or [{}]
        freq = captures[0].get("core:frequency")
        stamp = captures[0].get("core:datetime")
        if stamp is not None:
            self.start_time_ns = parse_utc(stamp, where=f"{meta_path}: captures[0] core:datetime")
        self.annotations = meta.get("annotations", [])
        if not data_path.exists():
            raise FormatError(f"{data_path}: SigMF data file missing")
        return str(data_path), fmt, rate, freq

    def _wav_header(self, p: Path):
        from scipy.io import wavfile

        try:
            rate, data = wavfile.read(p, mmap=True)
        except (OSError, ValueError) as err:
            raise FormatError(f"{p}: not a readable WAV file: {err}") from None
        if data.ndim != 2 or data.shape[1] != 2:
            raise FormatError(f"{p}: WAV IQ needs 2 channels (I, Q), found {data.shape}")
        self._wav = data
        return "wav", float(rate)

    # --- iteration ----------------------------------------------------------------------------

    def __iter__(self) -> Iterator[IQChunk]:
        if self._wav is not None:
            yield from self._iter_wav()
            return
        stream: BinaryIO
        if self.data_path == "-":
            stream = sys.stdin.buffer
            close = False
        else:
            stream = open(self.data_path, "rb")  # noqa: SIM115 - closed below
            close = True
        try:
            yield from self._iter_stream(stream)
        finally:
            if close:
                stream.close()

    @property
    def n_samples(self) -> int | None:
        """Whole samples in the file (None for stdin)."""
        if self._wav is not None:
            return len(self._wav)
        if self.data_path == "-":
            return None
        return Path(self.data_path).stat().st_size // BYTES_PER_SAMPLE[self.fmt]

    def read_range(self, start: int, stop: int) -> Iterator[IQChunk]:
        """The chunks of samples ``start`` to ``stop`` (absolute indices, ``stop`` clipped to the
        file's end), for reading a file in pieces (decode --jobs). Not for stdin."""
        if self.data_path == "-":
            raise FormatError("stdin cannot be read in pieces; give a file")
        stop = min(stop, self.n_samples or 0)
        if start >= stop:
            return
        if self._wav is not None:
            for a in range(start, stop, self.chunk_samples):
                part = self._wav[a:min(a + self.chunk_samples, stop)]
                yield from self._wav_chunks(part, a)
            return
        bps = BYTES_PER_SAMPLE[self.fmt]
        with open(self.data_path, "rb") as f:
            f.seek(start * bps)
            for a in range(start, stop, self.chunk_samples):
                n = min(self.chunk_samples, stop - a)
                data = f.read(n * bps)
                if len(data) < n * bps:
                    raise FormatError(f"{self.data_path}: ended at byte {f.tell()} while reading sample {a + n}; "
                                      "was it truncated meanwhile?")
                yield self._chunk(self._samples(data), a)

    def _iter_stream(self, stream: BinaryIO) -> Iterator[IQChunk]:
        bps = BYTES_PER_SAMPLE[self.fmt]
        want = self.chunk_samples * bps
        carry = b""
        start = 0
        while True:
            block = stream.read(want - len(carry))
            if not block:
                break
            whole, carry = whole_samples(carry + block, self.fmt)
            if not whole:
                continue
            yield self._chunk(self._samples(whole), start)
            start += len(whole) // bps
        self.trailing_bytes = len(carry)

    def _iter_wav(self) -> Iterator[IQChunk]:
        data = self._wav
        for start in range(0, len(data), self.chunk_samples):
            yield from self._wav_chunks(data[start:start + self.chunk_samples], start)

    def _wav_chunks(self, part: np.ndarray, start: int) -> Iterator[IQChunk]:
        data = self._wav
        scale = {np.dtype("int16"): 1 / 32768, np.dtype("uint8"): None, np.dtype("float32"): 1.0,
                 np.dtype("int32"): 1 / 2**31}.get(data.dtype)
        part = np.asarray(part)
        if data.dtype == np.uint8:
            f = (part.astype(np.float32) - 127.5) / 127.5
        elif scale is None:
            raise FormatError(f"{self.path}: WAV sample type {data.dtype} not supported")
        else:
            f = part.astype(np.float32) * np.float32(scale)
        yield self._chunk((f[:, 0] + 1j * f[:, 1]).astype(np.complex64), start)

    def _samples(self, data: bytes) -> np.ndarray | RawIQ:
        if self.lazy and self.fmt in ("cu8", "cs8", "cs16"):
            return RawIQ(np.frombuffer(data, dtype=np.uint8), self.fmt)
        return to_complex(data, self.fmt)

    def _chunk(self, samples: np.ndarray | RawIQ, start: int) -> IQChunk:
        if self.fmt in ("cf32", "wav"):
            bad = ~np.isfinite(samples.view(np.float32)).reshape(-1, 2).all(axis=1)
            if bad.any():
                self.bad_samples += int(bad.sum())
                samples = samples.copy()
                samples[bad] = 0
        self.samples_read = start + len(samples)
        wall = None
        if self.start_time_ns is not None:
            wall = self.start_time_ns + int(round(self.samples_read * 1e9 / self.info.sample_rate_hz))
        return IQChunk(samples=samples, info=self.info, start=start, time_ns=wall)


def _sigmf_meta(*, fmt: str, sample_rate_hz: float, center_freq_hz: float, annotations: list[dict] | None,
                description: str, global_index: int | None = None, datetime_ns: int | None = None) -> str:
    inverse = {v: k for k, v in SIGMF_TYPES.items()}
    capture: dict = {"core:sample_start": 0, "core:frequency": center_freq_hz}
    if global_index is not None:  # where sample 0 sits in the stream it was cut from
        capture["core:global_index"] = global_index
    if datetime_ns is not None:  # UTC of sample 0, to the microsecond
        capture["core:datetime"] = format_utc(datetime_ns)
    meta = {
        "global": {"core:datatype": inverse[fmt], "core:sample_rate": sample_rate_hz, "core:version": "1.0.0",
                   "core:description": description, "core:recorder": "wmbus-sdr"},
        "captures": [capture],
        "annotations": annotations or [],
    }
    return json.dumps(meta, indent=2) + "\n"


def write_sigmf(base: str | Path, data: bytes, *, fmt: str, sample_rate_hz: float, center_freq_hz: float,
                annotations: list[dict] | None = None, description: str = "", global_index: int | None = None,
                datetime_ns: int | None = None) -> tuple[Path, Path]:
    """Write ``base.sigmf-data`` and ``base.sigmf-meta`` (through the sigmf package's schema names);
    ``global_index`` and ``datetime_ns`` (UTC) of sample 0 go into the capture when given."""
    data_path, meta_path = Path(f"{base}.sigmf-data"), Path(f"{base}.sigmf-meta")
    data_path.write_bytes(data)
    meta_path.write_text(_sigmf_meta(fmt=fmt, sample_rate_hz=sample_rate_hz, center_freq_hz=center_freq_hz,
                                     annotations=annotations, description=description, global_index=global_index,
                                     datetime_ns=datetime_ns))
    return data_path, meta_path


class IQWriter:
    """A recording written as its samples come: raw (.cu8 .cs8 .cs16 .cf32) or SigMF (.sigmf-meta,
    .sigmf-data or .sigmf: cs16 unless ``fmt``), chosen by the extension. Each :meth:`write` converts
    and appends one block, so memory stays bounded and the bytes do not depend on the block sizes;
    the SigMF metadata, with ``annotations``, is written on :meth:`close`. ``path`` is the file to
    name to the user (the .sigmf-meta for SigMF)."""

    def __init__(self, path: str | Path, *, sample_rate_hz: float, center_freq_hz: float, fmt: str | None = None,
                 annotations: list[dict] | None = None, description: str = ""):
        text = str(path)
        lower = text.lower()
        self.sample_rate_hz = sample_rate_hz
        self.center_freq_hz = center_freq_hz
        self.annotations = annotations
        self.description = description
        self.samples_written = 0
        self._meta_path: Path | None = None
        for suffix in (".sigmf-meta", ".sigmf-data", ".sigmf"):
            if lower.endswith(suffix):
                base = text[: -len(suffix)]
                self.fmt = fmt or "cs16"
                self._meta_path = Path(f"{base}.sigmf-meta")
                data_path = Path(f"{base}.sigmf-data")
                self.path = str(self._meta_path)
                break
        else:
            ext = lower.rsplit(".", 1)[-1]
            if ext not in BYTES_PER_SAMPLE:
                raise ValueError(f"{text}: unknown output type; use .cu8, .cs8, .cs16, .cf32 or .sigmf-meta")
            self.fmt = fmt or ext
            data_path = Path(text)
            self.path = text
        if self.fmt not in BYTES_PER_SAMPLE:
            raise ValueError(f"unknown sample format {self.fmt!r}; use one of {', '.join(FORMATS)}")
        self._file: BinaryIO | None = open(data_path, "wb")  # noqa: SIM115 - closed in close()

    def write(self, samples: np.ndarray) -> None:
        if self._file is None:
            raise ValueError(f"{self.path}: writer is closed")
        self._file.write(from_complex(samples, self.fmt))
        self.samples_written += len(samples)

    def close(self) -> None:
        if self._file is None:
            return
        self._file.close()
        self._file = None
        if self._meta_path is not None:
            self._meta_path.write_text(_sigmf_meta(fmt=self.fmt, sample_rate_hz=self.sample_rate_hz,
                                                   center_freq_hz=self.center_freq_hz,
                                                   annotations=self.annotations, description=self.description))

    def __enter__(self) -> IQWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def format_utc(time_ns: int) -> str:
    """ns since the epoch -> SigMF ``core:datetime`` (``2026-12-01T19:55:00.123456Z``, microseconds,
    truncated: readers such as sigmf-python take at most six digits)."""
    s, ns = divmod(time_ns, 1_000_000_000)
    return datetime.fromtimestamp(s, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{ns // 1000:06d}Z"


def parse_utc(text: str, *, where: str) -> int:
    """ISO-8601 UTC time (SigMF ``core:datetime``, e.g. 2026-12-01T19:55:00.123456Z) -> ns since the epoch;
    digits beyond microseconds are kept."""
    m = re.fullmatch(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:?\d{2})?", str(text).strip())
    if not m:
        raise FormatError(f"{where}: {text!r} is not an ISO-8601 time like 2026-12-01T19:55:00.123Z")
    try:
        whole = datetime.fromisoformat(m[1] + (m[3] or "Z").replace("Z", "+00:00"))
    except ValueError as err:
        raise FormatError(f"{where}: {text!r}: {err}") from None
    frac = int((m[2] or "0")[:9].ljust(9, "0"))
    return int(whole.timestamp()) * 1_000_000_000 + frac
