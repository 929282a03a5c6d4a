"""FFTs for the receive chain without the cost of importing ``scipy.fft``.

``import scipy.fft`` takes ~0.3 s of CPU (it pulls in ``scipy.special`` for the FFTLog transform),
which is most of the receiver's start-up, while the chain only needs complex and real FFTs. SciPy's
FFTs are its bundled pocketfft extension; this module loads that extension file by itself and calls
it exactly as ``scipy.fft`` does (same transform, same normalisation, same threads: bit-identical
results, checked by tests/test_fastfft.py). numpy.fft is no substitute: it is ~4x slower on complex64.
Should the extension not be found where SciPy keeps it (another SciPy layout), ``scipy.fft`` itself
is used: slower to import, same numbers.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import logging
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


def _load_pocketfft():
    """SciPy's pocketfft extension module, loaded from its file; None when it is not there."""
    spec = importlib.util.find_spec("scipy")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "fft" / "_pocketfft"
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = folder / f"pypocketfft{suffix}"
        if path.is_file():
            loader = importlib.machinery.ExtensionFileLoader("scipy.fft._pocketfft.pypocketfft", str(path))
            ext_spec = importlib.util.spec_from_file_location(loader.name, str(path), loader=loader)
            module = importlib.util.module_from_spec(ext_spec)
            loader.exec_module(module)
            if all(hasattr(module, f) for f in ("c2c", "r2c", "c2r", "good_size")):
                return module
    return None


try:
    _pfft = _load_pocketfft()
except ImportError as exc:  # an extension that would not load: scipy.fft below reports real trouble
    log.debug("pocketfft extension not loadable directly (%s); using scipy.fft", exc)
    _pfft = None

if _pfft is None:
    from scipy import fft as _sfft

    def fft(x: np.ndarray, axis: int = -1, overwrite_x: bool = False, out: np.ndarray | None = None) -> np.ndarray:
        y = _sfft.fft(x, axis=axis, overwrite_x=overwrite_x)
        if out is not None:
            out[...] = y
            return out
        return y

    def ifft(x: np.ndarray, axis: int = -1, overwrite_x: bool = False) -> np.ndarray:
        return _sfft.ifft(x, axis=axis, overwrite_x=overwrite_x)

    def rfft(x: np.ndarray, n: int | None = None, axis: int = -1) -> np.ndarray:
        return _sfft.rfft(x, n, axis=axis)

    def irfft(x: np.ndarray, n: int | None = None, axis: int = -1) -> np.ndarray:
        return _sfft.irfft(x, n, axis=axis)

    def next_fast_len(target: int, real: bool = False) -> int:
        return _sfft.next_fast_len(target, real)

else:
    # The calls scipy.fft makes (scipy/fft/_pocketfft/basic.py), for the arguments used here:
    # norm "backward" (inorm 0 forward, 2 = 1/n inverse), one thread.

    def _float(x) -> np.ndarray:
        x = np.asarray(x)
        if x.dtype.kind not in "fc" or x.dtype == np.float16:
            x = np.asarray(x, np.float32 if x.dtype == np.float16 else np.float64)
        if not x.flags.aligned or not x.dtype.isnative:
            x = np.array(x, dtype=x.dtype.newbyteorder("="))
        return x

    def _c2c(x, axis: int, forward: bool, overwrite_x: bool, out: np.ndarray | None = None) -> np.ndarray:
        a = _float(x)
        if a.shape[axis] < 1:
            raise ValueError(f"invalid number of data points ({a.shape[axis]}) specified")
        copied = a is not x and isinstance(x, np.ndarray) and a.base is None
        if out is None and (overwrite_x or copied) and a.dtype.kind == "c":
            out = a
        return _pfft.c2c(a, (axis,), forward, 0 if forward else 2, out, 1)

    def _fit(a: np.ndarray, n: int, axis: int) -> np.ndarray:
        """Cut or zero-pad ``a`` to ``n`` points along ``axis`` (as scipy.fft does with ``n``)."""
        if n < 1:
            raise ValueError(f"invalid number of data points ({n}) specified")
        have = a.shape[axis]
        if have == n:
            return a
        index = [slice(None)] * a.ndim
        index[axis] = slice(0, min(have, n))
        if have > n:
            return a[tuple(index)]
        shape = list(a.shape)
        shape[axis] = n
        z = np.zeros(shape, a.dtype)
        z[tuple(index)] = a
        return z

    def fft(x: np.ndarray, axis: int = -1, overwrite_x: bool = False, out: np.ndarray | None = None) -> np.ndarray:
        """``out``: a complex array of the result's shape and dtype to write into (scipy.fft has none)."""
        return _c2c(x, axis, True, overwrite_x, out)

    def ifft(x: np.ndarray, axis: int = -1, overwrite_x: bool = False) -> np.ndarray:
        return _c2c(x, axis, False, overwrite_x)

    def rfft(x: np.ndarray, n: int | None = None, axis: int = -1) -> np.ndarray:
        a = _float(x)
        if a.dtype.kind == "c":
            raise TypeError("x must be a real sequence")
        if n is not None:
            a = _fit(a, n, axis)
        elif a.shape[axis] < 1:
            raise ValueError(f"invalid number of data points ({a.shape[axis]}) specified")
        return _pfft.r2c(a, (axis,), True, 0, None, 1)

    def irfft(x: np.ndarray, n: int | None = None, axis: int = -1) -> np.ndarray:
        a = _float(x)
        if a.dtype.kind != "c":
            a = a + 0.0j
        if n is None:
            n = (a.shape[axis] - 1) * 2
            if n < 1:
                raise ValueError(f"Invalid number of data points ({n}) specified")
        else:
            a = _fit(a, n // 2 + 1, axis)
        return _pfft.c2r(a, (axis,), n, False, 2, None, 1)

    def next_fast_len(target: int, real: bool = False) -> int:
        return _pfft.good_size(target, real)
