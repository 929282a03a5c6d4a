"""Device URIs -> sources (receivers) and TX sinks (transmitters), by name, with lazy imports.

``KIND:REST`` names a registered driver and what it opens (``rtltcp://`` is ``rtltcp`` with REST
after the ``//``). Each table maps a kind to ``("module.path", "ClassName")``; the module is
imported only when that kind is opened, so a missing driver package never breaks the others, and
opening it says which package is missing and how to install it. Adding a backend is one module
(a :class:`~sdr.source.Source` or :class:`~sdr.sink.TxSink` subclass) plus one line::

    register_source("airspy", "mypkg.airspy", "AirspySource")

Sources (``open_device``)::

    rtlsdr:0                         RTL-SDR over USB (pyrtlsdr + pyrtlsdrlib)
    rtltcp://HOST:PORT               an rtl_tcp server (our own client)
    soapy:driver=hackrf,serial=...   any SoapySDR device (Debian's python3-soapysdr)
    file:PATH                        a recording replayed at real-time pace

TX sinks (``open_tx_sink``)::

    soapy:driver=hackrf              a TX-capable SoapySDR device (HackRF, LimeSDR, PlutoSDR, USRP)
    file:PATH.cu8                    the bursts into a file, placed by their send time
    memory:NAME                      the bursts kept in a list (tests)

A driver class is called as ``Class(REST, sample_rate_hz=..., center_freq_hz=..., **options)``;
options it does not take are left out, with a warning when set.
"""

from __future__ import annotations

import importlib
import inspect
import logging

from .errors import SDRError
from .sink import TxSink
from .source import Source

log = logging.getLogger(__name__)

SOURCES: dict[str, tuple[str, str]] = {
    "rtlsdr": ("sdr.rtlsdr", "RtlSdrSource"),
    "rtltcp": ("sdr.rtltcp", "RtlTcpSource"),
    "soapy": ("sdr.soapy", "SoapySource"),
    "file": ("sdr.replay", "ReplaySource"),
}

TX_SINKS: dict[str, tuple[str, str]] = {
    "soapy": ("sdr.soapy_tx", "SoapySink"),
    "file": ("sdr.file_tx", "FileSink"),
    "memory": ("sdr.memory", "MemorySink"),
}

# missing Python package -> how to install it (default: pip install PACKAGE)
INSTALL = {
    "rtlsdr": "pip install 'wmbus-sdr[rtlsdr]' (pyrtlsdr and pyrtlsdrlib)",
    "SoapySDR": ("sudo apt-get install python3-soapysdr soapysdr-module-all, then link both SoapySDR.py and "
                 "_SoapySDR*.so from /usr/lib/python3/dist-packages into the venv's site-packages (or create "
                 "the venv with --system-site-packages)"),
}


# how each built-in kind is written, for messages; a registered kind shows as KIND:...
_USAGE = {"rtlsdr": "rtlsdr:N", "rtltcp": "rtltcp://HOST:PORT", "soapy": "soapy:ARGS", "file": "file:PATH"}
_TX_USAGE = {"soapy": "soapy:ARGS (a SoapySDR device)", "file": "file:PATH.cu8", "memory": "memory:NAME"}


def register_source(kind: str, module: str, class_name: str) -> None:
    """Make ``KIND:...`` open ``module.class_name`` (a Source subclass), imported when first used."""
    SOURCES[_kind_name(kind)] = (module, class_name)


def register_tx_sink(kind: str, module: str, class_name: str) -> None:
    """Make ``KIND:...`` a TX sink: ``module.class_name`` (a TxSink subclass), imported when first used."""
    TX_SINKS[_kind_name(kind)] = (module, class_name)


def split_uri(uri: str, table: dict[str, tuple[str, str]], what: str, usage: dict[str, str]) -> tuple[str, str]:
    """(kind, rest) of ``KIND:REST`` / ``KIND://REST``; ValueError naming the kinds there are."""
    kind, sep, rest = uri.partition(":")
    kinds = ", ".join(usage.get(k, f"{k}:...") for k in table)
    if not sep or not kind:
        raise ValueError(f"{what} {uri!r}: use {kinds}")
    kind = kind.lower()
    if kind not in table:
        raise ValueError(f"{what} {uri!r}: unknown kind {kind!r}; use {kinds}")
    return kind, rest[2:] if rest.startswith("//") else rest


def load_driver(kind: str, table: dict[str, tuple[str, str]], base: type, uri: str) -> type:
    """Import the driver class registered for ``kind`` (only now)."""
    module_name, class_name = table[kind]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        missing = err.name or ""
        if module_name == missing or module_name.startswith(missing + "."):
            raise ValueError(f"{uri}: the {kind!r} driver module {module_name!r} is not importable") from err
        package = missing.split(".")[0]
        raise SDRError(f"{uri}: the {kind} driver needs the Python package {package!r}; "
                       f"{INSTALL.get(package, f'pip install {package}')}") from err
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise ValueError(f"{uri}: {module_name}.{class_name} is not a {base.__name__} subclass")
    return cls


def open_device(uri: str, *, sample_rate_hz: float, center_freq_hz: float, gain: float | None = None,
                ppm: int = 0) -> Source:
    """The receiver source a device URI names (not started yet)."""
    kind, rest = split_uri(uri, SOURCES, "device", _USAGE)
    cls = load_driver(kind, SOURCES, Source, uri)
    return cls(rest, sample_rate_hz=sample_rate_hz, center_freq_hz=center_freq_hz,
               **_options(cls, uri, gain=(gain, None), ppm=(ppm, 0)))


def open_tx_sink(uri: str, *, sample_rate_hz: float, center_freq_hz: float, gain_db: float = 0.0,
                 max_gain_db: float = 0.0) -> TxSink:
    """The TX sink a URI names (not opened yet: use ``with sink:``)."""
    kind, rest = split_uri(uri, TX_SINKS, "TX sink", _TX_USAGE)
    cls = load_driver(kind, TX_SINKS, TxSink, uri)
    return cls(rest, sample_rate_hz=sample_rate_hz, center_freq_hz=center_freq_hz,
               **_options(cls, uri, gain_db=(gain_db, 0.0), max_gain_db=(max_gain_db, 0.0)))


def _options(cls: type, uri: str, **given: tuple[object, object]) -> dict:
    """The optional keyword arguments ``cls`` takes; a set one it does not take is logged and left out."""
    params = inspect.signature(cls.__init__).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    out = {}
    for name, (value, default) in given.items():
        if name in params or takes_any:
            out[name] = value
        elif value != default:
            log.warning("%s: %s=%s does not apply to this device and is ignored", uri, name, value)
    return out


def _kind_name(kind: str) -> str:
    if not kind.isidentifier():
        raise ValueError(f"device kind {kind!r}: give a plain name such as 'airspy'")
    return kind.lower()


__all__ = ["SOURCES", "TX_SINKS", "SDRError", "open_device", "open_tx_sink", "register_source", "register_tx_sink"]
