"""Transport layer (EN 13757-7): the CI byte, its header (none / short / long) and the
configuration field that selects the security mode.

    none   CI
    short  CI ACC STS CF(2) [mode 7: CFE [counter(4)] [key version]] [mode 10: CFE(2) [counter(4)]]
    long   CI ID(4) M(2) ver type ACC STS CF(2) [...as short]

The CI table is data: CI -> (name, header kind, payload kind, direction). Payload kinds tell the
application layer what follows: "records" (full frame), "compact", "format", "alarm", "error",
"none" (transport only) or "raw" (DLMS, OBIS, image transfer ... kept as bytes).
"""

from __future__ import annotations

from dataclasses import dataclass

from .dll import Address
from .errors import TruncatedError
from .security import TPL_MODES, ConfigExtension, mode_name, tpl_mode

NONE, SHORT, LONG = "none", "short", "long"
UP, DOWN = "from device", "to device"


@dataclass(frozen=True, slots=True)
class CIInfo:
    name: str
    header: str
    payload: str
    direction: str | None = None


TPL_CIS: dict[int, CIInfo] = {
    0x50: CIInfo("application reset or select", NONE, "raw", DOWN),
    0x51: CIInfo("command to device", NONE, "records", DOWN),
    0x53: CIInfo("application reset or select", LONG, "raw", DOWN),
    0x54: CIInfo("request of selected application", NONE, "raw", DOWN),
    0x55: CIInfo("request of selected application", LONG, "raw", DOWN),
    0x5A: CIInfo("command to device", SHORT, "records", DOWN),
    0x5B: CIInfo("command to device", LONG, "records", DOWN),
    0x5C: CIInfo("synchronize action", NONE, "raw", DOWN),
    0x5F: CIInfo("specific usage", LONG, "raw"),
    0x60: CIInfo("DLMS/COSEM command", LONG, "raw", DOWN),
    0x61: CIInfo("DLMS/COSEM command", SHORT, "raw", DOWN),
    0x64: CIInfo("OBIS value descriptor command", LONG, "raw", DOWN),
    0x65: CIInfo("OBIS value descriptor command", SHORT, "raw", DOWN),
    0x66: CIInfo("response of selected application", NONE, "raw", UP),
    0x67: CIInfo("response of selected application", SHORT, "raw", UP),
    0x68: CIInfo("response of selected application", LONG, "raw", UP),
    0x69: CIInfo("format frame", NONE, "format", UP),
    0x6A: CIInfo("format frame", SHORT, "format", UP),
    0x6B: CIInfo("format frame", LONG, "format", UP),
    0x6C: CIInfo("time synchronisation (absolute)", LONG, "time", DOWN),
    0x6D: CIInfo("time synchronisation (relative)", LONG, "time", DOWN),
    0x6E: CIInfo("application error", SHORT, "error", UP),
    0x6F: CIInfo("application error", LONG, "error", UP),
    0x70: CIInfo("application error", NONE, "error", UP),
    0x71: CIInfo("alarm", NONE, "alarm", UP),
    0x72: CIInfo("full frame", LONG, "records", UP),
    0x73: CIInfo("compact frame", LONG, "compact", UP),
    0x74: CIInfo("alarm", SHORT, "alarm", UP),
    0x75: CIInfo("alarm", LONG, "alarm", UP),
    0x78: CIInfo("full frame", NONE, "records", UP),
    0x79: CIInfo("compact frame", NONE, "compact", UP),
    0x7A: CIInfo("full frame", SHORT, "records", UP),
    0x7B: CIInfo("compact frame", SHORT, "compact", UP),
    0x7C: CIInfo("DLMS/COSEM response", LONG, "raw", UP),
    0x7D: CIInfo("DLMS/COSEM response", SHORT, "raw", UP),
    0x7E: CIInfo("OBIS value descriptor response", LONG, "raw", UP),
    0x7F: CIInfo("OBIS value descriptor response", SHORT, "raw", UP),
    0x80: CIInfo("transport layer only", LONG, "none", DOWN),
    0x82: CIInfo("network management", LONG, "raw", DOWN),
    0x83: CIInfo("network management", NONE, "raw", DOWN),
    0x84: CIInfo("transport layer, compact frame expected", LONG, "none", DOWN),
    0x85: CIInfo("transport layer, format frame expected", LONG, "none", DOWN),
    0x87: CIInfo("network management", LONG, "raw", UP),
    0x88: CIInfo("network management", SHORT, "raw", UP),
    0x89: CIInfo("network management", NONE, "raw", UP),
    0x8A: CIInfo("transport layer only", SHORT, "none", UP),
    0x8B: CIInfo("transport layer only", LONG, "none", UP),
    0x9E: CIInfo("specific usage", SHORT, "raw"),
    0x9F: CIInfo("specific usage", LONG, "raw"),
    0xC0: CIInfo("image transfer command", LONG, "raw", DOWN),
    0xC1: CIInfo("image transfer response", SHORT, "raw", UP),
    0xC2: CIInfo("image transfer response", LONG, "raw", UP),
    0xC3: CIInfo("security information transfer command", LONG, "raw", DOWN),
    0xC4: CIInfo("security information transfer response", SHORT, "raw", UP),
    0xC5: CIInfo("security information transfer response", LONG, "raw", UP),
}
for _ci, _baud in zip(range(0xB8, 0xC0), (300, 600, 1200, 2400, 4800, 9600, 19200, 38400), strict=True):
    TPL_CIS[_ci] = CIInfo(f"set baud rate {_baud}", NONE, "none", DOWN)

STATUS_FLAGS = ((0x04, "power_low"), (0x08, "permanent_error"), (0x10, "temporary_error"))
APP_STATUS = ("no_error", "application_busy", "application_error", "abnormal_condition")


def status_flags(status: int) -> list[str]:
    """Named flags of the TPL status byte."""
    out = [] if status & 3 == 0 else [APP_STATUS[status & 3]]
    out += [name for bit, name in STATUS_FLAGS if status & bit]
    if status & 0xE0:
        out.append(f"manufacturer_0x{status & 0xE0:02x}")
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigField:
    """The 16-bit configuration field; bit meanings depend on the security mode."""

    value: int

    @property
    def mode(self) -> int:
        return (self.value >> 8) & 0x1F

    @property
    def encrypted_blocks(self) -> int:
        return (self.value >> 4) & 0x0F

    @property
    def has_counter(self) -> bool:  # modes 7 and 10: bit 13 = Z, a 4-byte counter follows
        return tpl_mode(self.mode).has_counter(self.value)

    def flags(self) -> dict:
        """The bits as the mode's own layout names them (mbus.security)."""
        return tpl_mode(self.mode).flags(self.value)

    def describe(self) -> str:
        f = self.flags()
        parts = [f"mode {self.mode} ({mode_name(self.mode)})"]
        if "encrypted_blocks" in f:
            parts.append(f"{f['encrypted_blocks']} encrypted blocks")
        parts += [k for k in ("bidirectional", "accessibility", "synchronous", "counter_present",
                              "repeated_access") if f.get(k)]
        if f.get("hop_count"):
            parts.append("hop")
        return ", ".join(parts)


@dataclass(frozen=True, slots=True, kw_only=True)
class TransportLayer:
    ci: int
    address: Address | None = None  # long header only
    acc: int | None = None
    status: int | None = None
    cf: int | None = None
    cfe: int | None = None  # mode 7: 1 byte; mode 10: 2 bytes
    counter: int | None = None  # TPL message counter (mode 7 with Z, mode 10)
    key_version: int | None = None  # mode 7 with CFE.V

    name = "TPL"

    @property
    def info(self) -> CIInfo:
        return TPL_CIS[self.ci]

    @property
    def header(self) -> str:
        return TPL_CIS[self.ci].header

    @property
    def config(self) -> ConfigField | None:
        return None if self.cf is None else ConfigField(value=self.cf)

    @property
    def security_mode(self) -> int | None:
        return None if self.cf is None else (self.cf >> 8) & 0x1F

    @property
    def size(self) -> int:
        """Bytes of the layer (CI, header, CF extension): len(to_bytes()), without building them."""
        header = TPL_CIS[self.ci].header
        if header == NONE:
            return 1
        if self.acc is None or self.status is None or self.cf is None or (header == LONG and self.address is None):
            return len(self.to_bytes())  # raises, naming what is missing
        mode = TPL_MODES.get((self.cf >> 8) & 0x1F)
        if mode is not None and mode.cfe_size:  # an extension (its counter too, in some modes): as built
            return len(self.to_bytes())
        return 5 + (8 if header == LONG else 0)

    @classmethod
    def parse(cls, data: bytes, offset: int) -> TransportLayer:
        ci = data[offset]
        info = TPL_CIS[ci]
        pos = offset + 1
        if info.header == NONE:
            return cls(ci=ci)
        need = 4 + (8 if info.header == LONG else 0)
        if len(data) < pos + need:
            raise TruncatedError(f"{info.header} transport header needs {need} bytes after CI 0x{ci:02X}, "
                                 f"{len(data) - pos} left", layer="TPL", offset=len(data))
        address = None
        if info.header == LONG:
            address = Address.from_tpl(data[pos:pos + 8])
            pos += 8
        acc, status = data[pos], data[pos + 1]
        cf = data[pos + 2] | data[pos + 3] << 8
        pos += 4
        mode = TPL_MODES.get((cf >> 8) & 0x1F)  # unregistered modes have no CF extension
        if mode is None or not mode.cfe_size:
            return cls(ci=ci, address=address, acc=acc, status=status, cf=cf)
        ext = mode.parse_extension(cf, data, pos)
        return cls(ci=ci, address=address, acc=acc, status=status, cf=cf, cfe=ext.cfe, counter=ext.counter,
                   key_version=ext.key_version)

    @classmethod
    def split(cls, data: bytes) -> tuple[TransportLayer, bytes]:
        """(layer, rest) for data starting at the CI."""
        layer = cls.parse(data, 0)
        return layer, data[layer.size:]

    def to_bytes(self) -> bytes:
        out = bytearray((self.ci,))
        header = TPL_CIS[self.ci].header
        if header == NONE:
            return bytes(out)
        if header == LONG:
            if self.address is None:
                raise ValueError(f"CI 0x{self.ci:02X} has a long header and needs an address")
            out += self.address.tpl_bytes()
        if self.acc is None or self.status is None or self.cf is None:
            raise ValueError(f"CI 0x{self.ci:02X} needs ACC, status and configuration field")
        out += bytes((self.acc, self.status)) + self.cf.to_bytes(2, "little")
        mode = TPL_MODES.get((self.cf >> 8) & 0x1F)
        if mode is not None and mode.cfe_size:
            out += mode.extension_bytes(self.cf, self._extension())
        return bytes(out)

    def fields(self, offset: int) -> list[tuple[int, int, str, str]]:
        info = TPL_CIS[self.ci]
        out = [(offset, 1, "CI", f"0x{self.ci:02X} {info.name}, {info.header} header")]
        pos = offset + 1
        if info.header == NONE:
            return out
        if self.address is not None:
            a = self.address
            out += [(pos, 4, "ID", a.id), (pos + 4, 2, "M", f"{a.manufacturer_code} (0x{a.manufacturer:04X})"),
                    (pos + 6, 1, "version", f"0x{a.version:02X}"),
                    (pos + 7, 1, "device type", f"0x{a.device_type:02X} {a.device_type_name}")]
            pos += 8
        out += [(pos, 1, "ACC", f"access number {self.acc}"),
                (pos + 1, 1, "STS", f"0x{self.status:02X} " + (", ".join(status_flags(self.status)) or "ok")),
                (pos + 2, 2, "CF", f"0x{self.cf:04X} " + ConfigField(value=self.cf).describe())]
        pos += 4
        out += tpl_mode(self.security_mode).extension_fields(self.cf, self._extension(), pos)
        return out

    def _extension(self) -> ConfigExtension:
        return ConfigExtension(cfe=self.cfe, counter=self.counter, key_version=self.key_version)

    def to_json(self) -> dict:
        info = TPL_CIS[self.ci]
        d: dict = {"ci": self.ci, "name": info.name, "header": info.header}
        if self.address is not None:
            a = self.address
            d["address"] = {"manufacturer": a.manufacturer_code, "id": a.id, "version": a.version,
                            "device_type": a.device_type, "device_type_name": a.device_type_name}
        if info.header != NONE:
            d.update(access_number=self.acc, status=self.status, status_flags=status_flags(self.status),
                     configuration=self.cf, security_mode=self.security_mode,
                     configuration_flags=ConfigField(value=self.cf).flags())
        for k in ("cfe", "counter", "key_version"):
            v = getattr(self, k)
            if v is not None:
                d[k] = v
        return d


@dataclass(frozen=True, slots=True, kw_only=True)
class OpaquePayload:
    """A layer kept as raw bytes: manufacturer-specific CIs 0xA0-0xB7, the network layer (0x81),
    and CIs this stack does not know (which also add a problem)."""

    ci: int
    known: bool
    name: str

    @classmethod
    def split(cls, data: bytes) -> tuple[OpaquePayload, bytes]:
        """(layer, rest): the CI only; everything after it is the layer's raw payload."""
        return opaque_for(data[0]), data[1:]

    def to_bytes(self) -> bytes:
        return bytes((self.ci,))

    def fields(self, offset: int) -> list[tuple[int, int, str, str]]:
        return [(offset, 1, "CI", f"0x{self.ci:02X} {self.name}")]

    def to_json(self) -> dict:
        return {"ci": self.ci, "name": self.name, "known": self.known}


def opaque_for(ci: int) -> OpaquePayload:
    if 0xA0 <= ci <= 0xB7:
        return OpaquePayload(ci=ci, known=True, name="manufacturer specific")
    if ci == 0x81:
        return OpaquePayload(ci=ci, known=True, name="network layer")
    return OpaquePayload(ci=ci, known=False, name="unknown CI")
