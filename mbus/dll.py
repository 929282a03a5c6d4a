"""Data link layer header (EN 13757-4): L C M(2) A(6), and the address tables it uses.

Layout (canonical frame offsets)::

    0  L   length of what follows (canonical: no CRCs)
    1  C   control field: PRM / FCB-ACD / FCV-DFC / function code
    2  M   manufacturer, 16-bit LE, three letters of 5 bits each
    4  A   ID (4 bytes BCD LE) + version (1) + device type (1)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from .errors import FieldError, TruncatedError

DEVICE_TYPES: dict[int, str] = {
    0x00: "other", 0x01: "oil", 0x02: "electricity", 0x03: "gas", 0x04: "heat (outlet)",
    0x05: "steam", 0x06: "warm water", 0x07: "water", 0x08: "heat cost allocator",
    0x09: "compressed air", 0x0A: "cooling load (outlet)", 0x0B: "cooling load (inlet)",
    0x0C: "heat (inlet)", 0x0D: "heat/cooling load", 0x0E: "bus/system component",
    0x0F: "unknown medium", 0x10: "irrigation water", 0x11: "water data logger",
    0x12: "gas data logger", 0x13: "gas converter", 0x14: "calorific value",
    0x15: "hot water", 0x16: "cold water", 0x17: "dual register water", 0x18: "pressure",
    0x19: "A/D converter", 0x1A: "smoke detector", 0x1B: "room sensor", 0x1C: "gas detector",
    0x20: "breaker (electricity)", 0x21: "valve (gas or water)", 0x25: "customer unit (display)",
    0x28: "waste water", 0x29: "garbage", 0x2A: "carbon dioxide", 0x30: "service tool",
    0x31: "communication controller (gateway)", 0x32: "unidirectional repeater",
    0x33: "bidirectional repeater", 0x36: "radio converter (system side)",
    0x37: "radio converter (meter side)", 0x38: "bus converter (meter side)", 0xFF: "wildcard",
}


def device_type_name(code: int) -> str:
    if code in DEVICE_TYPES:
        return DEVICE_TYPES[code]
    if 0x1D <= code <= 0x1F:
        return "reserved (sensor)"
    if 0x22 <= code <= 0x24:
        return "reserved (switching device)"
    if 0x26 <= code <= 0x27:
        return "reserved (customer unit)"
    if 0x2B <= code <= 0x2F:
        return "reserved (environmental meter)"
    if 0x34 <= code <= 0x3F:
        return "reserved (system device)"
    return "reserved"


# Wireless C-field values by name (EN 13757-4); wired variants with FCB/FCV/ACD/DFC bits fold to these.
C_FIELD_NAMES: dict[int, str] = {
    0x40: "SND-NKE", 0x53: "SND-UD", 0x73: "SND-UD", 0x43: "SND-UD2", 0x45: "SND-UD3",
    0x44: "SND-NR", 0x46: "SND-IR", 0x47: "ACC-NR", 0x48: "ACC-DMD", 0x4A: "REQ-UD1",
    0x5A: "REQ-UD1", 0x7A: "REQ-UD1", 0x4B: "REQ-UD2", 0x5B: "REQ-UD2", 0x7B: "REQ-UD2",
    0x00: "ACK", 0x10: "ACK", 0x20: "ACK", 0x30: "ACK", 0x06: "CNF-IR",
    0x08: "RSP-UD", 0x18: "RSP-UD", 0x28: "RSP-UD", 0x38: "RSP-UD",
}
C_FIELD_CODES: dict[str, int] = {
    "SND-NKE": 0x40, "SND-UD": 0x53, "SND-UD2": 0x43, "SND-UD3": 0x45, "SND-NR": 0x44,
    "SND-IR": 0x46, "ACC-NR": 0x47, "ACC-DMD": 0x48, "REQ-UD1": 0x4A, "REQ-UD2": 0x4B,
    "ACK": 0x00, "CNF-IR": 0x06, "RSP-UD": 0x08,
}


def c_field_name(c_field: int) -> str:
    return C_FIELD_NAMES.get(c_field, f"unknown C 0x{c_field:02X}")


def is_from_meter(c_field: int) -> bool:
    """True for primary messages a meter sends (SND-NR, SND-IR, ACC-*) and for its responses."""
    return c_field in (0x44, 0x46, 0x47, 0x48) or c_field & 0x4F == 0x08


@lru_cache(maxsize=4096)  # asked several times per telegram (vendor decoders, the hub's rows): a table look-up
def manufacturer_code(value: int) -> str:
    """Three letters from the 16-bit M-field (bit 15 ignored, as most stacks do)."""
    letters = ((value >> 10) & 0x1F, (value >> 5) & 0x1F, value & 0x1F)
    return "".join(chr(64 + c) if 1 <= c <= 26 else "?" for c in letters)


def manufacturer_value(code: str) -> int:
    """The 16-bit M-field for three letters A-Z."""
    if len(code) != 3 or not code.isascii() or not code.isalpha():
        raise ValueError(f"manufacturer code must be three letters A-Z, not {code!r}")
    code = code.upper()
    return ((ord(code[0]) - 64) << 10) | ((ord(code[1]) - 64) << 5) | (ord(code[2]) - 64)


def id_string(id_bytes: bytes) -> str:
    """The identification number as printed: 8 digits, most significant first.

    Non-BCD nibbles (some meters use them) are printed as lower-case hex digits.
    """
    return id_bytes[::-1].hex()


def id_bytes_from_string(text: str) -> bytes:
    if len(text) != 8:
        raise ValueError(f"meter id must have 8 digits, not {text!r}")
    try:
        return bytes.fromhex(text)[::-1]
    except ValueError as err:
        raise ValueError(f"meter id must be 8 hex/BCD digits, not {text!r}") from err


@dataclass(frozen=True, slots=True, kw_only=True)
class Address:
    """Manufacturer + identification + version + device type (the secondary address)."""

    manufacturer: int  # 16-bit M-field value
    id_bytes: bytes  # 4 bytes as on air (BCD, LSB first)
    version: int
    device_type: int

    @property
    def id(self) -> str:
        return id_string(self.id_bytes)

    @property
    def manufacturer_code(self) -> str:
        return manufacturer_code(self.manufacturer)

    @property
    def device_type_name(self) -> str:
        return device_type_name(self.device_type)

    def dll_bytes(self) -> bytes:
        """M(2) ID(4) version type — the order of the link layer and of IVs."""
        return self.manufacturer.to_bytes(2, "little") + self.id_bytes + bytes((self.version, self.device_type))

    def tpl_bytes(self) -> bytes:
        """ID(4) M(2) version type — the order of the long transport header."""
        return self.id_bytes + self.manufacturer.to_bytes(2, "little") + bytes((self.version, self.device_type))

    @classmethod
    def from_dll(cls, data: bytes) -> Address:
        return cls(manufacturer=data[0] | data[1] << 8, id_bytes=bytes(data[2:6]), version=data[6],
                   device_type=data[7])

    @classmethod
    def from_tpl(cls, data: bytes) -> Address:
        return cls(manufacturer=data[4] | data[5] << 8, id_bytes=bytes(data[0:4]), version=data[6],
                   device_type=data[7])

    @classmethod
    def make(cls, manufacturer: str, id: str, version: int, device_type: int) -> Address:
        return cls(manufacturer=manufacturer_value(manufacturer), id_bytes=id_bytes_from_string(id),
                   version=version, device_type=device_type)

    def describe(self) -> str:
        return f"{self.manufacturer_code} {self.id} v{self.version:02x} {self.device_type_name}"


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkHeader:
    """The 10-byte wireless link header."""

    length: int
    c_field: int
    address: Address

    SIZE = 10

    @property
    def c_field_name(self) -> str:
        return c_field_name(self.c_field)

    @classmethod
    def parse(cls, frame: bytes) -> LinkHeader:
        if len(frame) < cls.SIZE:
            raise TruncatedError(f"link header needs 10 bytes, got {len(frame)}", layer="DLL",
                                 offset=len(frame))
        return cls(length=frame[0], c_field=frame[1], address=Address.from_dll(frame[2:10]))

    def to_bytes(self) -> bytes:
        if not 0 <= self.length <= 255:
            raise FieldError(f"L-field {self.length} out of range", layer="DLL", offset=0)
        return bytes((self.length, self.c_field)) + self.address.dll_bytes()

    def fields(self) -> list[tuple[int, int, str, str]]:
        a = self.address
        return [
            (0, 1, "L", f"{self.length} bytes follow"),
            (1, 1, "C", f"0x{self.c_field:02X} {self.c_field_name}"),
            (2, 2, "M", f"{a.manufacturer_code} (0x{a.manufacturer:04X})"),
            (4, 4, "ID", a.id),
            (8, 1, "version", f"0x{a.version:02X}"),
            (9, 1, "device type", f"0x{a.device_type:02X} {a.device_type_name}"),
        ]
