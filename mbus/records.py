"""Application data records (EN 13757-3): DIF [DIFE...] VIF [VIFE...] data.

:func:`iter_results` is a lazy iterator over a plaintext APL; each :class:`DataRecord` keeps its
raw bytes and offset; a record that cannot be decoded comes as a :class:`BadRecord`, and decoding
resumes after it by its declared length (DIF/DIFE/VIF/VIFE + data). The stages of one record:
:func:`_read_dib` -> :func:`_read_vib` (+ :func:`_read_vifes`) -> :func:`_read_data` -> :func:`_make_record`.
Values are exact: ``value`` is a :class:`decimal.Decimal` (raw x 10^exp).
:func:`build_record` encodes a record again (for the TX path and round-trip tests).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

from .errors import DecodeError, TruncatedError
from .vif_tables import (
    FD_UNSIGNED,
    ORTHOGONAL,
    PRIMARY,
    RECORD_ERRORS,
    TABLE_FB,
    TABLE_FC,
    TABLE_FD,
    TABLE_FD_7D,
    Vif,
)

FUNCTIONS = ("instantaneous", "maximum", "minimum", "error")
# DIF data field -> (length, coding); LVAR (0xD) has a variable length.
DATA_FIELDS = {0x0: (0, "none"), 0x1: (1, "int"), 0x2: (2, "int"), 0x3: (3, "int"), 0x4: (4, "int"),
               0x5: (4, "real"), 0x6: (6, "int"), 0x7: (8, "int"), 0x8: (0, "selection"), 0x9: (1, "bcd"),
               0xA: (2, "bcd"), 0xB: (3, "bcd"), 0xC: (4, "bcd"), 0xD: (-1, "lvar"), 0xE: (6, "bcd")}

_UNKNOWN = Vif("unknown")
_MANUFACTURER = Vif("manufacturer_specific", kind="raw")
_PLAIN = Vif("plain_text_unit")


class RecordError(DecodeError):
    """A data record that cannot be decoded (reason "record")."""

    reason = "record"


@dataclass(frozen=True, slots=True, kw_only=True)
class DataRecord:
    offset: int  # in the application data (plaintext APL)
    raw: bytes
    dib: bytes  # DIF + DIFEs
    vib: bytes  # VIF + VIFEs (+ plain-text unit)
    data: bytes
    function: str
    storage: int = 0
    tariff: int = 0
    subunit: int = 0
    quantity: str = ""
    unit: str = ""
    value: Decimal | None = None
    text: str | None = None
    modifiers: tuple[str, ...] = ()
    error: str | None = None
    note: str | None = None  # why value / text is None ("no value" markers), or what a date flag says
    time_point: str | None = None  # a compact-profile element's time (ISO 8601, local meter time)
    derived_from: int | None = None  # offset of the compact-profile record this value was expanded from

    @property
    def header(self) -> bytes:
        return self.dib + self.vib

    def value_text(self) -> str:
        if self.value is not None:
            return format_decimal(self.value)
        return self.text if self.text is not None else ""

    def describe(self) -> str:
        parts = [self.quantity.replace("_", " ")]
        v = self.value_text()
        if v:
            parts.append(v)
        if self.unit and self.value is not None:
            parts.append(self.unit)
        extra = []
        if self.function != "instantaneous":
            extra.append(self.function)
        if self.storage:
            extra.append(f"storage {self.storage}")
        if self.tariff:
            extra.append(f"tariff {self.tariff}")
        if self.subunit:
            extra.append(f"subunit {self.subunit}")
        extra += self.modifiers
        if self.time_point:
            extra.append(f"at {self.time_point}")
        if self.error:
            extra.append(f"error: {self.error}")
        if self.note:
            extra.append(self.note)
        return " ".join(parts) + (f" ({', '.join(extra)})" if extra else "")

    def to_json(self) -> dict:
        d = {"quantity": self.quantity, "unit": self.unit, "value": json_number(self.value),
             "storage": self.storage, "tariff": self.tariff, "subunit": self.subunit, "function": self.function,
             "dif": self.dib.hex(), "vif": self.vib.hex(), "raw": self.raw.hex(), "offset": self.offset}
        if self.text is not None:
            d["text"] = self.text
        if self.modifiers:
            d["modifiers"] = list(self.modifiers)
        if self.error:
            d["error"] = self.error
        if self.note:
            d["note"] = self.note
        if self.time_point is not None:
            d["time_point"] = self.time_point
        if self.derived_from is not None:
            d["derived_from"] = self.derived_from
        return d


def format_decimal(value: Decimal) -> str:
    """Plain notation, no exponent, no binary float noise: 123.456 stays 123.456."""
    text = format(value, "f")
    return text


def json_number(value: Decimal | None):
    """A JSON number that prints exactly the decimal value (float repr is shortest round-trip)."""
    if value is None:
        return None
    if value == value.to_integral_value() and abs(value) < 2**63:
        return int(value)
    f = float(value)
    if Decimal(repr(f)) == value:
        return f
    return format_decimal(value)


# --- data types ---------------------------------------------------------------------------------


def bcd_value(data: bytes) -> int | None:
    """Type A: packed BCD, LSB first; an F in the top nibble means negative. None if not BCD."""
    digits = data[::-1].hex()
    negative = digits[:1] == "f"
    if negative:
        digits = digits[1:] or "0"
    if not digits.isdigit():
        return None
    n = int(digits)
    return -n if negative else n


def _year(y: int, hundred: int) -> int:
    """EN 13757-3 Annex A: without hundred-year bits, years 0-80 are 2000-2080 and 81-99 are
    1981-1999; with them, 1900 + 100 x hundred + year (hundred 1 and year 26 = 2026)."""
    if hundred == 0:
        return 2000 + y if y <= 80 else 1900 + y
    return 1900 + 100 * hundred + y


# each date/time part: (periodic "every ..." code, valid range, how it prints when periodic)
_PARTS = {"year": (127, range(0, 100), "****"), "month": (15, range(1, 13), "**"), "day": (0, range(1, 32), "**"),
          "hour": (31, range(0, 24), "**"), "minute": (63, range(0, 60), "**"), "second": (63, range(0, 60), "**")}


def _parts(values: list[tuple[str, int, str]]) -> tuple[list[str] | None, list[str], str | None]:
    """Each (part name, raw value, printed value) checked: (texts with periodic parts as asterisks,
    the periodic part names, the reason the first invalid part is invalid)."""
    texts, periodic = [], []
    for name, value, shown in values:
        every, valid, star = _PARTS[name]
        if value == every:
            texts.append(star)
            periodic.append(name)
        elif value not in valid:
            return None, [], f"{name} {value} out of range"
        else:
            texts.append(shown)
    return texts, periodic, None


def _date_part(year7: int, hundred: int, month: int, day: int) -> tuple[str | None, list[str], str | None]:
    """(YYYY-MM-DD with periodic parts as asterisks, periodic part names, invalid reason)."""
    texts, periodic, invalid = _parts([("year", year7, f"{_year(year7, hundred):04d}"),
                                       ("month", month, f"{month:02d}"), ("day", day, f"{day:02d}")])
    return ("-".join(texts) if texts else None), periodic, invalid


def _time_part(hour: int, minute: int, second: int | None = None) -> tuple[str | None, list[str], str | None]:
    parts = [("hour", hour, f"{hour:02d}"), ("minute", minute, f"{minute:02d}")]
    if second is not None:
        parts.append(("second", second, f"{second:02d}"))
    texts, periodic, invalid = _parts(parts)
    return (":".join(texts) if texts else None), periodic, invalid


def _finish(text: str | None, periodic: list[str], invalid: str | None, flags: list[str],
            data: bytes, type_name: str, empty: bool = False) -> tuple[str | None, str | None]:
    if empty or not any(data) or (type_name == "G" and data == b"\xff\xff"):
        return None, f"no date (type {type_name} {data.hex()}: the meter has none)"
    if invalid is not None:
        return None, f"invalid type {type_name} date/time {data.hex()}: {invalid}"
    notes = list(flags)
    if periodic:
        notes.append("periodic: every " + ", every ".join(periodic))
    return text, "; ".join(notes) or None


def decode_date(data: bytes) -> tuple[str | None, str | None]:
    """(text, note) of a date/time record by its length: type G (2 bytes, date), J (3, time of
    day), F (4, date and time), I (6, date and time with seconds). Periodic parts are asterisks
    (``****-01-01`` = every 1 January); no date (day and month 0, FFFF) and impossible fields give text
    None and the reason in the note; the IV ("invalid") and SU (summer time) flags are notes."""
    n = len(data)
    b = data
    if n == 2:
        text, periodic, invalid = _date_part((b[0] >> 5) | ((b[1] >> 4) << 3), 0, b[1] & 0x0F, b[0] & 0x1F)
        return _finish(text, periodic, invalid, [], data, "G", empty=not b[0] & 0x1F and not b[1] & 0x0F)
    if n == 3:
        text, periodic, invalid = _time_part(b[2] & 0x1F, b[1] & 0x3F, b[0] & 0x3F)
        if not any(data):
            return "00:00:00", None  # midnight is a time, not a missing one
        return _finish(text, periodic, invalid, [], data, "J")
    if n == 4:
        day_text, p1, inv1 = _date_part((b[2] >> 5) | ((b[3] >> 4) << 3), (b[1] >> 5) & 3, b[3] & 0x0F, b[2] & 0x1F)
        time_text, p2, inv2 = _time_part(b[1] & 0x1F, b[0] & 0x3F)
        flags = []
        if b[0] & 0x80:
            flags.append("IV bit set: the meter marks this time as invalid")
        if b[1] & 0x80:
            flags.append("summer time")
        text = f"{day_text}T{time_text}" if day_text and time_text else None
        return _finish(text, p1 + p2, inv1 or inv2, flags, data, "F", empty=not b[2] & 0x1F and not b[3] & 0x0F)
    if n == 6:
        day_text, p1, inv1 = _date_part((b[3] >> 5) | ((b[4] >> 4) << 3), 0, b[4] & 0x0F, b[3] & 0x1F)
        time_text, p2, inv2 = _time_part(b[2] & 0x1F, b[1] & 0x3F, b[0] & 0x3F)
        flags = []
        if b[1] & 0x80:
            flags.append("IV bit set: the meter marks this time as invalid")
        if b[0] & 0x40:
            flags.append("summer time")
        if b[5] >> 6:
            flags.append(f"DST deviation {'+' if b[1] & 0x40 else '-'}{b[5] >> 6} h")
        if b[2] >> 5:
            flags.append(f"day of week {b[2] >> 5}")
        if b[5] & 0x3F:
            flags.append(f"week {b[5] & 0x3F}")
        text = f"{day_text}T{time_text}" if day_text and time_text else None
        return _finish(text, p1 + p2, inv1 or inv2, flags, data, "I", empty=not b[3] & 0x1F and not b[4] & 0x0F)
    return None, f"date/time of {n} bytes: no type of EN 13757-3 Annex A has this length; bytes {data.hex()}"


def date_g(b: bytes) -> str | None:
    return decode_date(b[:2])[0]


def datetime_f(b: bytes) -> str | None:
    return decode_date(b[:4])[0]


def datetime_i(b: bytes) -> str | None:
    return decode_date(b[:6])[0]


def time_j(b: bytes) -> str | None:
    return decode_date(b[:3])[0]


# --- parsing ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class BadRecord:
    """A record that could not be decoded: its bytes (to its declared end when that is known, else
    to the end of the APL), the error, and whether decoding went on after it."""

    offset: int
    raw: bytes
    error: DecodeError
    resynced: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordsResult:
    records: tuple[DataRecord, ...]
    errors: tuple[DecodeError, ...]  # one per bad record, in order


# The stages hand plain tuples to each other (a dataclass per stage costs ~10 % of the decode):
#   DIB = (dif, raw, storage, tariff, subunit)
#   VIB = (raw, entry, plain_unit, modifiers, record error, exponent adjustment, unit suffix)


def iter_results(apl: bytes, *, to_meter: bool = False) -> Iterator[DataRecord | BadRecord]:
    """Every record of a plaintext APL, lazily: a :class:`DataRecord`, or a :class:`BadRecord`
    after which decoding resumes at the bad record's declared end (DIF/DIFE/VIF/VIFE + data
    length). When that length cannot be known (truncated, reserved DIF or LVAR) the BadRecord is
    the last item."""
    n = len(apl)
    pos = 0
    while pos < n:
        start = pos
        dif = apl[pos]
        if dif == 0x2F:  # idle filler
            pos += 1
            continue
        if dif in (0x0F, 0x1F):  # manufacturer data / more records follow: the rest of the APL
            yield _tail_record(apl, start)
            return
        if dif == 0x7F:
            yield DataRecord(offset=start, raw=bytes((dif,)), dib=bytes((dif,)), vib=b"", data=b"",
                             function="readout_request", quantity="global_readout_request")
            pos += 1
            continue
        try:
            if dif & 0x80 or dif & 0x0F == 0x0F:
                dib, pos = _read_dib(apl, start)
            else:  # no DIFE: the common case, without the call
                dib, pos = (dif, apl[start:start + 1], (dif >> 6) & 1, 0, 0), start + 1
            if pos < n and apl[pos] < 0x7C:  # a primary VIF without VIFEs: the common case
                vib = (apl[pos:pos + 1], PRIMARY.get(apl[pos], _UNKNOWN), None, (), None, 0, "")
                pos += 1
            else:
                vib, pos = _read_vib(apl, pos, dif, to_meter)
            length, coding = DATA_FIELDS[dif & 0x0F]
            if length >= 0 and pos + length <= n:  # fixed length, all there: the common case
                data = apl[pos:pos + length]
                pos += length
            else:
                coding, data, pos = _read_data(apl, pos, dif)
        except DecodeError as err:
            end = None if isinstance(err, TruncatedError) else _declared_end(apl, start)
            if end is None:
                yield BadRecord(offset=start, raw=apl[start:], error=err, resynced=False)
                return
            err = type(err)(f"{err.message}; skipped the record's {end - start} declared bytes and went on",
                            layer=err.layer, offset=err.offset)
            yield BadRecord(offset=start, raw=apl[start:end], error=err, resynced=True)
            pos = end
            continue
        yield _make_record(apl, start, pos, dib, vib, coding, data)


def _tail_record(apl: bytes, start: int) -> DataRecord:
    dif = apl[start]
    rest = apl[start + 1:]
    return DataRecord(offset=start, raw=apl[start:], dib=bytes((dif,)), vib=b"", data=rest,
                      function="more_records_follow" if dif == 0x1F else "manufacturer_data",
                      quantity="manufacturer_data", text=rest.hex())


def _read_dib(apl: bytes, start: int) -> tuple[tuple, int]:
    """DIF + DIFEs: storage number, tariff, subunit."""
    n = len(apl)
    dif = apl[start]
    if dif & 0x0F == 0x0F:
        raise RecordError(f"DIF 0x{dif:02X} is a reserved special function", layer="APL", offset=start)
    storage = (dif >> 6) & 1
    tariff = subunit = 0
    pos = start + 1
    k = 0
    ext = dif & 0x80
    while ext:
        if pos >= n:
            raise TruncatedError(f"DIFE expected after 0x{apl[pos - 1]:02X}", layer="APL", offset=pos)
        if k == 10:
            raise RecordError("more than 10 DIFEs", layer="APL", offset=pos)
        dife = apl[pos]
        storage |= (dife & 0x0F) << (1 + 4 * k)
        tariff |= ((dife >> 4) & 3) << (2 * k)
        subunit |= ((dife >> 6) & 1) << k
        ext = dife & 0x80
        pos += 1
        k += 1
    return (dif, apl[start:pos], storage, tariff, subunit), pos


def _read_vib(apl: bytes, pos: int, dif: int, to_meter: bool) -> tuple[tuple, int]:
    """VIF (primary, FB / FD / FD 7D tables, plain text, manufacturer) + VIFEs."""
    n = len(apl)
    if pos >= n:
        raise TruncatedError(f"VIF expected after DIF 0x{dif:02X}", layer="APL", offset=pos)
    vstart = pos
    vif = apl[pos]
    pos += 1
    code = vif & 0x7F
    plain_unit = None
    ext = vif & 0x80
    if vif in (0xFB, 0xFD):  # table extensions; 0x7B / 0x7D without the E bit are reserved VIFs
        if pos >= n:
            raise TruncatedError("extension VIF without its table byte", layer="APL", offset=pos)
        table_byte = apl[pos]
        pos += 1
        if code == 0x7B:
            entry = TABLE_FB.get(table_byte & 0x7F, _UNKNOWN)
        elif table_byte & 0x7F == 0x7D:
            if pos >= n:
                raise TruncatedError("FD 7D without its second-level byte", layer="APL", offset=pos)
            second = apl[pos]
            pos += 1
            entry = TABLE_FD_7D.get(second & 0x7F, _UNKNOWN)
            table_byte = second
        else:
            entry = TABLE_FD.get(table_byte & 0x7F, _UNKNOWN)
        ext = table_byte & 0x80
    elif code == 0x7C:
        if pos >= n:
            raise TruncatedError("plain-text VIF without its length", layer="APL", offset=pos)
        length = apl[pos]
        if pos + 1 + length > n:
            raise TruncatedError(f"plain-text unit of {length} bytes runs past the end", layer="APL",
                                 offset=pos)
        plain_unit = apl[pos + 1:pos + 1 + length][::-1].decode("latin-1")
        pos += 1 + length
        entry = _PLAIN
    elif code == 0x7F:
        entry = _MANUFACTURER
    else:
        entry = PRIMARY.get(code, _UNKNOWN)
    if not ext:
        return (apl[vstart:pos], entry, plain_unit, (), None, 0, ""), pos
    modifiers, error, exp_adjust, unit_suffix, pos = _read_vifes(apl, pos, ext, code == 0x7F, to_meter)
    return (apl[vstart:pos], entry, plain_unit, modifiers, error, exp_adjust, unit_suffix), pos


def _read_vifes(apl: bytes, pos: int, ext: int, manufacturer_vifes: bool, to_meter: bool):
    """VIFEs: (modifiers, record error, exponent adjustment, unit suffix, end). After a
    manufacturer VIF or VIFE every further VIFE is manufacturer-defined."""
    n = len(apl)
    modifiers: list[str] = []
    error = None
    exp_adjust = 0
    unit_suffix = ""
    count = 0
    while ext:
        if pos >= n:
            raise TruncatedError("VIFE expected", layer="APL", offset=pos)
        if count == 10:
            raise RecordError("more than 10 VIFEs", layer="APL", offset=pos)
        vife = apl[pos]
        pos += 1
        count += 1
        ext = vife & 0x80
        c = vife & 0x7F
        if manufacturer_vifes:
            continue
        if c == 0x7F:
            manufacturer_vifes = True
            modifiers.append("manufacturer specific VIFE")
        elif c == 0x7C:
            if pos >= n:
                raise TruncatedError("VIFE 7C without its FC-table byte", layer="APL", offset=pos)
            fc = apl[pos]
            pos += 1
            count += 1
            ext = fc & 0x80
            modifiers.append(TABLE_FC.get(fc & 0x7F, f"FC 0x{fc & 0x7F:02X}"))
        elif c <= 0x0F or 0x15 <= c <= 0x1C:
            if to_meter and c <= 0x0F:
                modifiers.append(f"action 0x{c:X}")
            elif c:
                error = RECORD_ERRORS.get(c, f"error code 0x{c:02X}")
        elif 0x70 <= c <= 0x77:
            exp_adjust += (c & 7) - 6
            modifiers.append(f"correction x10^{(c & 7) - 6}")
        elif 0x78 <= c <= 0x7B:
            exp_adjust += (c & 3) - 3
            modifiers.append("additive correction constant")
        elif c == 0x7D:
            exp_adjust += 3
            modifiers.append("correction x10^3")
        elif 0x20 <= c <= 0x26:
            unit_suffix = "/" + ("s", "min", "h", "d", "week", "month", "year")[c - 0x20]
            modifiers.append(ORTHOGONAL[c])
        else:
            modifiers.append(ORTHOGONAL.get(c, f"VIFE 0x{c:02X}"))
    return tuple(modifiers), error, exp_adjust, unit_suffix, pos


def _lvar(lvar: int) -> tuple[int, str] | None:
    """(length, coding) of an LVAR byte; None when it is reserved."""
    if lvar <= 0xBF:
        return lvar, "text"
    if lvar <= 0xC9:
        return lvar - 0xC0, "bcd"
    if 0xD0 <= lvar <= 0xD9:
        return lvar - 0xD0, "negbcd"
    if 0xE0 <= lvar <= 0xEF:
        return lvar - 0xE0, "binary"
    if 0xF0 <= lvar <= 0xF4:
        return 4 * (lvar - 0xEC), "binary"
    if lvar == 0xF5:
        return 48, "binary"
    if lvar == 0xF6:
        return 64, "binary"
    return None


def _read_data(apl: bytes, pos: int, dif: int) -> tuple[str, bytes, int]:
    """The data field the DIF announces: (coding, data, end)."""
    n = len(apl)
    length, coding = DATA_FIELDS[dif & 0x0F]
    if coding == "lvar":
        if pos >= n:
            raise TruncatedError("LVAR byte expected", layer="APL", offset=pos)
        lvar = apl[pos]
        pos += 1
        found = _lvar(lvar)
        if found is None:
            raise RecordError(f"LVAR 0x{lvar:02X} is reserved", layer="APL", offset=pos - 1)
        length, coding = found
    if pos + length > n:
        raise TruncatedError(f"record data needs {length} bytes, {n - pos} left (DIF 0x{dif:02X})",
                             layer="APL", offset=pos)
    return coding, apl[pos:pos + length], pos + length


_PROFILE_MODIFIERS = ("compact profile", "inverse compact profile", "compact profile with register numbers")


def _make_record(apl: bytes, start: int, end: int, dib: tuple, vib: tuple, coding: str, data: bytes) -> DataRecord:
    """Value (scaled by the VIF exponent and VIFE corrections), unit and the record itself."""
    dif, dib_raw, storage, tariff, subunit = dib
    vib_raw, entry, plain_unit, modifiers, error, exp_adjust, suffix = vib
    if modifiers and any(m.startswith(("date of ", "start date")) for m in modifiers) and coding in ("int", "bcd"):
        entry = Vif(entry.quantity, kind="date")  # the VIFE makes the data a date/time of that quantity
    value, text, note = _value(entry, coding, data, vib_raw)
    if value is not None:
        if entry.kind == "number":
            value = value.scaleb(entry.exponent + exp_adjust)
        elif exp_adjust:
            value = value.scaleb(exp_adjust)
    unit = plain_unit if plain_unit is not None else entry.unit
    if modifiers and any(m in _PROFILE_MODIFIERS for m in modifiers):
        value, text, note = None, data.hex(), None
    if error == "no data available" and value is not None:
        value, text, note = None, None, f"no value: the meter says no data available (bytes {data.hex()})"
    return DataRecord(offset=start, raw=apl[start:end], dib=dib_raw, vib=vib_raw, data=data,
                      function=FUNCTIONS[(dif >> 4) & 3], storage=storage, tariff=tariff, subunit=subunit,
                      quantity=entry.quantity, unit=unit + suffix if unit else suffix.lstrip("/"),
                      value=value, text=text, modifiers=modifiers, error=error, note=note)


def _declared_end(apl: bytes, start: int) -> int | None:
    """Where the record at ``start`` ends by its own length fields, ignoring the limits and
    meanings that made it bad (more than 10 DIFEs / VIFEs). None when the length is unknowable:
    a reserved special DIF, a reserved LVAR, or fields cut off by the end of the APL."""
    n = len(apl)
    dif = apl[start]
    if dif & 0x0F == 0x0F:
        return None
    pos = start + 1
    ext = dif & 0x80
    while ext:  # DIFEs
        if pos >= n:
            return None
        ext = apl[pos] & 0x80
        pos += 1
    if pos >= n:
        return None
    vif = apl[pos]
    pos += 1
    code, ext = vif & 0x7F, vif & 0x80
    if vif in (0xFB, 0xFD):
        if pos >= n:
            return None
        table_byte = apl[pos]
        pos += 1
        if code == 0x7D and table_byte & 0x7F == 0x7D:
            if pos >= n:
                return None
            table_byte = apl[pos]
            pos += 1
        ext = table_byte & 0x80
    elif code == 0x7C:
        if pos >= n:
            return None
        pos += 1 + apl[pos]
    manufacturer = code == 0x7F
    while ext:  # VIFEs
        if pos >= n:
            return None
        c = apl[pos] & 0x7F
        ext = apl[pos] & 0x80
        pos += 1
        if manufacturer:
            continue
        if c == 0x7F:
            manufacturer = True
        elif c == 0x7C:
            if pos >= n:
                return None
            ext = apl[pos] & 0x80
            pos += 1
    length, coding = DATA_FIELDS[dif & 0x0F]
    if coding == "lvar":
        if pos >= n:
            return None
        found = _lvar(apl[pos])
        if found is None:
            return None
        length = found[0]
        pos += 1
    end = pos + length
    return end if end <= n else None


# The lowest signed number of each size marks "no value" (EN 13757-3 Annex A, types B: the coding
# for "illegal"); it is never printed as a number.
_SIGNED_NO_VALUE = {n: bytes(n - 1) + b"\x80" for n in (1, 2, 3, 4, 6, 8)}


def _value(entry: Vif, coding: str, data: bytes, vib: bytes = b"") -> tuple[Decimal | None, str | None, str | None]:
    """(value, text, note) of the data field."""
    if coding in ("none", "selection"):
        return None, None, None
    kind = entry.kind
    if kind == "date":
        if coding == "text":  # LVAR date/time: type M
            return None, data.hex(), "type M date/time (LVAR): layout not public, bytes kept raw"
        if coding in ("binary", "bcd", "negbcd"):
            return None, data.hex(), f"date/time in a {coding} field: not an Annex A date type, bytes kept raw"
        return (None, *decode_date(data))
    if vib[-1:] and vib[0] == 0xFD and len(vib) > 1 and vib[1] & 0x7F in (0x72, 0x73):
        what = "K (daylight saving)" if vib[1] & 0x7F == 0x72 else "L (listening window management)"
        return None, data.hex(), f"type {what}: layout not public, bytes kept raw"
    if coding == "binary":
        return None, data[::-1].hex(), None  # an LVAR binary number, most significant byte first
    if kind == "raw" and coding not in ("int", "bcd"):
        return None, data.hex(), None
    if coding == "text":
        if all(0x20 <= b < 0x7F or b >= 0xA0 for b in data):
            return None, data[::-1].decode("latin-1"), None
        return None, data[::-1].hex(), None  # not text: bytes in the same (reversed) order as characters
    if coding in ("bcd", "negbcd"):
        n = bcd_value(data)
        if n is None:
            if kind in ("id", "raw", "flags"):
                return None, data[::-1].hex(), None
            return None, None, (f"no value: BCD {data[::-1].hex()} has non-decimal digits (the meter's marker "
                                "for a missing or erroneous value)")
        return Decimal(-n if coding == "negbcd" else n), None, None
    if coding == "real":
        f = struct.unpack("<f", data)[0]
        if f != f or f in (float("inf"), float("-inf")):
            return None, None, f"no value: real {'NaN' if f != f else f}"
        return Decimal(repr(f)), None, None
    # integers
    if kind == "flags" or (vib[:1] == b"\xfd" and len(vib) > 1 and vib[1] & 0x7F in FD_UNSIGNED):
        return Decimal(int.from_bytes(data, "little")), None, None  # type D bits / type C (Table 12 remark k)
    if kind == "number" and data == _SIGNED_NO_VALUE.get(len(data)):
        return None, None, (f"no value: 0x{data[::-1].hex()} (the lowest signed {8 * len(data)}-bit number "
                            "marks a missing value)")
    return Decimal(int.from_bytes(data, "little", signed=True)), None, None


def decode_records(apl: bytes, *, to_meter: bool = False) -> RecordsResult:
    """All records of an APL, resyncing after bad ones, and one error per bad record."""
    records: list[DataRecord] = []
    errors: list[DecodeError] = []
    profiles = False
    for item in iter_results(apl, to_meter=to_meter):
        if isinstance(item, BadRecord):
            errors.append(item.error)
        else:
            records.append(item)
            profiles = profiles or (item.value is None and item.text is not None
                                    and "profile" in " ".join(item.modifiers))
    if profiles:
        from .compact import expand_profiles  # compact builds on records

        records = expand_profiles(records)
    return RecordsResult(records=tuple(records), errors=tuple(errors))


def parse_records(apl: bytes, *, to_meter: bool = False) -> tuple[list[DataRecord], DecodeError | None]:
    """All records of an APL (decoding goes on after a bad record whose length is known), plus
    the first error (None when all decoded)."""
    result = decode_records(apl, to_meter=to_meter)
    return list(result.records), (result.errors[0] if result.errors else None)


def header_list(records: list[DataRecord]) -> bytes:
    """The concatenated DIB+VIB of data records (a format frame's body, a signature's input)."""
    return b"".join(r.dib + r.vib for r in records if r.quantity != "manufacturer_data" and r.derived_from is None)


# --- building -----------------------------------------------------------------------------------

_CODINGS = {"none": 0x0, "int8": 0x1, "int16": 0x2, "int24": 0x3, "int32": 0x4, "real32": 0x5, "int48": 0x6,
            "int64": 0x7, "bcd2": 0x9, "bcd4": 0xA, "bcd6": 0xB, "bcd8": 0xC, "bcd12": 0xE}


def build_dib(*, coding: str, storage: int = 0, tariff: int = 0, subunit: int = 0,
              function: str = "instantaneous") -> bytes:
    """DIF + DIFEs for the given data coding and storage / tariff / subunit / function."""
    if coding not in _CODINGS and coding != "lvar":
        raise ValueError(f"unknown coding {coding!r}; one of {sorted(_CODINGS)} or 'lvar'")
    field = 0xD if coding == "lvar" else _CODINGS[coding]
    dif = field | (FUNCTIONS.index(function) << 4) | ((storage & 1) << 6)
    difes = []
    s, t, u = storage >> 1, tariff, subunit
    while s or t or u:
        difes.append((s & 0x0F) | ((t & 3) << 4) | ((u & 1) << 6))
        s, t, u = s >> 4, t >> 2, u >> 1
    if len(difes) > 10:
        raise ValueError("storage/tariff/subunit need more than 10 DIFEs")
    out = bytearray([dif | (0x80 if difes else 0)])
    for i, d in enumerate(difes):
        out.append(d | (0x80 if i < len(difes) - 1 else 0))
    return bytes(out)


def encode_value(raw: int, coding: str) -> bytes:
    """Raw integer -> data bytes (two's complement LE, or BCD with an F sign nibble)."""
    if coding.startswith("bcd"):
        digits = int(coding[3:])
        text = str(abs(raw)).zfill(digits)
        if raw < 0:
            text = "f" + text[1:] if len(text) == digits and text[0] == "0" else None
        if text is None or len(text) != digits:
            raise ValueError(f"{raw} does not fit {coding}")
        return bytes.fromhex(text)[::-1]
    size = {"int8": 1, "int16": 2, "int24": 3, "int32": 4, "int48": 6, "int64": 8}[coding]
    return raw.to_bytes(size, "little", signed=True)


def build_record(*, vib: bytes, raw: int | None = None, data: bytes | None = None, coding: str = "int32",
                 storage: int = 0, tariff: int = 0, subunit: int = 0, function: str = "instantaneous") -> bytes:
    """One record: DIB for ``coding`` + the given VIB + data (from ``raw`` or given bytes)."""
    if data is None:
        data = b"" if coding == "none" else encode_value(int(raw or 0), coding)
    if coding == "lvar":
        data = bytes([len(data)]) + data
    return build_dib(coding=coding, storage=storage, tariff=tariff, subunit=subunit, function=function) + vib + data
