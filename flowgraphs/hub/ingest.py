"""What arrives at the hub, checked and brought to one shape (:class:`Heard`): the edge's raw JSON
(``rx --mqtt URL --raw``), rtl_433 ``-F json`` m-bus lines and rtl_wmbus lines.

Bad input is expected on a shared bus: every parser raises :class:`BadInput` with a short reason
(counted by the hub) and a detail naming the field at fault; nothing here touches the store.

Facts used for rtl_433 (its ``src/devices/m_bus.c``): the m-bus output has ``model``
"Wireless-MBus" (``KNX-RF`` for KNX frames), ``mode`` (T, C, S, R), ``data`` (hex of the frame
without CRCs; the first byte is the L-field minus 2; for format A the last data block's two CRC
bytes follow the frame), plus optional ``rssi``/``snr`` with ``-M level``.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from mbus.errors import DecodeError
from mbus.frame import build_format_a, strip_format_a, strip_format_b

RAW_VERSION = 1
_RECEIVER_RE = re.compile(r"^[^/+#\x00-\x1f]{1,64}$")  # an MQTT topic level (what rx --receiver-id allows)
_HEX_RE = re.compile(r"^[0-9a-fA-F]+$")
MIN_FRAME_BYTES = 11  # L C M(2) A(6) CI


class BadInput(ValueError):
    """Input the hub rejects: ``reason`` is the counter's name, the message says what was wrong."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


@dataclass(frozen=True, slots=True, kw_only=True)
class Heard:
    """One frame as one receiver heard it. ``telegram`` is canonical (L first, no CRCs);
    ``time_ns`` is the edge's UTC time (None without a clock), ``arrived_ns`` the hub's."""

    receiver: str
    telegram: bytes
    arrived_ns: int
    time_ns: int | None = None
    mode: str | None = None
    frame_format: str | None = None
    rssi_dbfs: float | None = None
    snr_db: float | None = None
    freq_offset_hz: float | None = None
    ppm: float | None = None
    sample: int | None = None
    dropped_samples: int | None = None
    source: str = "raw"  # raw | rtl433 | rtlwmbus

    @property
    def meter_id(self) -> str:
        """The link-layer id (8 digits), as the A-field's BCD reads."""
        return self.telegram[4:8][::-1].hex()


HEARD_FIELDS = ("receiver", "telegram", "arrived_ns", "time_ns", "mode", "frame_format", "rssi_dbfs", "snr_db",
                "freq_offset_hz", "ppm", "sample", "dropped_samples", "source")


def heard_tuple(h: Heard) -> tuple:
    """A :class:`Heard` as a plain tuple in :data:`HEARD_FIELDS` order: what an intake process
    sends through its pipe (a tuple pickles ten times faster than the dataclass)."""
    return (h.receiver, h.telegram, h.arrived_ns, h.time_ns, h.mode, h.frame_format, h.rssi_dbfs, h.snr_db,
            h.freq_offset_hz, h.ppm, h.sample, h.dropped_samples, h.source)


def heard_from_tuple(t: tuple) -> Heard:
    """The inverse of :func:`heard_tuple`."""
    return Heard(receiver=t[0], telegram=t[1], arrived_ns=t[2], time_ns=t[3], mode=t[4], frame_format=t[5],
                 rssi_dbfs=t[6], snr_db=t[7], freq_offset_hz=t[8], ppm=t[9], sample=t[10], dropped_samples=t[11],
                 source=t[12])


def canonical_frame(data: bytes, *, where: str) -> tuple[bytes, str | None]:
    """(canonical bytes, format found): exact canonical length, else format A or B whose CRCs
    all check. BadInput "bad_crc" when the length fits neither."""
    if len(data) < MIN_FRAME_BYTES:
        raise BadInput("too_short", f"{where}: {len(data)} bytes, a frame has at least {MIN_FRAME_BYTES}")
    if len(data) == data[0] + 1:
        return data, None
    for fmt, strip in (("A", strip_format_a), ("B", strip_format_b)):
        try:
            canonical, trailing = strip(data)
        except DecodeError:
            continue
        if not trailing:
            return canonical, fmt
    raise BadInput("bad_crc", f"{where}: {len(data)} bytes with L-field {data[0]}: not canonical, "
                              "and no format A/B CRC checks")


def _hex(text, *, where: str) -> bytes:
    if not isinstance(text, str) or not text:
        raise BadInput("bad_field", f"{where}: expected a hex string")
    if not _HEX_RE.match(text):
        raise BadInput("bad_hex", f"{where}: not hexadecimal")
    if len(text) % 2:
        raise BadInput("bad_hex", f"{where}: odd number of hex digits ({len(text)})")
    return bytes.fromhex(text)


def _number(obj: dict, name: str, *, required: bool, integer: bool = False):
    value = obj.get(name)
    if value is None:
        if required:
            raise BadInput("bad_field", f"field {name!r} missing")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or (integer and not isinstance(value, int)):
        raise BadInput("bad_field", f"field {name!r}: expected a {'integer' if integer else 'number'}")
    if isinstance(value, float) and not math.isfinite(value):
        raise BadInput("bad_field", f"field {name!r}: not finite")
    return value


def parse_time(text: str, *, where: str) -> int:
    """ns since the epoch from ``2026-12-01T19:55:00.123456Z`` (UTC, Z or +00:00)."""
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadInput("bad_field", f"{where}: not an ISO 8601 time") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    delta = when - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def parse_raw(payload: bytes, *, topic_receiver: str | None, arrived_ns: int) -> Heard:
    """The edge's ``PREFIX/raw/<receiver>`` JSON message."""
    return heard_from_tuple(parse_raw_tuple(payload, topic_receiver=topic_receiver, arrived_ns=arrived_ns))


def parse_raw_tuple(payload: bytes, *, topic_receiver: str | None, arrived_ns: int) -> tuple:
    """:func:`parse_raw` as a :func:`heard_tuple` (what an intake process sends on: no object made)."""
    try:
        obj = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BadInput("not_json", f"{err}") from None
    if not isinstance(obj, dict):
        raise BadInput("bad_field", "message is not a JSON object")
    if obj.get("v") != RAW_VERSION:
        raise BadInput("bad_field", f"field 'v': expected {RAW_VERSION}")
    receiver = obj.get("receiver")
    if not isinstance(receiver, str) or not _RECEIVER_RE.match(receiver):
        raise BadInput("bad_field", "field 'receiver': expected 1 to 64 characters without / + # or controls")
    if topic_receiver is not None and receiver != topic_receiver:
        raise BadInput("bad_field", f"field 'receiver' {receiver!r} differs from the topic's {topic_receiver!r}")
    data = _hex(obj.get("telegram"), where="field 'telegram'")
    telegram, found = canonical_frame(data, where="field 'telegram'")
    fmt = obj.get("format")
    if fmt not in ("A", "B", None):
        raise BadInput("bad_field", "field 'format': expected 'A', 'B' or null")
    mode = obj.get("mode")
    if not isinstance(mode, str) or not 1 <= len(mode) <= 4:
        raise BadInput("bad_field", "field 'mode': expected a link mode name such as 'T1'")
    time_text = obj.get("time")
    time_ns = None
    if time_text is not None:
        if not isinstance(time_text, str):
            raise BadInput("bad_field", "field 'time': expected an ISO 8601 string or null")
        time_ns = parse_time(time_text, where="field 'time'")
    exact = _number(obj, "time_ns", required=False, integer=True)
    if exact is not None:
        time_ns = exact
    rssi = _number(obj, "rssi_dbfs", required=True)
    return (receiver, telegram, arrived_ns, time_ns, mode, fmt or found, float(rssi),
            _number(obj, "snr_db", required=False), _number(obj, "freq_offset_hz", required=False),
            _number(obj, "ppm", required=False), _number(obj, "sample", required=False, integer=True),
            _number(obj, "dropped_samples", required=False, integer=True), "raw")


def parse_rtl433(line: str | bytes, *, receiver: str, arrived_ns: int) -> Heard:
    """One rtl_433 ``-F json`` line of its Wireless-MBus decoder."""
    try:
        obj = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BadInput("not_json", f"rtl_433 line: {err}") from None
    if not isinstance(obj, dict) or obj.get("model") != "Wireless-MBus":
        raise BadInput("not_mbus", "rtl_433 line: model is not 'Wireless-MBus'")
    data = _hex(obj.get("data"), where="rtl_433 field 'data'")
    if len(data) < MIN_FRAME_BYTES:
        raise BadInput("too_short", f"rtl_433 field 'data': {len(data)} bytes")
    length = data[0] + 2  # rtl_433 prints the L-field minus 2
    fmt = None
    if len(data) == data[0] + 1:  # format B: its L counted two CRC bytes, so L - 2 is canonical
        telegram, fmt = data, "B"
    elif len(data) == length + 3:  # format A: the frame, then the last block's CRC
        telegram = bytes([length]) + data[1:length + 1]
        if build_format_a(telegram)[-2:] != data[-2:]:
            raise BadInput("bad_crc", "rtl_433 field 'data': the last block's CRC does not check")
        fmt = "A"
    else:
        raise BadInput("bad_crc", f"rtl_433 field 'data': {len(data)} bytes do not fit L-field {data[0]}")
    mode = obj.get("mode")
    rssi = obj.get("rssi")
    snr = obj.get("snr")
    return Heard(receiver=receiver, telegram=telegram, arrived_ns=arrived_ns,
                 mode=f"{mode}1" if isinstance(mode, str) and len(mode) == 1 else None, frame_format=fmt,
                 rssi_dbfs=float(rssi) if isinstance(rssi, int | float) and not isinstance(rssi, bool) else None,
                 snr_db=float(snr) if isinstance(snr, int | float) and not isinstance(snr, bool) else None,
                 source="rtl433")


def parse_rtlwmbus(line: str, *, receiver: str, arrived_ns: int) -> Heard:
    """``MODE;CRC_OK;3OUTOF6OK;TIMESTAMP;PACKET_RSSI;CURRENT_RSSI;LINK_LAYER_IDENT_NO;0xHEX``."""
    parts = line.strip().split(";")
    if len(parts) != 8:
        raise BadInput("bad_line", f"rtlwmbus line: {len(parts)} fields, expected 8")
    mode, crc_ok, _three, stamp, rssi, _noise, _ident, hex_text = parts
    if crc_ok != "1":
        raise BadInput("bad_crc", "rtlwmbus line: CRC_OK is not 1")
    if hex_text[:2].lower() != "0x":
        raise BadInput("bad_hex", "rtlwmbus line: the telegram does not start with 0x")
    telegram, fmt = canonical_frame(_hex(hex_text[2:], where="rtlwmbus telegram"), where="rtlwmbus telegram")
    time_ns = None
    if stamp:
        time_ns = parse_time(stamp.replace(" ", "T"), where="rtlwmbus timestamp")
    try:
        rssi_dbfs = float(rssi)
    except ValueError:
        raise BadInput("bad_field", "rtlwmbus line: PACKET_RSSI is not a number") from None
    return Heard(receiver=receiver, telegram=telegram, arrived_ns=arrived_ns, time_ns=time_ns,
                 mode=mode or None, frame_format=fmt, rssi_dbfs=rssi_dbfs, source="rtlwmbus")


def parse_line(line: str, *, receiver: str, arrived_ns: int) -> Heard:
    """An rtl_433 JSON line or an rtlwmbus line, told apart by their first character."""
    text = line.strip()
    if text.startswith("{"):
        return parse_rtl433(text, receiver=receiver, arrived_ns=arrived_ns)
    return parse_rtlwmbus(text, receiver=receiver, arrived_ns=arrived_ns)
