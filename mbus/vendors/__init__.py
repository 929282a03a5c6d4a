"""Vendor decoders: values meters send outside the standard records, described as data.

Each decoder is one ``[[decoder]]`` table in ``vendors.toml`` (which meters — manufacturer, version,
device type it was checked on —, where its bytes are, their layout, scaling and units); ``layout.py``
interprets the fields, ``diehl.py`` holds the only code-level vendor logic (Diehl's LFSR scrambling).
Every record made here carries ``vendor <name>`` in its modifiers so nobody mistakes it for
OMS-defined data. Layouts are facts from public decoders (wmbusmeters drivers), checked against
published telegrams (tests/test_vendors.py); code is our own.

Hooks for mbus.telegram: :func:`known_format` (Kamstrup compact-frame formats by signature),
:func:`vendor_records` (DIF 0x0F tail and DIF/VIF manufacturer records),
:func:`vendor_payload_records` (payload behind a manufacturer CI), :func:`vendor_apl_records`
(whole APL behind a transport header), :func:`unscramble` (Diehl real-data frames). For
``--output explain``: :func:`candidates`.
"""

from __future__ import annotations

import functools
import logging
import marshal
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from ..dll import Address
from ..records import DataRecord, decode_records
from ..security.manufacturer import ManufacturerFrame, Opened, register_opener
from . import bmeters, diehl
from .layout import Field, LayoutError, Sum, parse_field, parse_sum, read_fields

log = logging.getLogger(__name__)

DATA_FILE = Path(__file__).with_name("vendors.toml")
SOURCES = ("ci", "tail", "record", "apl", "frame")
CIPHERS = ("", "diehl_prios", "bmeters_rfmtx1")


@dataclass(frozen=True, slots=True, kw_only=True)
class VendorDecoder:
    name: str
    manufacturers: frozenset[str]
    versions: frozenset[int]
    device_types: frozenset[int]
    source: str  # ci | tail | record | apl | frame
    cis: frozenset[int] = frozenset()
    record: bytes = b""  # source "record": the DIF/VIF header of the record holding the bytes
    fields: tuple[Field, ...] = ()
    sums: tuple[Sum, ...] = ()
    require: tuple[tuple[int, frozenset[int]], ...] = ()
    min_length: int = 0
    start: int = 0
    address: str = ""  # "diehl_prios": version / device type read the Diehl way
    cipher: str = ""  # "diehl_prios"
    skip_block: tuple[int, int] | None = None  # (offset of a length byte, byte that must follow the block)
    checked_on: tuple[str, ...] = ()
    facts: str = ""
    meters: frozenset[tuple[str, int, int]] = frozenset()  # the exact (manufacturer, version, type) checked
    declared: tuple[tuple[str, int, int], ...] = ()  # named by the public source but not checked: not applied

    @property
    def tag(self) -> str:
        return f"vendor {self.name}"

    @property
    def ci(self) -> int | None:  # the older API: None = the bytes after DIF 0x0F
        return min(self.cis) if self.cis else None

    def serves(self, address: Address, frame: bytes = b"") -> bool:
        return self.why_not(address, frame) is None

    def why_not(self, address: Address, frame: bytes = b"") -> str | None:
        """None if the decoder serves this meter, else the reason it does not."""
        m = address.manufacturer_code
        if m not in self.manufacturers:
            return f"manufacturer {m} is not {'/'.join(sorted(self.manufacturers))}"
        version, device_type = address.version, address.device_type
        if self.address == "diehl_prios" and len(frame) >= 10:
            version, device_type = diehl.prios_address(frame, address)
        if version not in self.versions:
            return f"version 0x{version:02X} not checked (checked: {_hexes(self.versions)})"
        if device_type not in self.device_types:
            return f"device type 0x{device_type:02X} not checked (checked: {_hexes(self.device_types)})"
        if self.meters and (m, version, device_type) not in self.meters:
            return (f"{m} version 0x{version:02X} with device type 0x{device_type:02X} not checked (checked: "
                    + ", ".join(f"{a} 0x{b:02X}/0x{c:02X}" for a, b, c in sorted(self.meters)) + ")")
        return None

    def fits(self, data: bytes) -> str | None:
        """None if the bytes have this decoder's shape, else why not."""
        if len(data) < self.min_length:
            return f"{len(data)} bytes, the layout needs {self.min_length}"
        for offset, values in self.require:
            if offset >= len(data) or data[offset] not in values:
                got = f"0x{data[offset]:02X}" if offset < len(data) else "nothing"
                return f"byte {offset} is {got}, the layout needs {_hexes(values)}"
        return None

    def decode(self, data: bytes, offset: int = 0) -> list[DataRecord]:
        """Records from the decoder's bytes (``offset``: where data[0] sits in the APL); [] when the
        bytes do not have the decoder's shape. Never raises on any bytes."""
        if self.skip_block is not None:
            at, then = self.skip_block
            if at >= len(data):
                return []
            skip = at + 1 + data[at]
            if skip >= len(data) or data[skip] != then:
                return []
            data, offset = data[skip + 1:], offset + skip + 1
        if self.fits(data) is not None:
            return []
        return self.read(data, offset)

    def read(self, data: bytes, offset: int = 0) -> list[DataRecord]:
        """The fields from bytes already checked (or opened by a cipher)."""
        return read_fields(self.fields, self.sums, data, offset, self.tag, self.start)


def _hexes(values) -> str:
    return ", ".join(f"0x{v:02X}" for v in sorted(values))


def _ints(v, where: str) -> frozenset[int]:
    items = v if isinstance(v, list) else [v]
    if not all(isinstance(x, int) for x in items):
        raise LayoutError(f"{where}: expected integers, got {v!r}")
    return frozenset(items)


def _triples(v, where: str) -> list[tuple[str, int, int]]:
    out = []
    for item in v:
        if (not isinstance(item, list) or len(item) != 3 or not isinstance(item[0], str)
                or not all(isinstance(x, int) for x in item[1:])):
            raise LayoutError(f"{where}: a meter is [manufacturer, version, device type], got {item!r}")
        out.append((item[0], item[1], item[2]))
    return out


def _document(path: Path) -> dict:
    """vendors.toml parsed once per version of the file (decoders and compact formats come from the
    same file; parsing it is a fifth of the command-line start-up)."""
    st = path.stat()
    return _parsed(path, st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=4)
def _parsed(path: Path, mtime_ns: int, size: int) -> dict:
    """The parsed document, from a marshal copy in __pycache__ when one was made from this version
    of the file (tomllib is pure Python: ~16 ms for vendors.toml, the copy ~0.5 ms); the copy is
    written like a .pyc (not under PYTHONDONTWRITEBYTECODE, silently not where the package is
    read-only)."""
    cache = path.parent / "__pycache__" / f"{path.name}.{size}.{mtime_ns}.marshal"
    try:
        doc = marshal.loads(cache.read_bytes())
    except (OSError, EOFError, ValueError, TypeError):
        doc = None
    if isinstance(doc, dict):
        return doc
    import tomllib  # noqa: PLC0415 (only when the copy is missing: ~2.5 ms)

    with path.open("rb") as f:
        doc = tomllib.load(f)
    if not sys.dont_write_bytecode:
        try:
            data = marshal.dumps(doc)
        except ValueError:  # a value marshal cannot hold (a TOML date): no copy
            return doc
        try:
            cache.parent.mkdir(exist_ok=True)
            tmp = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, cache)
        except OSError as err:
            log.debug("%s: no parsed copy written (%s)", cache, err)
    return doc


def load(path: Path = DATA_FILE) -> tuple[VendorDecoder, ...]:
    """Parse vendors.toml. A defect in the file raises LayoutError naming the decoder and field."""
    doc = _document(path)
    out = []
    for i, d in enumerate(doc.get("decoder", [])):
        where = f"{path.name} decoder #{i + 1} ({d.get('name', '?')})"
        source = d.get("source")
        if source not in SOURCES:
            raise LayoutError(f"{where}: source {source!r} is not one of {SOURCES}")
        skip = d.get("skip_block")
        meters = _triples(d.get("meters", []), where)
        declared = _triples(d.get("declared", []), where)
        if meters:
            d = {**d, "manufacturers": sorted({m for m, _, _ in meters}), "versions": sorted({v for _, v, _ in meters}),
                 "device_types": sorted({t for _, _, t in meters})}
        try:
            dec = VendorDecoder(
                name=d["name"], manufacturers=frozenset(d["manufacturers"]), meters=frozenset(meters),
                declared=tuple(sorted(declared)),
                versions=_ints(d["versions"], where), device_types=_ints(d["device_types"], where),
                source=source, cis=_ints(d.get("cis", []), where), record=bytes.fromhex(d.get("record", "")),
                fields=tuple(parse_field(f, f"{where} field {f.get('name', j)}")
                             for j, f in enumerate(d.get("field", []))),
                sums=tuple(parse_sum(s, where) for s in d.get("sum", [])),
                require=tuple((int(r[0]), _ints(r[1], where)) for r in d.get("require", [])),
                min_length=int(d.get("min_length", 0)), start=int(d.get("start", 0)),
                address=d.get("address", ""), cipher=d.get("cipher", ""),
                skip_block=None if skip is None else (int(skip["length_at"]), int(skip["then"])),
                checked_on=tuple(d.get("checked_on", ())), facts=d.get("facts", ""))
        except KeyError as err:
            raise LayoutError(f"{where}: lacks {err.args[0]!r}") from None
        if dec.cipher not in CIPHERS or dec.address not in ("", "diehl_prios"):
            raise LayoutError(f"{where}: unknown cipher / address method")
        if source == "ci" and not dec.cis:
            raise LayoutError(f"{where}: source ci needs cis")
        if source == "record" and not dec.record:
            raise LayoutError(f"{where}: source record needs record")
        out.append(dec)
    return tuple(out)


@dataclass(frozen=True, slots=True, kw_only=True)
class KnownFormat:
    """A compact-frame format a manufacturer uses, known by its signature (no full frame needed)."""

    manufacturers: frozenset[str]
    signature: int
    headers: bytes


def load_formats(path: Path = DATA_FILE) -> tuple[KnownFormat, ...]:
    """The ``[[compact_format]]`` tables; a signature that is not its headers' CRC is a LayoutError."""
    from ..compact import signature

    doc = _document(path)
    out = []
    for i, d in enumerate(doc.get("compact_format", [])):
        where = f"{path.name} compact_format #{i + 1}"
        try:
            fmt = KnownFormat(manufacturers=frozenset(d["manufacturers"]), signature=int(d["signature"]),
                              headers=bytes.fromhex(d["headers"]))
        except (KeyError, ValueError) as err:
            raise LayoutError(f"{where}: {err}") from None
        if signature(fmt.headers) != fmt.signature:
            raise LayoutError(f"{where}: signature 0x{fmt.signature:04X} is not the CRC of its headers "
                              f"(0x{signature(fmt.headers):04X})")
        out.append(fmt)
    return tuple(out)


# DECODERS and FORMATS are parsed from vendors.toml on first use (module __getattr__): parsing it
# is ~20 ms, and a decode that meets no manufacturer-specific bytes never needs it. Assigning the
# module attribute (a test's own decoders) replaces them as before.
_LOADERS = {"DECODERS": load, "FORMATS": load_formats}


def __getattr__(name: str):
    loader = _LOADERS.get(name)
    if loader is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = globals()[name] = loader()
    return value


def _decoders() -> tuple[VendorDecoder, ...]:
    found = globals().get("DECODERS")
    return __getattr__("DECODERS") if found is None else found


def _formats() -> tuple[KnownFormat, ...]:
    found = globals().get("FORMATS")
    return __getattr__("FORMATS") if found is None else found


def known_format(address: Address, sig: int) -> bytes | None:
    """The record headers of a compact-frame format this manufacturer is known to use."""
    for fmt in _formats():
        if fmt.signature == sig and address.manufacturer_code in fmt.manufacturers:
            return fmt.headers
    return None


def _tagged(records: list[DataRecord], note: str) -> list[DataRecord]:
    from dataclasses import replace

    return [replace(r, modifiers=(*r.modifiers[:-1], note, r.modifiers[-1])) for r in records]


# --- hooks for mbus.telegram --------------------------------------------------------------------------


_SERVING: dict[tuple, tuple[VendorDecoder, ...]] = {}
_SERVING_OF: list = [None]  # the DECODERS the cache was made from


def _serving(sources: tuple[str, ...], address: Address) -> tuple[VendorDecoder, ...]:
    """The decoders of these sources that serve this meter (by its address alone), in DECODERS
    order; remembered per (manufacturer, version, device type): asked for every telegram."""
    decoders = _decoders()
    if _SERVING_OF[0] is not decoders or len(_SERVING) > 4096:
        _SERVING.clear()
        _SERVING_OF[0] = decoders
    key = (sources, address.manufacturer, address.version, address.device_type)
    found = _SERVING.get(key)
    if found is None:
        found = _SERVING[key] = tuple(d for d in decoders if d.source in sources and d.serves(address))
    return found


def vendor_records(address: Address, records: list[DataRecord] | tuple[DataRecord, ...]) -> list[DataRecord]:
    """Records decoded from manufacturer bytes inside standard records: the DIF 0x0F / 0x1F tail and
    manufacturer DIF/VIF records (e.g. Qundis 0DFF5F), when a decoder serves this meter."""
    out: list[DataRecord] = []
    for dec in _serving(("tail", "record"), address):
        for r in records:
            if dec.source == "tail":
                if r.quantity != "manufacturer_data" or not r.data:
                    continue
                got = dec.decode(r.data, r.offset + len(r.dib))
            else:
                if r.header != dec.record or not r.data:
                    continue
                got = dec.decode(r.data, r.offset + len(r.raw) - len(r.data))
            if got:
                out.extend(got)
                break
    return out


def vendor_payload_records(address: Address, ci: int, payload: bytes, frame: bytes = b"",
                           key: bytes | None = None) -> list[DataRecord]:
    """Records from a manufacturer-specific CI's payload, when a decoder serves this meter.
    ``frame`` (the canonical frame) is needed by scrambled layouts (Diehl PRIOS)."""
    for dec in _decoders():
        if dec.source != "ci" or ci not in dec.cis or not dec.serves(address, frame):
            continue
        if dec.cipher == "diehl_prios":
            opened = diehl.prios_descramble(frame, key) if len(frame) >= 16 else None
            if opened is None:
                continue
            plain, which = opened
            got = dec.decode(payload[:4] + plain, 0)
            got = _tagged(got, f"PRIOS descrambled ({which})") if got else got
        else:
            got = dec.decode(payload, 0)
        if got:
            return got
    return []


def vendor_apl_records(address: Address, apl: bytes) -> list[DataRecord] | None:
    """Records of an application layer that is a vendor layout as a whole (None: no decoder serves
    this meter or the bytes do not fit; the standard records are parsed then)."""
    for dec in _serving(("apl",), address):
        got = dec.decode(apl, 0)
        if got:
            return got
    return None


def vendor_frame_records(address: Address, frame: bytes) -> list[DataRecord]:
    """Records of a frame whose values sit at fixed frame offsets behind a vendor scrambler
    (B METERS RFM-TX1), when a decoder serves this meter and the frame has its shape."""
    for dec in _decoders():
        if dec.source != "frame" or not dec.serves(address, frame) or dec.fits(frame) is not None:
            continue
        view = bmeters.rfmtx1_unscramble(frame) if dec.cipher == "bmeters_rfmtx1" else None
        if view is not None:
            got = dec.read(view, 0)
            if got:
                return _tagged(got, "descrambled with the access number")
    return []


def vendor_serves(address: Address, frame: bytes = b"") -> bool:
    """Whether any vendor decoder is checked on this meter (for the decryption outcome of
    manufacturer-specific CIs and modes)."""
    return any(dec.serves(address, frame) for dec in _decoders())


@dataclass(frozen=True, slots=True, kw_only=True)
class Unscrambled:
    payload: bytes
    how: str  # for the telegram's message / notes (never a key)
    scrambled: bool  # False: the bytes were plaintext in spite of the flag


def unscramble(frame: bytes, address: Address, start: int, key: bytes | None = None) -> Unscrambled | None:
    """Diehl "real data" frames (CI 0x7A whose CF mode bits have bit 4 set — read as modes 16-31 by a
    standard parser). The CF's high byte (bit 4 masked) is the byte sum of the plaintext: the data
    from ``start`` is taken as it is when its own sum fits (already descrambled), else descrambled
    with the meter's key or a published default key whose output fits the sum and parses as
    records; else None (the frame keeps its security outcome, no records)."""
    if start != 15 or not diehl.is_real_data(frame, address):
        return None
    raw = frame[15:]
    if raw and sum(raw) & 0xEF == frame[14] & 0xEF:
        return Unscrambled(payload=raw, how="vendor diehl real data: bytes already in the clear (their sum "
                                            "matches the CF checksum)", scrambled=False)
    opened = diehl.real_data_descramble(frame, key)
    if opened is not None:
        plain, which = opened
        result = decode_records(plain)
        if not result.errors and result.records:
            return Unscrambled(payload=plain, how=f"vendor diehl real data: LFSR descrambled ({which}), "
                                                   "checksum verified", scrambled=True)
    return None


def _diehl_real_data_opener(frame: ManufacturerFrame) -> Opened | None:
    """Diehl "real data" through the security layer's manufacturer hook (CF modes 16-31)."""
    if frame.ci != 0x7A or frame.c_field not in (0x44, 0x46):
        return None
    got = unscramble(frame.header + frame.data, frame.link_address, len(frame.header), frame.key)
    if got is None:
        return None
    return Opened(payload=got.payload, how=got.how, in_clear=not got.scrambled)


register_opener(_diehl_real_data_opener)


def candidates(telegram) -> list[tuple[VendorDecoder, bool, str]]:
    """Every decoder, whether it applied to this decoded telegram (mbus.telegram.Telegram) and why
    (for ``--output explain``): the meter check first, then where the bytes are, then their shape."""
    address = telegram.link.address
    frame = telegram.canonical
    tagged = {r.modifiers[-1] for r in telegram.records if r.modifiers}
    ci = telegram.ci_chain[-1] if telegram.ci_chain else None
    out = []
    for dec in _decoders():
        why = dec.why_not(address, frame)
        if why is not None:
            out.append((dec, False, why))
            continue
        done = dec.tag in tagged
        if done:
            out.append((dec, True, f"decoded ({len([r for r in telegram.records if r.modifiers[-1:] == (dec.tag,)])} "
                                   "records)"))
        elif telegram.payload is None:
            out.append((dec, False, f"no plaintext application data ({telegram.decryption})"))
        elif dec.source == "ci" and ci not in dec.cis:
            out.append((dec, False, f"CI {'none' if ci is None else f'0x{ci:02X}'} is not {_hexes(dec.cis)}"))
        elif dec.source == "frame":
            out.append((dec, False, f"the frame does not have the layout's shape: {dec.fits(frame) or 'empty'}"))
        elif dec.source == "ci" and dec.cipher:
            out.append((dec, False, "descrambling failed with every key (check byte differs)"))
        elif dec.source == "tail":
            out.append((dec, False, "no DIF 0x0F / 0x1F manufacturer data with the layout's shape"))
        elif dec.source == "record":
            out.append((dec, False, f"no record {dec.record.hex().upper()} with the layout's shape"))
        else:
            out.append((dec, False, "the bytes do not have the layout's shape"
                                    + (f": {dec.fits(telegram.payload)}" if dec.fits(telegram.payload) else "")))
    return out
