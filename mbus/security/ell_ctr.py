"""ELL encryption (CI 0x8D / 0x8F, SN.ENC = 1): AES-128-CTR from the payload CRC to the end.

Initial counter block: M(2) A(6) of the link header, CC with H and R cleared, SN(4), FN = 0000,
BC = 00. The decrypted payload CRC (LSB first) must match CRC-16 over the rest.
"""

from __future__ import annotations

from ..crc import crc16
from ..errors import CRCError, WrongKeyError
from . import SecurityContext, SecurityMode
from .aes import ctr_crypt

CC_CLEAR = ~0x12 & 0xFF  # H (hop) and R (repeated access) are set by repeaters


def icb(link_address_bytes: bytes, cc: int, session: int) -> bytes:
    return link_address_bytes + bytes([cc & CC_CLEAR]) + session.to_bytes(4, "little") + b"\x00\x00\x00"


def check_payload_crc(region: bytes, *, decrypted: bool) -> bytes:
    """Verify region = CRC(2, LE) + payload; return the payload."""
    if len(region) < 2:
        raise CRCError("ELL payload CRC missing", layer="ELL")
    got = region[0] | region[1] << 8
    want = crc16(region[2:])
    if got != want:
        if decrypted:
            raise WrongKeyError(f"ELL payload CRC {got:04x} != {want:04x} after decryption", layer="ELL")
        raise CRCError(f"ELL payload CRC {got:04x} != computed {want:04x}", layer="ELL")
    return region[2:]


def decrypt(key: bytes, link_address_bytes: bytes, cc: int, session: int, region: bytes) -> bytes:
    return check_payload_crc(ctr_crypt(key, icb(link_address_bytes, cc, session), region), decrypted=True)


def with_crc(payload: bytes) -> bytes:
    return crc16(payload).to_bytes(2, "little") + payload


def encrypt(key: bytes, link_address_bytes: bytes, cc: int, session: int, payload: bytes) -> bytes:
    return ctr_crypt(key, icb(link_address_bytes, cc, session), with_crc(payload))


class EllCtr(SecurityMode):
    """The ELL's AES-CTR under the same API as the TPL modes; ``ctx.address`` is the link
    address, ``ctx.cc`` and ``ctx.session`` come from the ELL. Registered under ENC = 1."""

    number = 1
    name = "AES-128-CTR"
    layer = "ELL"

    def decrypt(self, key: bytes, ctx: SecurityContext, data: bytes) -> bytes:
        return decrypt(key, ctx.address.dll_bytes(), ctx.cc, ctx.session, data)

    def encrypt(self, key: bytes, ctx: SecurityContext, plain: bytes) -> bytes:
        return encrypt(key, ctx.address.dll_bytes(), ctx.cc, ctx.session, plain)


SECURITY_MODE = EllCtr()
