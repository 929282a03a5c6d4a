"""Wired M-Bus (EN 13757-2) frames and their application layer.

    single character  E5
    short frame       10 C A CS 16
    control frame     68 03 03 68 C A CI CS 16
    long frame        68 L L 68 C A CI data... CS 16     (L = bytes from C to the end of data)

CS is the byte sum (mod 256) from C to the last data byte. The application part after CI is the
same as in wireless M-Bus (variable data structure CI 0x72 with a long header; CI 0x76 is the same
sent most significant byte first); CI 0x73 / 0x77 is the older fixed data structure and CI 0x70 an
application error.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from .dll import c_field_name, is_from_meter
from .errors import CRCError, DecodeError, FieldError, TruncatedError
from .keys import KeyStore
from .layers import LAYERS
from .records import BadRecord, DataRecord, bcd_value, iter_results, parse_records
from .telegram import open_transport
from .tpl import TransportLayer, status_flags

ACK = 0xE5
SHORT_START, LONG_START, STOP = 0x10, 0x68, 0x16

APPLICATION_ERRORS = {0: "unspecified error", 1: "unimplemented CI-field", 2: "buffer too long, truncated",
                      3: "too many records", 4: "premature end of record", 5: "more than 10 DIFEs",
                      6: "more than 10 VIFEs", 7: "reserved", 8: "application busy", 9: "too many readouts"}

# Fixed data structure (CI 0x73 / 0x77): medium in 4 bits over both unit bytes, units per counter.
FIXED_MEDIA = {0: "other", 1: "oil", 2: "electricity", 3: "gas", 4: "heat", 5: "steam", 6: "hot water",
               7: "water", 8: "heat cost allocator", 9: "compressed air", 10: "cooling load (outlet)",
               11: "cooling load (inlet)", 12: "heat (inlet)", 13: "heat/cooling load", 14: "bus/system",
               15: "unknown"}


class ApplicationErrorReport(DecodeError):
    """The slave answered with an application error (CI 0x70 / 0x6E / 0x6F); raised in strict mode."""

    reason = "application_error"


@dataclass(frozen=True, slots=True, kw_only=True)
class WiredFrame:
    kind: str  # "ack" | "short" | "control" | "long"
    c_field: int | None = None
    address: int | None = None  # primary address (0-250, 253 secondary, 254/255 broadcast)
    ci: int | None = None
    data: bytes = b""  # after CI
    raw: bytes = b""

    def to_bytes(self) -> bytes:
        return build(self.kind, c_field=self.c_field, address=self.address, ci=self.ci, data=self.data)


def checksum(body: bytes) -> int:
    return sum(body) & 0xFF


def build(kind: str, *, c_field: int | None = None, address: int | None = None, ci: int | None = None,
          data: bytes = b"") -> bytes:
    if kind == "ack":
        return bytes((ACK,))
    if c_field is None or address is None:
        raise ValueError(f"a {kind} frame needs C and A fields")
    if kind == "short":
        body = bytes((c_field, address))
        return bytes((SHORT_START,)) + body + bytes((checksum(body), STOP))
    if ci is None:
        raise ValueError(f"a {kind} frame needs a CI field")
    body = bytes((c_field, address, ci)) + data
    if len(body) > 255:
        raise ValueError(f"long frame of {len(body)} bytes from C to the end exceeds 255")
    length = len(body)
    return bytes((LONG_START, length, length, LONG_START)) + body + bytes((checksum(body), STOP))


def looks_wired(data: bytes) -> bool:
    """True for E5, a short frame, or a 68 L L 68 frame (what `telegram` auto-detects)."""
    if data == b"\xe5":
        return True
    if len(data) >= 5 and data[0] == SHORT_START and data[4] == STOP and len(data) == 5:
        return True
    return len(data) >= 9 and data[0] == LONG_START and data[3] == LONG_START and data[1] == data[2]


def parse(data: bytes) -> WiredFrame:
    """One wired frame; raises TruncatedError, CRCError (checksum) or FieldError naming the byte."""
    if not data:
        raise TruncatedError("empty frame", layer="wired", offset=0)
    start = data[0]
    if start == ACK:
        if len(data) != 1:
            raise FieldError(f"{len(data) - 1} bytes after the single character E5", layer="wired", offset=1)
        return WiredFrame(kind="ack", raw=bytes(data))
    if start == SHORT_START:
        if len(data) < 5:
            raise TruncatedError(f"short frame needs 5 bytes, got {len(data)}", layer="wired", offset=len(data))
        if checksum(data[1:3]) != data[3]:
            raise CRCError(f"checksum {data[3]:02x} != {checksum(data[1:3]):02x}", layer="wired", offset=3)
        if data[4] != STOP:
            raise FieldError(f"stop byte {data[4]:02x} is not 16", layer="wired", offset=4)
        return WiredFrame(kind="short", c_field=data[1], address=data[2], raw=bytes(data[:5]))
    if start != LONG_START:
        raise FieldError(f"start byte {start:02x} is not E5, 10 or 68", layer="wired", offset=0)
    if len(data) < 4:
        raise TruncatedError("long frame header needs 4 bytes", layer="wired", offset=len(data))
    length = data[1]
    if data[2] != length:
        raise FieldError(f"the two L-fields differ ({data[1]:02x} / {data[2]:02x})", layer="wired", offset=2)
    if data[3] != LONG_START:
        raise FieldError(f"second start byte {data[3]:02x} is not 68", layer="wired", offset=3)
    if length < 3:
        raise FieldError(f"L-field {length} is below 3 (C, A, CI)", layer="wired", offset=1)
    end = 4 + length
    if len(data) < end + 2:
        raise TruncatedError(f"L-field {length} needs {end + 2} bytes, got {len(data)}", layer="wired",
                             offset=len(data))
    body = data[4:end]
    if checksum(body) != data[end]:
        raise CRCError(f"checksum {data[end]:02x} != computed {checksum(body):02x}", layer="wired", offset=end)
    if data[end + 1] != STOP:
        raise FieldError(f"stop byte {data[end + 1]:02x} is not 16", layer="wired", offset=end + 1)
    if len(data) > end + 2:
        raise FieldError(f"{len(data) - end - 2} bytes after the stop byte", layer="wired", offset=end + 2)
    return WiredFrame(kind="control" if length == 3 else "long", c_field=body[0], address=body[1], ci=body[2],
                      data=bytes(body[3:]), raw=bytes(data[:end + 2]))


@dataclass(frozen=True, slots=True, kw_only=True)
class WiredTelegram:
    frame: WiredFrame
    tpl: TransportLayer | None = None
    payload: bytes | None = b""
    records: tuple[DataRecord, ...] = ()
    decryption: str = "not_encrypted"
    message: str = ""
    error: str | None = None  # application error (CI 0x70 ...)
    fixed: dict | None = None  # fixed data structure (CI 0x73 / 0x77)
    more_records_follow: bool = False
    problems: tuple[str, ...] = ()

    def describe(self) -> str:
        f = self.frame
        head = f"wired {f.kind} frame"
        if f.c_field is not None:
            head += f"  C 0x{f.c_field:02X} {c_field_name(f.c_field)}  A {f.address}"
        if f.ci is not None:
            head += f"  CI {f.ci:02x}"
        if self.tpl is not None and self.tpl.address is not None:
            a = self.tpl.address
            head = f"{a.manufacturer_code} {a.id}  {a.device_type_name} (v{a.version:02x})  " + head
        lines = [head]
        if self.message:
            lines.append(f"  {self.decryption}: {self.message}")
        if self.fixed is not None:
            lines.append(f"  fixed data: {self.fixed}")
        lines += [f"  {r.describe()}" for r in self.records]
        lines += [f"  problem: {p}" for p in self.problems]
        return "\n".join(lines)

    def to_json(self) -> dict:
        f = self.frame
        d = {"telegram": f.raw.hex(), "wired": True, "frame": f.kind, "c_field": f.c_field,
             "c_field_name": None if f.c_field is None else c_field_name(f.c_field),
             "primary_address": f.address, "ci": f.ci, "decryption": self.decryption, "message": self.message,
             "payload_hex": None if self.payload is None else self.payload.hex(),
             "records": [r.to_json() for r in self.records], "more_records_follow": self.more_records_follow,
             "errors": list(self.problems)}
        if self.tpl is not None:
            d["layers"] = [self.tpl.to_json()]
            if self.tpl.address is not None:
                a = self.tpl.address
                d.update(manufacturer=a.manufacturer_code, id=a.id, version=a.version, device_type=a.device_type,
                         device_type_name=a.device_type_name, access_number=self.tpl.acc,
                         security_mode=self.tpl.security_mode)
        if self.error is not None:
            d["application_error"] = self.error
        if self.fixed is not None:
            d["fixed"] = self.fixed
        return d


def decode(data: bytes, *, keys: KeyStore | None = None, strict: bool = False) -> WiredTelegram:
    """Decode a wired frame and its application layer. Raises DecodeError for a bad frame
    (checksum, lengths); application-layer faults become problems (or raise in strict mode)."""
    frame = parse(data)
    if frame.kind in ("ack", "short") or frame.ci is None:
        return WiredTelegram(frame=frame, payload=None, message=f"{frame.kind} frame")
    handler = WIRED_APPLICATIONS.get(frame.ci)
    if handler is not None:
        return handler(frame, strict)
    if frame.ci == 0x76:
        return _variable_msb_first(frame, keys, strict)
    kind = LAYERS.get(frame.ci)
    if kind is None or kind.name != "TPL":
        problem = f"CI 0x{frame.ci:02X} is not decoded here; payload kept raw"
        if strict:
            raise FieldError(problem, layer="wired", offset=6)
        return WiredTelegram(frame=frame, payload=frame.data, problems=(problem,))
    opened = open_transport(bytes((frame.ci,)) + frame.data, c_field=frame.c_field, keys=keys, strict=strict)
    tpl = opened.tpl
    if opened.payload is None:
        return WiredTelegram(frame=frame, tpl=tpl, payload=None, decryption=opened.decryption,
                             message=opened.message)
    records, err = parse_records(opened.payload, to_meter=not is_from_meter(frame.c_field))
    if strict and err is not None:
        raise err
    problems = opened.problems + ((str(err),) if err else ())
    more = any(r.function == "more_records_follow" for r in records)
    who = f"{tpl.address.manufacturer_code} {tpl.address.id}" if tpl.address else f"address {frame.address}"
    return WiredTelegram(frame=frame, tpl=tpl, payload=opened.payload, records=tuple(records),
                         decryption=opened.decryption, message=f"{who}: {len(records)} records", problems=problems,
                         more_records_follow=more)


def msb_first_to_lsb_first(apl: bytes) -> tuple[bytes, list[str]]:
    """The records of an MSB-first APL (CI 0x76) with every fixed-length data field reversed, so
    that the usual LSB-first decoding applies; LVAR data (text, containers) keeps its order.
    Returns the bytes and the problems of records whose length could not be known (left as sent)."""
    out = bytearray()
    problems = []
    for item in iter_results(apl):
        if isinstance(item, BadRecord):
            out += item.raw
            problems.append(str(item.error))
            continue
        data = item.data
        fixed = item.dib[:1] and item.dib[0] & 0x0F not in (0x0D, 0x0F) and data
        out += item.raw[:len(item.raw) - len(data)] + data[::-1] if fixed else item.raw
    return bytes(out), problems


def _variable_msb_first(frame: WiredFrame, keys: KeyStore | None, strict: bool) -> WiredTelegram:
    """CI 0x76: the variable data structure sent most significant byte first (EN 1434-3 "mode 2";
    libmbus names it RESP_VARIABLE_MSB). The 12-byte long header's multi-byte fields (identification,
    manufacturer, configuration) and every fixed-length record data field are reversed, then it is
    decoded as CI 0x72. No public example frame exists in the vectors: the layout is inferred from the
    mode's definition (every multi-byte field MSB first)."""
    data = frame.data
    if len(data) < 12:
        problem = f"CI 0x76 needs the 12-byte long header, {len(data)} bytes present"
        if strict:
            raise TruncatedError(problem, layer="wired", offset=7)
        return WiredTelegram(frame=frame, payload=data, problems=(problem,))
    head = bytearray(data[:12])
    head[0:4], head[4:6], head[10:12] = head[0:4][::-1], head[4:6][::-1], head[10:12][::-1]
    opened = open_transport(b"\x72" + bytes(head) + data[12:], c_field=frame.c_field, keys=keys, strict=strict)
    tpl = opened.tpl
    if opened.payload is None:
        return WiredTelegram(frame=frame, tpl=tpl, payload=None, decryption=opened.decryption, message=opened.message)
    apl, problems = msb_first_to_lsb_first(opened.payload)
    records, err = parse_records(apl, to_meter=not is_from_meter(frame.c_field))
    if strict and err is not None:
        raise err
    problems = opened.problems + tuple(problems) + ((str(err),) if err and str(err) not in problems else ())
    who = f"{tpl.address.manufacturer_code} {tpl.address.id}" if tpl.address else f"address {frame.address}"
    return WiredTelegram(frame=frame, tpl=tpl, payload=apl, records=tuple(records), decryption=opened.decryption,
                         message=f"{who}: {len(records)} records (CI 0x76, MSB first)", problems=problems,
                         more_records_follow=any(r.function == "more_records_follow" for r in records))


def _application_error(frame: WiredFrame, strict: bool) -> WiredTelegram:
    """CI 0x70 (no header), 0x6E / 0x6F (short / long header): one error code byte."""
    ci, apl = frame.ci, frame.data
    try:
        tpl = TransportLayer.parse(bytes((ci,)) + apl, 0) if ci != 0x70 else None
    except DecodeError as err:
        return WiredTelegram(frame=frame, problems=(str(err),))
    rest = apl[(tpl.size - 1) if tpl else 0:]
    code = rest[0] if rest else None
    text = (APPLICATION_ERRORS.get(code, f"error code {code}") if code is not None
            else "unspecified error (no error code byte)")
    if strict:
        raise ApplicationErrorReport(f"application error: {text}", layer="APL", offset=7)
    return WiredTelegram(frame=frame, tpl=tpl, payload=rest, error=text, message=f"application error: {text}")


def _fixed_structure(frame: WiredFrame, strict: bool) -> WiredTelegram:
    t = _fixed(frame)
    if strict and t.problems:
        raise TruncatedError(t.problems[0], layer="APL", offset=7)
    return t


def _fixed(frame: WiredFrame) -> WiredTelegram:
    apl = frame.data
    if len(apl) < 16:
        return WiredTelegram(frame=frame, problems=(f"fixed data structure needs 16 bytes, got {len(apl)}",))
    ident = bcd_value(apl[0:4])
    acc, status = apl[4], apl[5]
    u1, u2 = apl[6], apl[7]
    medium = (u1 >> 6) | ((u2 >> 6) << 2)
    binary = bool(status & 0x80)
    counters = []
    for raw, unit in ((apl[8:12], u1 & 0x3F), (apl[12:16], u2 & 0x3F)):
        value = int.from_bytes(raw, "little") if binary else bcd_value(raw)
        counters.append({"unit_code": unit, "value": value, "raw": raw.hex()})
    fixed = {"id": None if ident is None else f"{ident:08d}", "access_number": acc, "status": status,
             "status_flags": status_flags(status & 0x1F), "counters_binary": binary,
             "medium": FIXED_MEDIA.get(medium, "unknown"), "counters": counters}
    return WiredTelegram(frame=frame, payload=apl, fixed=fixed, message=f"fixed data structure, id {fixed['id']}")


# Wired-only meanings of CIs, looked up before the shared layer registry (mbus.layers): the
# application errors and the fixed data structure (0x73 is a compact frame on the air).
WIRED_APPLICATIONS = {0x70: _application_error, 0x6E: _application_error, 0x6F: _application_error,
                      0x73: _fixed_structure, 0x77: _fixed_structure}


def wired_value(record: DataRecord) -> Decimal | str | None:
    """The record value the way a wired-M-Bus tool prints it (number or text)."""
    return record.value if record.value is not None else record.text
