"""The interpreter of vendors.toml: a declarative byte layout -> records marked ``vendor <name>``.

A decoder (one ``[[decoder]]`` table) names the meters it serves, where its bytes sit and a list of
fields. A field is read at a fixed offset (negative: from the end), or right after the previous field
when ``offset`` is left out; it can be conditional on flag bits (``when``), repeated (``repeat``,
one storage number further each time), scaled, range-checked (``range``: out of range -> no record)
and marked "no value" (``no_value``). ``sum`` entries add fields the meter does not send (Techem's
total = previous period + current period). The format is documented at the top of vendors.toml.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from ..records import DataRecord, bcd_value, date_g
from ..vif_tables import PRIMARY

ENCODINGS = ("uint_le", "uint_be", "int_le", "bcd", "bits", "table", "exp2", "date_g", "date_bcd_ymd",
             "date_bcd_dmy", "date_techem", "date_techem_current")


class LayoutError(ValueError):
    """vendors.toml names something the interpreter does not know (a defect of the data file)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Field:
    name: str
    quantity: str
    offset: int | None = None  # None: right after the previous field
    length: int = 1
    encoding: str = "uint_le"
    scale: Decimal = Decimal(1)
    divisor: Decimal = Decimal(1)  # a scale written "1/256": multiply by 1, divide by 256 (exact)
    unit: str = ""
    unit_from_vif: int | None = None  # offset of a byte holding a standard VIF: unit and scale from it
    storage: int = 0
    storage_step: int = 1  # repeat: storage number step per repetition
    function: str = "instantaneous"
    modifiers: tuple[str, ...] = ()
    no_value: int | None = None  # this raw value means "no value" (value null, text no_value_text)
    no_value_text: str = "no value"
    min_data: int = 0  # the bytes must be at least this long for the field to be emitted
    round: int | None = None  # decimals kept after scaling (fractional scales such as 1/3)
    value_range: tuple[Decimal, Decimal] | None = None
    when: tuple[int, int] | None = None  # (byte offset, mask): the field is present only if a bit is set
    repeat: int = 1
    labels: tuple[str, ...] = ()  # one modifier per repetition
    parts: tuple[tuple[int, int, int], ...] = ()  # bits: (byte, mask, shift; negative = right)
    table: tuple[tuple[int, str], ...] = ()  # table: raw -> value text
    mask: int | None = None
    default: str | None = None  # table: value for raw values not listed
    add: int = 0  # exp2: value = 2 ** (raw + add); date_techem: added to the raw date
    hidden: bool = False  # read (for sums) but not emitted
    after: str = ""  # date_techem_current: the previous date field whose year (or the next) it is in


@dataclass(frozen=True, slots=True, kw_only=True)
class Sum:
    name: str
    of: tuple[str, ...]
    quantity: str
    unit: str
    storage: int = 0
    modifiers: tuple[str, ...] = ()


def _hex_int(v, where: str) -> int:
    if isinstance(v, int):
        return v
    raise LayoutError(f"{where}: expected an integer, got {v!r}")


def _scale(v, where: str) -> tuple[Decimal, Decimal]:
    text = str(v)
    try:
        if "/" in text:
            num, den = text.split("/")
            return Decimal(num), Decimal(den)
        return Decimal(text), Decimal(1)
    except (ArithmeticError, ValueError):
        raise LayoutError(f"{where}: bad scale {v!r}") from None


def parse_field(d: dict, where: str) -> Field:
    enc = d.get("encoding", "uint_le")
    if enc not in ENCODINGS:
        raise LayoutError(f"{where}: unknown encoding {enc!r} (known: {', '.join(ENCODINGS)})")
    rng = d.get("range")
    when = d.get("when")
    try:
        return Field(
            name=d["name"], quantity=d["quantity"], offset=d.get("offset"), length=int(d.get("length", 1)),
            encoding=enc, scale=_scale(d.get("scale", 1), where)[0], divisor=_scale(d.get("scale", 1), where)[1],
            unit=d.get("unit", ""),
            unit_from_vif=d.get("unit_from_vif"), storage=int(d.get("storage", 0)),
            storage_step=int(d.get("storage_step", 1)), no_value_text=d.get("no_value_text", "no value"),
            min_data=int(d.get("min_data", 0)), round=d.get("round"),
            function=d.get("function", "instantaneous"), modifiers=tuple(d.get("modifiers", ())),
            no_value=d.get("no_value"),
            value_range=None if rng is None else (Decimal(str(rng[0])), Decimal(str(rng[1]))),
            when=None if when is None else (_hex_int(when[0], where), _hex_int(when[1], where)),
            repeat=int(d.get("repeat", 1)), labels=tuple(d.get("labels", ())),
            parts=tuple(tuple(p) for p in d.get("parts", ())),
            table=tuple((int(k, 0), str(v)) for k, v in d.get("table", {}).items()),
            mask=d.get("mask"), default=d.get("default"), add=int(d.get("add", 0)),
            hidden=bool(d.get("hidden", False)), after=d.get("after", ""))
    except KeyError as err:
        raise LayoutError(f"{where}: field lacks {err.args[0]!r}") from None


def parse_sum(d: dict, where: str) -> Sum:
    try:
        return Sum(name=d["name"], of=tuple(d["of"]), quantity=d["quantity"], unit=d.get("unit", ""),
                   storage=int(d.get("storage", 0)), modifiers=tuple(d.get("modifiers", ())))
    except KeyError as err:
        raise LayoutError(f"{where}: sum lacks {err.args[0]!r}") from None


def _raw(f: Field, b: bytes) -> int | None:
    """The field's raw integer (None: not decodable, e.g. a non-BCD nibble)."""
    if f.encoding in ("uint_le", "table", "exp2"):
        raw = int.from_bytes(b, "little")
    elif f.encoding == "uint_be":
        raw = int.from_bytes(b, "big")
    elif f.encoding == "int_le":
        raw = int.from_bytes(b, "little", signed=True)
    elif f.encoding == "bcd":
        raw = bcd_value(b)
    elif f.encoding == "bits":
        raw = 0
        for byte, mask, shift in f.parts:
            v = b[byte] & mask
            raw += v << shift if shift >= 0 else v >> -shift
    else:
        return None
    if raw is not None and f.mask is not None:
        raw &= f.mask
    return raw


def _date_text(f: Field, b: bytes, dates: dict[str, tuple[int, int, int]]) -> str | None:
    if f.encoding == "date_g":
        return date_g(b)
    if f.encoding in ("date_bcd_ymd", "date_bcd_dmy"):
        if b == b"\x00\x00\x00":
            return None
        y, m, d = (b[0], b[1], b[2]) if f.encoding == "date_bcd_ymd" else (b[2], b[1], b[0])
        text = f"20{y:02x}-{m:02x}-{d:02x}"
        return text if text.replace("-", "").isdigit() else None
    if f.encoding == "date_techem":  # day bits 0-4, month bits 5-8, year bits 9-15 (+2000)
        raw = int.from_bytes(b, "little") + f.add  # add: constant high bits some layouts leave out
        if f.mask is not None:
            raw &= f.mask
        day, month, year = raw & 0x1F, (raw >> 5) & 0x0F, 2000 + (raw >> 9)
    elif f.encoding == "date_techem_current":  # day bits 4-8, month bits 9-12; the year is the
        # previous date's, or the next one when month / day did not move past it
        raw = int.from_bytes(b, "little")
        day, month = (raw >> 4) & 0x1F, (raw >> 9) & 0x0F
        if f.after not in dates:
            return None
        py, pm, pd = dates[f.after]
        year = py + (month < pm or (month == pm and day <= pd))
    else:
        return None
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return None
    dates[f.name] = (year, month, day)
    return f"{year:04d}-{month:02d}-{day:02d}"


def read_fields(fields: tuple[Field, ...], sums: tuple[Sum, ...], data: bytes, offset: int,
                tag: str, begin: int = 0) -> list[DataRecord]:
    """Records from ``data`` (``offset``: where data[0] sits in the APL). Stops quietly at the end
    of the bytes: a short frame gives the fields that fit."""
    out: list[DataRecord] = []
    values: dict[str, tuple[Decimal, int, bytes]] = {}
    dates: dict[str, tuple[int, int, int]] = {}
    pos = begin
    for f in fields:
        if f.when is not None:
            byte, mask = f.when
            if byte >= len(data) or not data[byte] & mask:
                continue
        if len(data) < f.min_data:
            continue
        start = pos if f.offset is None else (f.offset if f.offset >= 0 else len(data) + f.offset)
        if start < 0:
            break
        for k in range(f.repeat):
            at = start + k * f.length
            chunk = data[at:at + f.length]
            if len(chunk) < f.length:
                return _finish(out, sums, values, offset, tag)
            pos = at + f.length
            rec = _record(f, k, chunk, data, offset + at, tag, dates)
            if rec is None:
                continue
            if rec.value is not None and f.repeat == 1:
                values[f.name] = (rec.value, rec.offset, chunk)
            if not f.hidden:
                out.append(rec)
    return _finish(out, sums, values, offset, tag)


def _record(f: Field, k: int, chunk: bytes, data: bytes, at: int, tag: str,
            dates: dict[str, tuple[int, int, int]]) -> DataRecord | None:
    mods = (*f.modifiers, *(f.labels[k:k + 1]), tag)
    unit, scale, quantity = f.unit, f.scale, f.quantity
    if f.unit_from_vif is not None:
        if f.unit_from_vif >= len(data):
            return None
        vif = PRIMARY.get(data[f.unit_from_vif] & 0x7F)
        if vif is None or vif.kind != "number":
            return None
        unit, quantity = vif.unit, vif.quantity
        scale = scale * Decimal(10) ** vif.exponent
    value: Decimal | None = None
    text: str | None = None
    if f.encoding.startswith("date"):
        text = _date_text(f, chunk, dates)
        if text is None:
            return None
    else:
        raw = _raw(f, chunk)
        if raw is None:
            return None
        if f.no_value is not None and raw == f.no_value:
            text = f.no_value_text
        elif f.encoding == "table":
            hit = dict(f.table).get(raw, f.default)
            if hit is None:
                return None
            try:
                value = Decimal(hit)
            except ArithmeticError:  # a state name (smoke detector status ...)
                text = hit
        elif f.encoding == "exp2":
            value = Decimal(2) ** (raw + f.add) * scale
        else:
            value = Decimal(raw) * scale / f.divisor
        if value is not None and f.round is not None:
            value = value.quantize(Decimal(1).scaleb(-f.round)).normalize()
        if value is not None and f.value_range is not None and not f.value_range[0] <= value <= f.value_range[1]:
            return None  # implausible: a layout that does not fit this frame emits nothing
    return DataRecord(offset=at, raw=chunk, dib=b"", vib=b"", data=chunk, function=f.function,
                      storage=f.storage + k * f.storage_step, quantity=quantity, unit=unit,
                      value=value, text=text, modifiers=mods)


def _finish(out: list[DataRecord], sums: tuple[Sum, ...], values: dict[str, tuple[Decimal, int, bytes]],
            offset: int, tag: str) -> list[DataRecord]:
    for s in sums:
        if all(name in values for name in s.of):
            total = sum((values[name][0] for name in s.of), Decimal(0))
            raw = b"".join(values[name][2] for name in s.of)
            at = min(values[name][1] for name in s.of)
            out.append(DataRecord(offset=at, raw=raw, dib=b"", vib=b"", data=raw, function="instantaneous",
                                  storage=s.storage, quantity=s.quantity, unit=s.unit, value=total,
                                  modifiers=(*s.modifiers, f"= {' + '.join(s.of)}", tag)))
    return out
