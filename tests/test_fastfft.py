"""The receive chain's FFTs and running filters without scipy imports: the same numbers as scipy."""

import numpy as np
import pytest
from scipy import fft as sfft
from scipy.ndimage import maximum_filter1d, minimum_filter1d

from dsp import fastfft
from dsp.running import centred_max, trailing_min


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
def test_complex_ffts_match_scipy_bit_for_bit(dtype):
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((7, 4096)) + 1j * rng.standard_normal((7, 4096))).astype(dtype)
    assert np.array_equal(fastfft.fft(x, axis=1), sfft.fft(x, axis=1))
    assert fastfft.fft(x, axis=1).dtype == dtype
    assert np.array_equal(fastfft.ifft(x, axis=1), sfft.ifft(x, axis=1))
    view = np.lib.stride_tricks.sliding_window_view(x.reshape(-1), 1000)[::700]
    assert np.array_equal(fastfft.fft(view, axis=1), sfft.fft(view, axis=1))
    y = x.copy()
    assert np.array_equal(fastfft.ifft(y, axis=1, overwrite_x=True), sfft.ifft(x, axis=1))


@pytest.mark.parametrize("n", [None, 1000, 5000])
def test_real_ffts_match_scipy_bit_for_bit(n):
    rng = np.random.default_rng(2)
    x = rng.standard_normal(3001)
    assert np.array_equal(fastfft.rfft(x, n), sfft.rfft(x, n))
    spec = sfft.rfft(x, n)
    assert np.array_equal(fastfft.irfft(spec, n), sfft.irfft(spec, n))
    for target in (1, 97, 1000, 3001, 12345):
        assert fastfft.next_fast_len(target) == sfft.next_fast_len(target)


def test_running_filters_match_scipy_ndimage():
    rng = np.random.default_rng(3)
    for n in (1, 2, 5, 100, 1023, 1024, 1025, 3000):
        x = rng.standard_normal(n)
        x[rng.integers(0, n)] = np.inf
        for size in (1, 2, 3, 8, 1024):
            want = minimum_filter1d(x, size=size, origin=(size - 1) // 2, mode="nearest")
            assert np.array_equal(trailing_min(x, size), want), (n, size)
        x[np.isinf(x)] = 0.0
        for size in (1, 3, 5, 101, 1025):
            assert np.array_equal(centred_max(x, size), maximum_filter1d(x, size=size)), (n, size)
    with pytest.raises(ValueError, match="odd"):
        centred_max(np.zeros(5), 4)


def test_decode_start_up_imports_no_scipy_or_matplotlib():
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys; from flowgraphs.pipelines.receive import Receiver; from flowgraphs.cli import build_parser;"
            "build_parser(); print(sorted(m for m in sys.modules if m.split('.')[0] in ('scipy', 'matplotlib')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parent.parent, check=True).stdout
    assert out.strip() == "[]"


def test_fallback_to_scipy_fft_gives_the_same_numbers(monkeypatch):
    """Where SciPy's extension is not found (another layout), scipy.fft itself is used."""
    import importlib.util
    import sys

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "scipy" else
                        real_find_spec(name, *a))
    spec = importlib.util.spec_from_file_location("fastfft_fallback", fastfft.__file__)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "fastfft_fallback", module)
    spec.loader.exec_module(module)
    assert module._pfft is None and fastfft._pfft is not None
    rng = np.random.default_rng(4)
    x = (rng.standard_normal((3, 512)) + 1j * rng.standard_normal((3, 512))).astype(np.complex64)
    out = np.empty_like(x)
    assert module.fft(x, axis=1, out=out) is out
    assert np.array_equal(out, fastfft.fft(x, axis=1))
    assert np.array_equal(module.ifft(x, axis=1), fastfft.ifft(x, axis=1))
    r = rng.standard_normal(777)
    assert np.array_equal(module.irfft(module.rfft(r, 1000), 1000), fastfft.irfft(fastfft.rfft(r, 1000), 1000))
    assert module.next_fast_len(1001) == fastfft.next_fast_len(1001)
