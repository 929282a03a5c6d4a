"""IQ files: sample formats, file-name metadata, SigMF, WAV, and clear errors for bad input."""

from __future__ import annotations

import numpy as np
import pytest

from sdr.errors import FormatError
from sdr.file import FileSource, write_sigmf
from sdr.formats import FORMATS, from_complex, hints_from_name, to_complex
from sdr.types import RawIQ


@pytest.mark.parametrize("fmt", FORMATS)
def test_format_round_trip(fmt):
    x = (np.exp(1j * np.linspace(0, 20, 501)) * 0.9).astype(np.complex64)
    y = to_complex(from_complex(x, fmt), fmt)
    tol = {"cu8": 1 / 127, "cs8": 1 / 127, "cs16": 1e-4, "cf32": 0}[fmt]
    assert np.max(np.abs(y - x)) <= tol + 1e-7


@pytest.mark.parametrize(("name", "fmt", "rate", "freq"), [
    ("g001_868.95M_1200k.cu8", "cu8", 1.2e6, 868.95e6),
    ("rtlsdr_868.950M_1M6_samples2.cu8", "cu8", 1.6e6, 868.95e6),
    ("x_868.625M_2M4_foo.cs8", "cs8", 2.4e6, 868.625e6),
    ("capture.cf32", "cf32", None, None),
])
def test_name_hints(name, fmt, rate, freq):
    h = hints_from_name(name)
    assert (h.fmt, h.sample_rate_hz, h.center_freq_hz) == (fmt, rate, freq)


def test_truncated_file_and_missing_options(tmp_path):
    path = tmp_path / "cap_868.95M_1M6.cu8"
    path.write_bytes(bytes(range(256)) * 8 + b"\x01")  # odd byte count
    src = FileSource(str(path))
    n = sum(len(c.samples) for c in src)
    assert n == 1024 and src.trailing_bytes == 1
    bare = tmp_path / "capture.cu8"
    bare.write_bytes(b"\x80" * 64)
    with pytest.raises(FormatError, match="--rate"):
        FileSource(str(bare))
    with pytest.raises(FormatError, match="--center"):
        FileSource(str(bare), sample_rate_hz=1.6e6)
    with pytest.raises(FormatError, match="no such file"):
        FileSource(str(tmp_path / "missing_868.95M_1M6.cu8"))


def test_nan_samples_are_counted_and_zeroed(tmp_path):
    x = np.ones(100, dtype=np.complex64)
    x[10] = np.nan
    path = tmp_path / "nan_868.95M_1M6.cf32"
    path.write_bytes(x.tobytes())
    src = FileSource(str(path))
    y = np.concatenate([c.samples for c in src])
    assert src.bad_samples == 1 and y[10] == 0 and np.isfinite(y).all()


def test_sigmf_round_trip_and_library_reads_it(tmp_path):
    x = (0.5 * np.exp(1j * np.arange(1000) / 7)).astype(np.complex64)
    base = tmp_path / "rec_868.625M"
    write_sigmf(base, from_complex(x, "cs16"), fmt="cs16", sample_rate_hz=2.4e6, center_freq_hz=868.625e6,
                annotations=[{"core:sample_start": 5, "core:sample_count": 10, "core:label": "T1 A"}])
    src = FileSource(f"{base}.sigmf-meta")
    assert (src.info.sample_rate_hz, src.info.center_freq_hz, src.fmt) == (2.4e6, 868.625e6, "cs16")
    y = np.concatenate([c.samples for c in src])
    assert np.max(np.abs(y - x)) < 1e-4
    sigmf = pytest.importorskip("sigmf")
    meta = sigmf.sigmffile.fromfile(str(base) + ".sigmf-meta")
    assert meta.get_global_field("core:sample_rate") == 2.4e6


def test_wav_iq(tmp_path):
    from scipy.io import wavfile

    iq = np.stack([np.arange(100, dtype=np.int16) * 100, -np.arange(100, dtype=np.int16) * 100], axis=1)
    path = tmp_path / "iq_868.95M.wav"
    wavfile.write(path, 1600000, iq)
    src = FileSource(str(path))
    y = np.concatenate([c.samples for c in src])
    assert src.info.sample_rate_hz == 1.6e6 and abs(y[10] - (1000 - 1000j) / 32768) < 1e-6


@pytest.mark.parametrize("fmt", ["cu8", "cs8", "cs16", "cf32"])
def test_lazy_chunks_convert_to_the_same_values_wherever_they_are_cut(tmp_path, fmt):
    # a lazy source's chunks (sdr.types.RawIQ) give the eager source's samples whole, in any slice
    # and in strided rows (the activity gate's probes): every byte value of the format occurs
    rng = np.random.default_rng(7)
    x = (rng.uniform(-1.1, 1.1, 30_001) + 1j * rng.uniform(-1.1, 1.1, 30_001)).astype(np.complex64)
    path = tmp_path / f"x.{fmt}"
    path.write_bytes(from_complex(x, fmt))
    eager = list(FileSource(str(path), sample_rate_hz=1e6, center_freq_hz=868e6, chunk_samples=7_000))
    lazy = list(FileSource(str(path), sample_rate_hz=1e6, center_freq_hz=868e6, chunk_samples=7_000, lazy=True))
    assert [c.start for c in lazy] == [c.start for c in eager] and [c.end for c in lazy] == [c.end for c in eager]
    for e, c in zip(eager, lazy, strict=True):
        ref = e.samples
        if fmt == "cf32":  # converted as read (non-finite values are replaced there)
            assert isinstance(c.samples, np.ndarray)
            continue
        assert isinstance(c.samples, RawIQ) and len(c.samples) == len(ref)
        np.testing.assert_array_equal(c.samples.complex(), ref)
        np.testing.assert_array_equal(np.asarray(c.samples), ref)
        for a, b in ((0, 1), (3, 4_000), (6_999, 7_000), (500, 200), (-10, None)):
            np.testing.assert_array_equal(c.samples[a:b].complex(), ref[a:b])
        for first in (4, 5, 6):  # rows on 8-byte words and off them (cu8: gathered either way)
            count = (len(ref) - first - 32) // 256 + 1
            rows = c.samples.rows(first, count, 256, 32)
            np.testing.assert_array_equal(rows, np.stack([ref[first + 256 * r:first + 256 * r + 32]
                                                          for r in range(count)]))
            into = np.full((count + 2, 32), complex(np.nan, np.nan), dtype=np.complex64)
            assert c.samples.rows(first, count, 256, 32, out=into[1:-1]) is not None
            np.testing.assert_array_equal(into[1:-1], rows)
            assert np.isnan(into[[0, -1]].view(np.float32)).all()  # nothing written outside ``out``
            with pytest.raises(IndexError):
                c.samples.rows(first, count + 1, 256, 32)  # past the chunk's end
