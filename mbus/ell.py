"""Extended link layer, CI 0x8C-0x8F (EN 13757-4 clause 13).

Layouts after the CI byte (all LE)::

    0x8C  CC ACC
    0x8D  CC ACC SN(4) | PayloadCRC(2) ...        <- from PayloadCRC on: AES-128-CTR when SN.ENC = 1
    0x8E  CC ACC M2(2) A2(6)
    0x8F  CC ACC M2(2) A2(6) SN(4) | PayloadCRC(2) ...

The payload CRC (LSB first) covers the plaintext from the next CI to the end of the frame; it is
parsed and checked by the telegram decoder because it may be encrypted.
"""

from __future__ import annotations

from dataclasses import dataclass

from .dll import Address
from .errors import FieldError, TruncatedError

ELL_CIS = {0x8C: (False, False), 0x8D: (False, True), 0x8E: (True, False), 0x8F: (True, True)}
# CI -> (has receiver address, has session number + payload CRC)

CC_BITS = ((0x80, "B bidirectional"), (0x40, "D fast response"), (0x20, "S synchronous"),
           (0x10, "H hop"), (0x08, "P priority"), (0x04, "A accessibility"),
           (0x02, "R repeated access"), (0x01, "X extended delay"))

ENC_NONE = 0
ENC_AES_CTR = 1


def cc_flags(cc: int) -> list[str]:
    return [name for bit, name in CC_BITS if cc & bit]


@dataclass(frozen=True, slots=True, kw_only=True)
class ExtendedLinkLayer:
    ci: int
    cc: int
    acc: int
    receiver: Address | None = None
    session: int | None = None  # SN as a 32-bit value

    name = "ELL"

    @property
    def header_size(self) -> int:
        """Bytes from the CI up to (not including) the payload CRC."""
        has_rx, has_sn = ELL_CIS[self.ci]
        return 3 + (8 if has_rx else 0) + (4 if has_sn else 0)

    @property
    def has_payload_crc(self) -> bool:
        return ELL_CIS[self.ci][1]

    @property
    def encryption(self) -> int:
        return 0 if self.session is None else self.session >> 29

    @property
    def session_minutes(self) -> int | None:
        return None if self.session is None else (self.session >> 4) & 0x1FFFFFF

    @property
    def session_counter(self) -> int | None:
        return None if self.session is None else self.session & 0xF

    @classmethod
    def parse(cls, data: bytes, offset: int) -> ExtendedLinkLayer:
        ci = data[offset]
        if ci not in ELL_CIS:
            raise FieldError(f"CI 0x{ci:02X} is not an ELL", layer="ELL", offset=offset)
        has_rx, has_sn = ELL_CIS[ci]
        size = 3 + (8 if has_rx else 0) + (4 if has_sn else 0) + (2 if has_sn else 0)
        if len(data) < offset + size:
            raise TruncatedError(f"ELL 0x{ci:02X} needs {size} bytes, {len(data) - offset} left",
                                 layer="ELL", offset=len(data))
        pos = offset + 3
        receiver = None
        if has_rx:
            receiver = Address.from_dll(data[pos:pos + 8])
            pos += 8
        session = None
        if has_sn:
            session = int.from_bytes(data[pos:pos + 4], "little")
            if session >> 29 > ENC_AES_CTR:
                raise FieldError(f"ELL session number encryption {session >> 29} is reserved",
                                 layer="ELL", offset=pos)
        return cls(ci=ci, cc=data[offset + 1], acc=data[offset + 2], receiver=receiver, session=session)

    @classmethod
    def split(cls, data: bytes) -> tuple[ExtendedLinkLayer, bytes]:
        """(layer, rest) for data starting at the CI; the rest starts at the payload CRC, if any."""
        layer = cls.parse(data, 0)
        return layer, data[layer.header_size:]

    def to_bytes(self) -> bytes:
        """CI up to the session number; the payload CRC is added by the encoder."""
        has_rx, has_sn = ELL_CIS[self.ci]
        out = bytearray((self.ci, self.cc, self.acc))
        if has_rx:
            if self.receiver is None:
                raise ValueError(f"ELL 0x{self.ci:02X} needs a receiver address")
            out += self.receiver.dll_bytes()
        if has_sn:
            if self.session is None:
                raise ValueError(f"ELL 0x{self.ci:02X} needs a session number")
            out += self.session.to_bytes(4, "little")
        return bytes(out)

    def fields(self, offset: int) -> list[tuple[int, int, str, str]]:
        out = [(offset, 1, "CI", f"0x{self.ci:02X} extended link layer"),
               (offset + 1, 1, "CC", f"0x{self.cc:02X} " + (", ".join(cc_flags(self.cc)) or "no flags")),
               (offset + 2, 1, "ACC", f"access number {self.acc}")]
        pos = offset + 3
        if self.receiver is not None:
            out.append((pos, 8, "receiver", self.receiver.describe()))
            pos += 8
        if self.session is not None:
            enc = {0: "not encrypted", 1: "AES-128-CTR"}.get(self.encryption, "reserved")
            out.append((pos, 4, "SN", f"{enc}, minute {self.session_minutes}, session {self.session_counter}"))
        return out

    def to_json(self) -> dict:
        d = {"ci": self.ci, "cc": self.cc, "cc_flags": cc_flags(self.cc), "access_number": self.acc}
        if self.receiver is not None:
            d["receiver"] = {"manufacturer": self.receiver.manufacturer_code, "id": self.receiver.id,
                             "version": self.receiver.version, "device_type": self.receiver.device_type}
        if self.session is not None:
            d.update(session_number=self.session, encryption=self.encryption)
        return d
