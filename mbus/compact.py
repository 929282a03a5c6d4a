"""Compact frames and format signatures (EN 13757-3 Annex G).

A full frame's record headers (DIF/DIFE/VIF/VIFE bytes) hash to a *format signature*
(CRC-16/EN-13757). A compact frame (CI 0x79 / 0x7B / 0x73) sends only
``signature(2, LE) full_frame_crc(2, LE) data...``; a receiver that has seen the full frame (or a
format frame, CI 0x69 / 0x6A / 0x6B) rebuilds the full records and checks the full-frame CRC.
"""

from __future__ import annotations

from collections import OrderedDict

from .crc import crc16
from .errors import DecodeError, TruncatedError
from .records import DATA_FIELDS, DataRecord, header_list


class FormatUnknownError(DecodeError):
    """A compact frame whose format signature has not been learned yet."""

    reason = "format_unknown"


def signature(headers: bytes) -> int:
    return crc16(headers)


def split_headers(headers: bytes) -> list[bytes]:
    """Cut a concatenated header list into one DIB+VIB per record."""
    out, pos, n = [], 0, len(headers)
    while pos < n:
        start = pos
        dif = headers[pos]
        pos += 1
        while headers[pos - 1] & 0x80 and pos < n:  # DIFEs
            pos += 1
        if pos >= n:
            raise TruncatedError("format header list ends inside a DIB", layer="APL", offset=pos)
        vif = headers[pos]
        pos += 1
        if vif & 0x7F == 0x7C:
            if pos >= n:
                raise TruncatedError("plain-text VIF length missing", layer="APL", offset=pos)
            pos += 1 + headers[pos]
        ext = vif & 0x80
        while ext:
            if pos >= n:
                raise TruncatedError("format header list ends inside a VIB", layer="APL", offset=pos)
            ext = headers[pos] & 0x80
            pos += 1
        if dif & 0x0F == 0x0F:
            raise DecodeError(f"DIF 0x{dif:02X} cannot appear in a format", layer="APL", offset=start)
        out.append(headers[start:pos])
    return out


def expand(headers: bytes, data: bytes) -> bytes:
    """Interleave a format's headers with a compact frame's data into full-frame record bytes."""
    out = bytearray()
    pos = 0
    for header in split_headers(headers):
        length, coding = DATA_FIELDS[header[0] & 0x0F]
        if coding == "lvar":
            if pos >= len(data):
                raise TruncatedError("compact data ends before an LVAR byte", layer="APL", offset=pos)
            lvar = data[pos]
            length = 1 + (lvar if lvar <= 0xBF else (lvar & 0x0F) if lvar < 0xF0 else
                          {0xF5: 48, 0xF6: 64}.get(lvar, 4 * (lvar - 0xEC)))
        if pos + length > len(data):
            raise TruncatedError(f"compact data ends inside a record ({len(data) - pos} of {length} bytes)",
                                 layer="APL", offset=pos)
        out += header + data[pos:pos + length]
        pos += length
    rest = data[pos:]
    if rest.strip(b"\x2f"):
        raise DecodeError(f"compact data has {len(rest)} bytes more than the format describes",
                          layer="APL", offset=pos)
    return bytes(out)


class FormatCache:
    """Formats learned from full frames and format frames, by (meter, signature) and by signature."""

    def __init__(self, max_entries: int = 4096):
        self._by_meter: OrderedDict[tuple[bytes, int], bytes] = OrderedDict()
        self._by_sig: OrderedDict[int, bytes] = OrderedDict()
        self._signatures: dict[bytes, int] = {}  # the same meters send the same formats again and again
        self.max_entries = max_entries

    def __len__(self) -> int:
        return len(self._by_meter)

    def learn(self, meter: bytes, headers: bytes) -> int:
        sig = self._signatures.get(headers)
        if sig is None:
            sig = self._signatures[headers] = signature(headers)
            if len(self._signatures) > self.max_entries:
                self._signatures.clear()
        for table, key in ((self._by_meter, (meter, sig)), (self._by_sig, sig)):
            table[key] = headers
            table.move_to_end(key)
            if len(table) > self.max_entries:
                table.popitem(last=False)
        return sig

    def learn_records(self, meter: bytes, records: list[DataRecord]) -> int | None:
        headers = header_list(records)
        return self.learn(meter, headers) if headers else None

    def lookup(self, meter: bytes, sig: int) -> bytes | None:
        return self._by_meter.get((meter, sig)) or self._by_sig.get(sig) or KNOWN_FORMATS.get(sig)


# Formats known without seeing their full frame (e.g. a vendor's published compact-frame layouts):
# signature -> header list. Consulted after the learned ones; filled by register_format.
KNOWN_FORMATS: dict[int, bytes] = {}


def register_format(headers: bytes) -> int:
    """Make a format (its concatenated record headers) known to every FormatCache; returns its
    signature. The headers must cut into whole records (split_headers)."""
    split_headers(headers)
    sig = signature(headers)
    known = KNOWN_FORMATS.get(sig)
    if known is not None and known != headers:
        raise ValueError(f"format signature {sig:04x} is already registered with other headers")
    KNOWN_FORMATS[sig] = headers
    return sig


def decode_compact(cache: FormatCache | None, meter: bytes, apl: bytes) -> tuple[bytes, bool]:
    """(full-frame record bytes, full-frame CRC matched) for a compact frame's APL.

    Raises FormatUnknownError when the signature was never learned, DecodeError when the data does
    not fit the format. A full-frame CRC mismatch is returned, not raised: some meters (Kamstrup)
    compute it over other bytes, while the signature and the exact data length already tie the
    data to the format."""
    skip = 0
    while skip < len(apl) and apl[skip] == 0x2F:  # 2F2F decryption marker / fillers before the signature
        skip += 1
    apl = apl[skip:]
    if len(apl) < 4:
        raise TruncatedError("compact frame needs signature and full-frame CRC", layer="APL", offset=len(apl))
    sig = apl[0] | apl[1] << 8
    want_crc = apl[2] | apl[3] << 8
    headers = cache.lookup(meter, sig) if cache is not None else None
    if headers is None:
        raise FormatUnknownError(f"format signature {sig:04x} not learned yet: the full frame of this meter "
                                 "must be seen first", layer="APL", offset=0)
    full = expand(headers, apl[4:])
    return full, crc16(full) == want_crc


def parse_format_frame(apl: bytes) -> tuple[int, bytes]:
    """(signature, headers) from a format frame's APL: len, signature(2, LE), headers."""
    if len(apl) < 3:
        raise TruncatedError("format frame too short", layer="APL", offset=len(apl))
    length = apl[0]
    if length < 2 or 1 + length > len(apl):
        raise TruncatedError(f"format frame length {length} does not fit", layer="APL", offset=0)
    sig = apl[1] | apl[2] << 8
    headers = apl[3:1 + length]
    if signature(headers) != sig:
        raise DecodeError(f"format frame signature {sig:04x} != CRC of its headers {signature(headers):04x}",
                          layer="APL", offset=1)
    return sig, headers


# ----------------------------------------------------------------------------------------------
# Compact profiles (EN 13757-3 Annex F; digest ../shared/spec/apl.md section 5.3)
#
# One LVAR record (orthogonal VIFE 0x1F compact profile, 0x13 inverse compact profile, 0x1E with
# register numbers) carries a series of equally spaced values:
#   byte 0 spacing control: bits 7-6 increment mode, bits 5-4 spacing unit, bits 3-0 element coding
#   byte 1 spacing value (1-250 units; 0 = array; 253 days = half month, 254 days = month,
#          254 hours = quarter, 254 minutes = half year)
#   then the elements.
# Base value: the record with the same storage / tariff / subunit and the same VIF without the
# profile VIFE; base time: the date/time record with the same storage number. Element k (1-based)
# has storage base + k and time base + k x spacing (minus for the inverse profile). The profile
# with register numbers has the same layout (EN 13757-3:2018 F.2.6 as reproduced by exmbus): its
# elements are the registers base + k.

PROFILE_VIFES = {0x1F: "compact profile", 0x13: "inverse compact profile",
                 0x1E: "compact profile with register numbers"}
_MODES = ("absolute", "positive increments", "negative increments", "signed difference")
_UNITS = ("s", "min", "h", "d")


def _strip_profile_vife(vib: bytes) -> tuple[bytes, int | None]:
    """(the VIB without its profile VIFE, that VIFE's code); code None when there is none."""
    start = 1
    if vib[:1] in (b"\xfb", b"\xfd"):
        start = 3 if vib[0] == 0xFD and len(vib) > 1 and vib[1] & 0x7F == 0x7D else 2
    if vib[:1] and vib[0] & 0x7F in (0x7C, 0x7F):
        return vib, None  # plain-text or manufacturer VIF: no standard VIFEs to look at
    for i in range(start, len(vib)):
        if vib[i] & 0x7F in PROFILE_VIFES and vib[i - 1] & 0x80:
            code = vib[i] & 0x7F
            rest = bytearray(vib[:i] + vib[i + 1:])
            if not vib[i] & 0x80:  # it was the last VIFE: the byte before it ends the VIB now
                rest[i - 1] &= 0x7F
            return bytes(rest), code
        if vib[i] & 0x7F == 0x7C:  # FC table byte follows: skip it
            break
    return vib, None


def _scale(dib: bytes, vib: bytes) -> DataRecord | None:
    """A record decoding raw 1 with this VIB: its value is the profile's scale, its quantity/unit
    the elements'."""
    from .records import iter_results  # here to keep the import order records -> compact

    items = list(iter_results(bytes((0x01 | (dib[0] & 0x70),)) + vib + b"\x01"))
    rec = items[0] if items else None
    return rec if isinstance(rec, DataRecord) and rec.value is not None else None


def _element(coding: int, data: bytes, signed: bool) -> tuple[int | None, str | None]:
    """(raw integer, no-value note) of one element."""
    from .records import bcd_value

    kind = DATA_FIELDS[coding][1]
    if kind == "bcd":
        n = bcd_value(data)
        if n is None:
            return None, f"no value: BCD {data[::-1].hex()} (invalid marker)"
        return n, None
    n = int.from_bytes(data, "little", signed=signed)
    if signed and n == -(1 << (8 * len(data) - 1)):
        return None, f"no value: 0x{data[::-1].hex()} (invalid marker)"
    if not signed and n == (1 << (8 * len(data))) - 1:
        return None, f"no value: 0x{data[::-1].hex()} (invalid marker or increment overflow)"
    return n, None


def _parse_time(text: str | None):
    """A datetime (and the text style) from our date/time record text; None when periodic or absent."""
    import datetime as _dt

    if not text or "*" in text:
        return None
    try:
        if "T" in text:
            style = "seconds" if text.count(":") == 2 else "minutes"
            return _dt.datetime.fromisoformat(text), style
        return _dt.datetime.fromisoformat(text + "T00:00"), "date"
    except ValueError:
        return None


def _add_months(when, months: int):
    import calendar

    month0 = when.month - 1 + months
    year, month = when.year + month0 // 12, month0 % 12 + 1
    day = min(when.day, calendar.monthrange(year, month)[1])
    # a base on the last day of its month stays on the last day (due dates: 31 Dec, 28 Feb ...)
    if when.day == calendar.monthrange(when.year, when.month)[1]:
        day = calendar.monthrange(year, month)[1]
    return when.replace(year=year, month=month, day=day)


def _time_step(unit: int, value: int) -> tuple[str, int] | None:
    """("seconds" | "months", amount) of one spacing; None when there is no time spacing."""
    if value == 0 or value in (251, 252, 255):
        return None
    if value == 254:
        return {3: ("months", 1), 2: ("months", 3), 1: ("months", 6)}.get(unit)
    if value == 253:
        return None  # half month: the rule for its days is not public
    return "seconds", value * (1, 60, 3600, 86400)[unit]


def _format_time(when, style: str) -> str:
    if style == "date":
        return when.strftime("%Y-%m-%d")
    return when.strftime("%Y-%m-%dT%H:%M:%S" if style == "seconds" else "%Y-%m-%dT%H:%M")


def expand_profile(profile: DataRecord, records: list[DataRecord]) -> tuple[list[DataRecord], str]:
    """The values of one compact-profile record, one record each, and a note for the profile
    record itself (what was expanded, or why not)."""
    import dataclasses
    import datetime as _dt

    vib, code = _strip_profile_vife(profile.vib)
    if code is None:
        return [], "compact profile: the profile VIFE could not be located"
    data = profile.data
    if len(data) < 2:
        return [], "compact profile shorter than its spacing control and spacing value"
    control, spacing = data[0], data[1]
    mode, unit, coding = control >> 6, (control >> 4) & 3, control & 0x0F
    size, kind = DATA_FIELDS.get(coding, (0, "none"))
    if kind not in ("int", "bcd") or size <= 0:
        return [], f"compact profile element coding 0x{coding:X} is not allowed (no data, real, LVAR or special)"
    body = data[2:]
    if len(body) % size:
        return [], f"compact profile: {len(body)} element bytes are not a multiple of the element size {size}"
    scale_rec = _scale(profile.dib, vib)
    if scale_rec is None:
        return [], "compact profile of a quantity without a numeric scale: bytes kept raw"
    scale = scale_rec.value
    inverse = code == 0x13
    base_value = next((r for r in records if r.derived_from is None and r is not profile
                       and (r.storage, r.tariff, r.subunit) == (profile.storage, profile.tariff, profile.subunit)
                       and r.vib == vib and r.value is not None), None)
    base_time_rec = next((r for r in records if r.derived_from is None and r.storage == profile.storage
                          and r.text is not None and _parse_time(r.text) is not None
                          and r.quantity in ("date", "datetime")), None)
    base_time = _parse_time(base_time_rec.text) if base_time_rec is not None else None
    step = _time_step(unit, spacing)
    signed = mode in (0, 3)
    out: list[DataRecord] = []
    running = base_value.value if base_value is not None else None
    for k in range(1, len(body) // size + 1):
        chunk = body[(k - 1) * size:k * size]
        raw, note = _element(coding, chunk, signed)
        value = None
        if raw is not None:
            amount = scale * raw
            if mode == 0:
                value = amount
            elif running is None:
                note = ("increment " + str(amount) + ": no base value record (same storage, tariff, subunit "
                        "and VIF) to add it to")
            else:
                sign = {1: 1, 2: -1, 3: 1}[mode] * (-1 if inverse else 1)
                running = running + sign * amount
                value = running
        elif mode != 0:
            running = None  # an invalid increment: every later value is unknown
        time_point = None
        if base_time is not None and step is not None:
            when, style = base_time
            n = -k if inverse else k
            if step[0] == "months":
                when = _add_months(when, n * step[1])
            else:
                when = when + _dt.timedelta(seconds=n * step[1])
            time_point = _format_time(when, style)
        out.append(dataclasses.replace(
            scale_rec, offset=profile.offset, raw=chunk, dib=profile.dib, vib=vib, data=chunk,
            function=profile.function, storage=profile.storage + k, tariff=profile.tariff, subunit=profile.subunit,
            value=value, text=None, modifiers=(*scale_rec.modifiers, f"from {PROFILE_VIFES[code]}"),
            note=note, time_point=time_point, derived_from=profile.offset))
    plural = "s" if len(out) != 1 else ""
    what = [f"{len(out)} value{plural} ({_MODES[mode]}, storage {profile.storage + 1}..{profile.storage + len(out)})"]
    if step is None:
        what.append({0: "an array: no time spacing", 253: "half-month spacing: time points not computed (the rule "
                     "for its days is not public)"}.get(spacing, f"reserved spacing value {spacing}: no time points"))
    elif base_time is None:
        what.append("no base time record with the same storage number")
    if mode != 0:
        what.append(f"base value {base_value.value} {base_value.unit} (storage {base_value.storage})"
                    if base_value is not None else "no base value")
    return out, f"{PROFILE_VIFES[code]}: " + "; ".join(what)


def expand_profiles(records: list[DataRecord]) -> list[DataRecord]:
    """The records with every compact profile followed by its expanded values."""
    import dataclasses

    if not any(r.value is None and r.text is not None and
               any(m in PROFILE_VIFES.values() for m in r.modifiers) for r in records):
        return records
    out = []
    for r in records:
        out.append(r)
        if r.value is None and r.text is not None and any(m in PROFILE_VIFES.values() for m in r.modifiers):
            values, note = expand_profile(r, records)
            out[-1] = dataclasses.replace(r, note=note)
            out += values
    return out
