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
        return self._by_meter.get((meter, sig)) or self._by_sig.get(sig)


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
