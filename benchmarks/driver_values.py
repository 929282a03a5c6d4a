"""Coverage of wmbusmeters' driver values by our records, on ../shared/vectors (issue 14).

Every telegram is decoded with our stack (its key as the default key; the ``preceding_hex``
telegrams first, through one format cache, so compact frames find their format). Measured:

* parse: the share of telegrams decoded without a problem (every problem is listed with its reason);
* found: the share of the drivers' numeric fields whose value is among our records' values, in the
  field's unit after unit conversion (``total_m3`` = a record in m3 / l / ft3 ..., ``*_kwh`` = an
  energy record in kWh / MJ / GJ / MWh / Mcal, ``*_c`` = a temperature in °C (or °F), dates = a
  date record with the same date, and time when the field has one). Two buckets:

  - "standard": fields whose unit is a DIF/VIF quantity and whose telegram carries DIF/VIF records
    of that quantity (judged on our non-vendor records; when our decoding failed or the telegram
    could not be decrypted, the field counts as standard: our failures lower the score);
  - "all": every numeric or date field (header fields excepted: id, version, access number,
    device type, manufacturer, record count), manufacturer payloads included.

Matching is exact: the converted value equals the field's (within 1e-9 relative), or, when the
field carries at least 5 significant digits or 6 decimals (a printed rounding of a computed
conversion), equals it at its printed precision. wmbusmeters' renderings of "no value" (the lowest
signed number, a 2000-00-00 / 1999-11-30 date, the year 2127 for "every year") match our records
that say so (value null with a "no value" / "no date" note, a periodic date). Unit-less numbers
(counters, levels) match a unit-less record whose quantity shares a word with the field name, or
any unit-less record (bit fields and identification numbers excepted) when the value is neither 0
nor 1.
Every unit-bearing match is also restricted to records of the same physical family, so a volume
never matches an energy.

Besides wmbusmeters' driver outputs, the reference decoders' record lists (libmbus, exmbus,
m-bus-parser, wireless-mbus-parser) are matched the same way in a separate "reference records"
line (always standard data).

    python benchmarks/driver_values.py [--missing] [--errors] [--vectors DIR] [--by driver|manufacturer|both]

Self-contained: imports only ``mbus.*`` (other branches run it against their own stacks).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mbus import wired as _wired  # noqa: E402
from mbus.compact import FormatCache  # noqa: E402
from mbus.errors import DecodeError  # noqa: E402
from mbus.keys import KeyStore  # noqa: E402
from mbus.telegram import decode  # noqa: E402

VECTORS = Path(__file__).resolve().parent.parent.parent / "shared" / "vectors"

# ---------------------------------------------------------------------------------------------
# units: (family, factor to the family's base unit); temperatures in °F convert affinely

F = Fraction
YEAR_S = F(3652425, 10000) * 86400  # the Gregorian mean year (wmbusmeters converts days to years by it)
RECORD_UNITS: dict[str, tuple[str, Fraction]] = {
    "Wh": ("energy", F(1, 1000)), "kWh": ("energy", F(1)), "MWh": ("energy", F(1000)),
    "GWh": ("energy", F(10**6)), "J": ("energy", F(1, 3600000)), "kJ": ("energy", F(1, 3600)),
    "MJ": ("energy", F(1000, 3600)), "GJ": ("energy", F(10**6, 3600)), "Mcal": ("energy", F(11630, 10000)),
    "m3": ("volume", F(1)), "l": ("volume", F(1, 1000)), "ft3": ("volume", F(28316846592, 10**12)),
    "W": ("power", F(1, 1000)), "kW": ("power", F(1)), "MW": ("power", F(1000)),
    "J/h": ("power", F(1, 3600000)), "kJ/h": ("power", F(1, 3600)), "MJ/h": ("power", F(1000, 3600)),
    "GJ/h": ("power", F(10**6, 3600)),
    "m3/h": ("flow", F(1)), "m3/min": ("flow", F(60)), "m3/s": ("flow", F(3600)), "l/h": ("flow", F(1, 1000)),
    "°C": ("temperature", F(1)), "C": ("temperature", F(1)), "K": ("temperature_difference", F(1)),
    "bar": ("pressure", F(1)), "mbar": ("pressure", F(1, 1000)), "Pa": ("pressure", F(1, 100000)),
    "V": ("voltage", F(1)), "A": ("current", F(1)), "Hz": ("frequency", F(1)),
    "s": ("time", F(1)), "min": ("time", F(60)), "h": ("time", F(3600)), "d": ("time", F(86400)),
    "month": ("time", YEAR_S / 12), "year": ("time", YEAR_S), "y": ("time", YEAR_S),
    "kg": ("mass", F(1)), "t": ("mass", F(1000)), "kg/h": ("mass_flow", F(1)),
    "%": ("percent", F(1)), "%RH": ("percent", F(1)), "dBm": ("rf_level", F(1)),
    "kVARh": ("reactive_energy", F(1)), "kvarh": ("reactive_energy", F(1)), "kVAh": ("apparent_energy", F(1)),
    "kVAR": ("reactive_power", F(1)), "kvar": ("reactive_power", F(1)), "kVA": ("apparent_power", F(1)),
    "m3°C": ("volume_temperature", F(1)), "m3C": ("volume_temperature", F(1)),
}
# wmbusmeters field-name suffixes (the unit in the name) -> (family, factor to base)
FIELD_SUFFIXES: dict[str, tuple[str, Fraction]] = {
    "m3": ("volume", F(1)), "l": ("volume", F(1, 1000)), "ft3": ("volume", F(28316846592, 10**12)),
    "kwh": ("energy", F(1)), "mwh": ("energy", F(1000)), "wh": ("energy", F(1, 1000)),
    "gj": ("energy", F(10**6, 3600)), "mj": ("energy", F(1000, 3600)), "kj": ("energy", F(1, 3600)),
    "kw": ("power", F(1)), "w": ("power", F(1, 1000)), "mw": ("power", F(1000)),
    "m3h": ("flow", F(1)), "lh": ("flow", F(1, 1000)), "m3min": ("flow", F(60)),
    "c": ("temperature", F(1)), "k": ("temperature_difference", F(1)),
    "bar": ("pressure", F(1)), "pa": ("pressure", F(1, 100000)), "mbar": ("pressure", F(1, 1000)),
    "v": ("voltage", F(1)), "a": ("current", F(1)), "hz": ("frequency", F(1)),
    "s": ("time", F(1)), "min": ("time", F(60)), "h": ("time", F(3600)), "d": ("time", F(86400)),
    "month": ("time", YEAR_S / 12), "y": ("time", YEAR_S),
    "kg": ("mass", F(1)), "t": ("mass", F(1000)), "kgh": ("mass_flow", F(1)),
    "rh": ("percent", F(1)), "pct": ("percent", F(1)), "dbm": ("rf_level", F(1)),
    "kvarh": ("reactive_energy", F(1)), "kvah": ("apparent_energy", F(1)),
    "kvar": ("reactive_power", F(1)), "kva": ("apparent_power", F(1)),
    "hca": ("hca", F(1)), "m3c": ("volume_temperature", F(1)),
}
# families that DIF/VIF records can carry (standard data)
STANDARD_FAMILIES = {"energy", "volume", "power", "flow", "temperature", "temperature_difference", "pressure",
                     "voltage", "current", "frequency", "time", "mass", "mass_flow", "percent",
                     "rf_level", "reactive_energy", "apparent_energy", "reactive_power", "apparent_power", "hca",
                     "date"}
HEADER_FIELDS = {"id", "version", "access_number", "device_type", "manufacturer", "record_count", "ci",
                 "identification_number", "device_id", "meter_version"}
DATE_RE = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:[ T](\d{2}:\d{2})(?::(\d{2}))?)?")
GENERIC_WORDS = {"at", "of", "the", "total", "current", "value", "last", "date", "set", "target", "consumption",
                 "m3", "kwh", "c", "h", "d", "s", "y", "v", "a", "1", "2", "3", "4"}


@dataclass(slots=True)
class Value:
    """One of our record values, in its family's base unit."""

    family: str
    number: Fraction | None = None
    date: tuple[str, str | None, str | None] | None = None
    words: frozenset[str] = frozenset()
    vendor: bool = False
    manufacturer: bool = False
    novalue: bool = False  # a record that says "no value" (value null with a note)
    profile: bool = False  # a compact-profile record not expanded into values


@dataclass(slots=True)
class Field:
    name: str
    want: object
    family: str | None  # None: unit-less number
    factor: Fraction = F(1)
    standard: bool = False
    found: bool = False


@dataclass(slots=True)
class Row:
    vid: str
    driver: str
    manufacturer: str
    source: str  # "driver" or "reference"
    error: str | None = None
    fields: list[Field] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# our records -> values


def _temperature_f(number: Fraction) -> Fraction:
    return (number - 32) * F(5, 9)


def _words(text: str) -> frozenset[str]:
    return frozenset(w for w in re.split(r"[^a-z0-9]+", text.lower()) if w)


DATE_TEXT_RE = re.compile(r"^([0-9*]{4}-[0-9*]{2}-[0-9*]{2})(?:[ T]([0-9*]{2}:[0-9*]{2})(?::([0-9*]{2}))?)?")


def _unit_family(unit: str, quantity: str) -> tuple[str, Fraction] | None:
    if unit in ("", "-"):
        return ("hca" if "hca" in quantity else "count"), F(1)
    return RECORD_UNITS.get(unit)


def record_values(records) -> list[Value]:
    out = []
    for r in records:
        mods = " ".join(getattr(r, "modifiers", ()) or ())
        vendor = "vendor" in mods
        manufacturer = r.quantity in ("manufacturer_data", "manufacturer_specific") or "manufacturer specific" in mods
        words = _words(r.quantity)
        flags = {"words": words, "vendor": vendor, "manufacturer": manufacturer}
        time_point = getattr(r, "time_point", None)
        if time_point:
            m = DATE_TEXT_RE.match(time_point)
            if m:
                out.append(Value("date", date=(m.group(1), m.group(2), m.group(3)), **flags))
        text = getattr(r, "text", None)
        note = getattr(r, "note", None) or ""
        unit = (r.unit or "").strip()
        if r.value is None:
            if text is not None and DATE_TEXT_RE.match(text.strip()):
                m = DATE_TEXT_RE.match(text.strip())
                out.append(Value("date", date=(m.group(1), m.group(2), m.group(3)), **flags))
            elif note.startswith("no date"):
                out.append(Value("date", novalue=True, **flags))
            elif note.startswith("no value"):
                conv = _unit_family(unit, r.quantity)
                if conv is not None:
                    out.append(Value(conv[0], novalue=True, **flags))
            elif "compact profile" in mods:
                conv = _unit_family(unit, r.quantity)
                out.append(Value(conv[0] if conv else "unit:" + unit, profile=True, **flags))
            continue
        number = F(Decimal(r.value))
        if unit in ("°F", "F"):
            diff = "difference" in r.quantity
            out.append(Value("temperature_difference" if diff else "temperature",
                             number=number * F(5, 9) if diff else _temperature_f(number), **flags))
            continue
        conv = _unit_family(unit, r.quantity)
        if conv is None:
            out.append(Value("unit:" + unit, number=number, **flags))
            continue
        family, factor = conv
        out.append(Value(family, number=number * factor, **flags))
    return out


# ---------------------------------------------------------------------------------------------
# expected fields


def _sig_digits(text: str) -> tuple[int, int]:
    """(significant digits, decimals) of a printed number."""
    t = text.lstrip("-")
    if "e" in t.lower():
        return 17, 0
    decimals = len(t.split(".")[1]) if "." in t else 0
    digits = t.replace(".", "").lstrip("0")
    return len(digits), decimals


def number_matches(want, have: Fraction) -> bool:
    text = repr(want) if isinstance(want, float) else str(want)
    exact = F(Decimal(text))
    if exact == have:
        return True
    if exact != 0 and abs(have - exact) <= abs(exact) * F(1, 10**9):
        return True
    digits, decimals = _sig_digits(text)
    if digits >= 5 or decimals >= 6:  # a rounded print (wmbusmeters prints computed values to 6 decimals)
        return abs(have - exact) <= F(1, 2 * 10**decimals)
    return False


def is_no_value_marker(want) -> bool:
    """The lowest signed number of a type B size at some decimal scale (-2147483648, -32768 ...):
    wmbusmeters prints it, EN 13757-3 means "no value" by it."""
    if isinstance(want, bool) or not isinstance(want, (int, float)) or want >= 0:
        return False
    exact = abs(F(Decimal(repr(want) if isinstance(want, float) else str(want))))
    return any(exact == F(2 ** (bits - 1), 10**k) for bits in (8, 16, 24, 32, 48, 64) for k in range(10))


def classify(name: str, want) -> Field | None:
    if name in HEADER_FIELDS or name.startswith("_") or name == "timestamp":
        return None
    if isinstance(want, bool):
        return None
    if isinstance(want, str):
        if "date" in name or "time" in name:
            if DATE_RE.match(want):
                return Field(name, want, "date")
        return None
    if not isinstance(want, (int, float)):
        return None
    parts = name.lower().split("_")
    suffix = parts[-1] if len(parts) > 1 else ""
    if suffix in FIELD_SUFFIXES:
        family, factor = FIELD_SUFFIXES[suffix]
        return Field(name, want, family, factor)
    return Field(name, want, None)


def _date_matches(want: str, v: Value) -> bool:
    m = DATE_RE.match(want)
    day, hm, sec = m.group(1), m.group(2), m.group(3)
    if v.novalue:
        # wmbusmeters prints a missing date (day 0, month 0) as 2000-00-00, or normalised by mktime as 1999-11-30
        return day[5:] == "00-00" or day == "1999-11-30"
    if v.date is None:
        return False
    have = v.date[0]
    if day[:4] == "2127" and have.startswith("****"):
        day = "****" + day[4:]  # wmbusmeters prints the periodic year 127 ("every year") as 2000 + 127
    if have != day:
        return False
    if hm is None or v.date[1] is None:
        return hm is None or hm == "00:00"
    return v.date[1] == hm and (sec is None or v.date[2] is None or v.date[2] == sec)


def value_matches(f: Field, v: Value) -> bool:
    if f.family == "date":
        return v.family == "date" and _date_matches(f.want, v)
    if f.family is None:
        # a unit-less number: a unit-less record with the same value whose name shares a word with the
        # field's, or any unit-less record when the value is not 0 or 1 (too common to count)
        if v.family != "count" or v.number is None or not number_matches(f.want, v.number):
            return False
        shared = bool(v.words & (_words(f.name) - GENERIC_WORDS))
        return shared or (f.want not in (0, 1) and not v.words & {"flags", "error", "status", "number"})
    if v.family != f.family:
        return False
    if v.novalue:
        return is_no_value_marker(f.want)
    return v.number is not None and number_matches(f.want, v.number / f.factor)


def field_found(f: Field, values: list[Value]) -> bool:
    return any(value_matches(f, v) for v in values)


# ---------------------------------------------------------------------------------------------
# decoding


def _even_hex(text: str) -> bytes:
    text = "".join(text.split())
    return bytes.fromhex(text[: len(text) - len(text) % 2])


def _keys(key_hex: str | None):
    if not key_hex:
        return None
    try:
        return KeyStore(default=bytes.fromhex(key_hex))
    except ValueError:
        return None


def decode_wireless(row: dict):
    """(records, problems, payload_kind_ok) for one wireless vector."""
    keys = _keys(row.get("key"))
    formats = FormatCache()
    for pre in row.get("preceding_hex") or ():
        try:
            decode(_even_hex(pre), keys=keys, formats=formats)
        except DecodeError:
            pass  # the compact frame's own decode reports what is missing
    raw = _even_hex(row["hex"]) if row.get("has_crc") else _even_hex(row["canonical_hex"])
    t = decode(raw, keys=keys, formats=formats)
    problems = list(t.problems)
    if t.decryption not in ("not_encrypted", "ok"):
        problems.append(f"decryption: {t.decryption} ({t.message})")
    if t.records_outcome == "format_unknown":
        problems.append("compact frame: format unknown")
    return t.records, problems, t.records_outcome


def decode_wired(row: dict):
    t = _wired.decode(_even_hex(row["hex"]), keys=_keys(row.get("key")))
    problems = list(t.problems)
    if t.decryption not in ("not_encrypted", "ok"):
        problems.append(f"decryption: {t.decryption} ({t.message})")
    return t.records, problems, "ok" if t.records else "none"


# reference decoders' record lists: (value, unit) pairs
_REF_UNITS = {"m^3": "m3", "m^3/h": "m3/h", "Â°C": "°C", "°C": "°C", "Wh": "Wh", "kWh": "kWh", "W": "W",
              "V": "V", "A": "A", "K": "K", "s": "s", "J": "J", "l": "l", "m³": "m3", "m³/h": "m3/h"}


def reference_fields(expected: dict) -> list[Field]:
    out = []
    lists = [expected.get(k) for k in ("records", "data_records", "dataRecord")]
    for recs in lists:
        if not isinstance(recs, list):
            continue
        for i, rec in enumerate(recs):
            if not isinstance(rec, dict):
                continue
            value = rec.get("value")
            what = rec.get("quantity") or rec.get("description") or rec.get("label") or rec.get("vif", "")
            name = f"record{i}:{what}"
            if isinstance(value, str) and DATE_RE.match(value):
                out.append(Field(name, value, "date", standard=True))
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            unit = rec.get("unit")
            if "units" in rec:  # m-bus-parser (wired): units list + decimal exponent
                units = rec["units"]
                unit = {'("Watt", 1), ("Hour", 1)': "Wh", '("Watt", 1)': "W", '("Volt", 1)': "V",
                        '("Ampere", 1)': "A"}.get(units)
                if unit is None:
                    continue
            if "exponent" in rec or "decimal_scale_exponent" in rec:
                exp = rec.get("exponent", rec.get("decimal_scale_exponent"))
                value = Decimal(repr(value) if isinstance(value, float) else str(value)).scaleb(int(exp))
                value = float(value) if value != value.to_integral_value() else int(value)
            elif "multiplier" in rec:
                value = float(Decimal(str(value)) * Decimal(str(rec["multiplier"])))
            conv = RECORD_UNITS.get(_REF_UNITS.get(unit or "", ""))
            if conv is None:
                continue
            family, factor = conv
            out.append(Field(name, value, family, factor, standard=True))
    return out


def _judge_standard(fields: list[Field], values: list[Value], failed: bool) -> None:
    """Which fields are standard data. A field of a DIF/VIF quantity is standard when a standard
    (non-vendor, non-manufacturer) record of ours carries it; when it is not found, it is standard
    if our decoding failed, or if a standard record of its family is left that no field explains (a
    record we may have decoded wrongly), or a compact profile of its family was not expanded."""
    std = [v for v in values if not v.vendor and not v.manufacturer]
    claimed = {id(v) for f in fields for v in std if value_matches(f, v)}
    for f in fields:
        if f.family not in STANDARD_FAMILIES:
            f.standard = False
        elif f.found:
            f.standard = any(value_matches(f, v) for v in std)
        else:
            f.standard = failed or any(v.family == f.family and (v.profile or id(v) not in claimed) for v in std)


def measure(vectors: Path) -> list[Row]:
    rows: list[Row] = []
    for name, decoder in (("wireless.jsonl", decode_wireless), ("wired.jsonl", decode_wired)):
        path = vectors / name
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            if not line.strip():
                continue
            vec = json.loads(line)
            expected = vec.get("expected") if isinstance(vec.get("expected"), dict) else {}
            driver = vec.get("driver")
            row = Row(vid=vec["id"], driver=driver or f"({vec.get('kind', '?')})",
                      manufacturer=vec.get("manufacturer") or "?", source="driver" if driver else "reference")
            try:
                records, problems, outcome = decoder(vec)
            except DecodeError as err:
                records, problems, outcome = (), [f"{type(err).__name__}: {err}"], "error"
            except Exception as err:  # noqa: BLE001 - a benchmark reports every failure, it must not stop
                records, problems, outcome = (), [f"EXCEPTION {type(err).__name__}: {err}"], "error"
            row.error = "; ".join(problems) if problems else None
            values = record_values(records)
            if driver:
                failed = bool(problems) or outcome in ("error", "not_decrypted", "format_unknown")
                row.fields = [f for key, want in expected.items() if (f := classify(key, want)) is not None]
                for f in row.fields:
                    f.found = field_found(f, values)
                _judge_standard(row.fields, values, failed)
            else:
                row.fields = reference_fields(expected)
                for f in row.fields:
                    f.found = field_found(f, values)
            rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------------
# report


def _pct(a: int, b: int) -> str:
    return f"{100 * a / b:5.1f} %" if b else "    -  "


def _line(label: str, rows: list[Row], width: int) -> str:
    n = len(rows)
    ok = sum(1 for r in rows if r.error is None)
    std = [f for r in rows if r.source == "driver" for f in r.fields if f.standard]
    alls = [f for r in rows if r.source == "driver" for f in r.fields]
    sf, af = sum(f.found for f in std), sum(f.found for f in alls)
    return (f"{label:<{width}} {n:>5} {_pct(ok, n):>8} {sf:>5}/{len(std):<5} {_pct(sf, len(std)):>8} "
            f"{af:>5}/{len(alls):<5} {_pct(af, len(alls)):>8}")


def report(rows: list[Row], *, by: str, missing: bool, errors: bool) -> str:
    width = 28
    head = (f"{'':<{width}} {'tlgs':>5} {'parse':>8} {'standard found':>14} {'':>6} "
            f"{'all numbers found':>17} {'':>3}")
    out = [head, "-" * len(head)]
    driver_rows = [r for r in rows if r.source == "driver"]
    out.append(_line("ALL wmbusmeters telegrams", driver_rows, width))
    ok = sum(1 for r in rows if r.error is None)
    out.append(f"{'ALL telegrams (parse only)':<{width}} {len(rows):>5} {_pct(ok, len(rows)):>8}")
    ref = [f for r in rows if r.source == "reference" for f in r.fields]
    rf = sum(f.found for f in ref)
    out.append(f"{'reference records':<{width}} {len([r for r in rows if r.source == 'reference']):>5} "
               f"{'':>8} {rf:>5}/{len(ref):<5} {_pct(rf, len(ref)):>8}   (libmbus, exmbus, m-bus-parser, "
               "wireless-mbus-parser record values)")
    for key in (["driver", "manufacturer"] if by == "both" else [by]):
        groups: dict[str, list[Row]] = defaultdict(list)
        for r in driver_rows:
            groups[getattr(r, key)].append(r)
        out += ["", f"per {key}:", head, "-" * len(head)]
        for name in sorted(groups):
            out.append(_line(name[:width], groups[name], width))
    if errors:
        bad = [r for r in rows if r.error]
        out += ["", f"telegrams with problems ({len(bad)}):"]
        out += [f"  {r.vid:<24} {r.driver:<18} {r.error}" for r in bad]
    if missing:
        out += ["", "values not found (S = standard data):"]
        for r in rows:
            for f in r.fields:
                if not f.found:
                    out.append(f"  {r.vid:<24} {r.driver:<18} {'S' if f.standard else ' '} {f.name} = {f.want}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--vectors", type=Path, default=VECTORS, help="folder with wireless.jsonl / wired.jsonl")
    ap.add_argument("--missing", action="store_true", help="list every field value not found")
    ap.add_argument("--errors", action="store_true", help="list every telegram with a problem and its reason")
    ap.add_argument("--by", choices=("driver", "manufacturer", "both"), default="both")
    args = ap.parse_args(argv)
    if not (args.vectors / "wireless.jsonl").exists():
        print(f"no vectors in {args.vectors}", file=sys.stderr)
        return 2
    rows = measure(args.vectors)
    print(report(rows, by=args.by, missing=args.missing, errors=args.errors))
    return 0


if __name__ == "__main__":
    sys.exit(main())
