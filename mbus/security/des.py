"""Security modes 2 and 3: DES-CBC (EN 13757-7, deprecated; old meters still send them).

A DES key is 8 bytes. ``cryptography`` has no single-DES cipher; TripleDES with the key repeated
three times (K|K|K) is single DES by construction (EDE with equal keys), so that is what runs here.
Newer ``cryptography`` releases keep TripleDES in ``cryptography.hazmat.decrepit``; both places
are tried.

    mode 2  DES-CBC, IV = 0
    mode 3  DES-CBC, IV = ID(4) || M(2) || date (2, EN 13757-3 type G) — the date is the day the
            meter encrypted, which the telegram does not carry: decoding needs it from the caller
            (``SecurityContext.date``), otherwise mode 3 is reported as unsupported.

Encrypted length: N (CF bits 7-4) blocks of 16 bytes like modes 0-5, N = 0: every whole 8-byte
block that remains; the plaintext starts with 2F 2F like the AES-CBC modes. Facts: wmbusmeters
issue #1973 / ``src/crypto/des.h`` (IV layout of both modes); checked on the actislink test telegram
of wmbusmeters (key 0102030405060708 gives 2F2F 04 13 E8030000 = 1.000 m3).
"""

from __future__ import annotations

import datetime as _dt

from cryptography.hazmat.primitives.ciphers import Cipher, modes

from ..errors import TruncatedError, UnsupportedModeError, WrongKeyError
from . import SecurityContext, SecurityMode

try:  # cryptography >= 43
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES as _TripleDES
except ImportError:  # pragma: no cover - older cryptography
    from cryptography.hazmat.primitives.ciphers.algorithms import TripleDES as _TripleDES

DES_KEY_BYTES = 8
DES_BLOCK = 8


def _cipher(key: bytes, iv: bytes) -> Cipher:
    if len(key) != DES_KEY_BYTES:
        raise UnsupportedModeError(f"DES needs an 8-byte key, the key store holds a {len(key)}-byte key "
                                   "for this meter", layer="TPL")
    return Cipher(_TripleDES(key * 3), modes.CBC(iv))


def date_g(day: _dt.date) -> bytes:
    """EN 13757-3 type G date, 2 bytes as on air: day(5) month(4) year(7, split over both bytes)."""
    y = day.year % 100
    value = day.day | (y & 0x07) << 5 | day.month << 8 | (y >> 3) << 12
    return value.to_bytes(2, "little")


def _split(data: bytes, blocks: int) -> tuple[bytes, bytes]:
    if blocks == 0:
        n = len(data) - len(data) % DES_BLOCK
    else:
        n = 16 * blocks
        if len(data) < n:
            raise TruncatedError(f"{blocks} encrypted blocks announced ({n} bytes), {len(data)} present",
                                 layer="TPL")
    return data[:n], data[n:]


class _DesMode(SecurityMode):
    key_size = DES_KEY_BYTES

    def iv(self, ctx: SecurityContext) -> bytes:
        raise NotImplementedError

    def decrypt(self, key: bytes, ctx: SecurityContext, data: bytes) -> bytes:
        enc, tail = _split(data, ctx.encrypted_blocks)
        if not enc:
            return tail
        d = _cipher(key, self.iv(ctx)).decryptor()
        plain = d.update(enc) + d.finalize()
        if plain[:2] != b"\x2f\x2f":
            raise WrongKeyError(f"mode {self.number} for {ctx.address.id}: decrypted data starts "
                                f"{plain[:2].hex()}, not 2f2f", layer="TPL")
        return plain + tail

    def encrypt(self, key: bytes, ctx: SecurityContext, plain: bytes) -> bytes:
        enc, tail = _split(plain, ctx.encrypted_blocks)
        if not enc:
            return tail
        e = _cipher(key, self.iv(ctx)).encryptor()
        return e.update(enc) + e.finalize() + tail


class Mode2(_DesMode):
    number = 2
    name = "DES-CBC, IV = 0"

    def iv(self, ctx: SecurityContext) -> bytes:
        return bytes(DES_BLOCK)


class Mode3(_DesMode):
    number = 3
    name = "DES-CBC, IV from ID, manufacturer and date"

    def iv(self, ctx: SecurityContext) -> bytes:
        if ctx.date is None:
            raise UnsupportedModeError("security mode 3 (DES-CBC with a date IV) needs the day the meter "
                                       "encrypted, which the telegram does not carry", layer="TPL")
        a = ctx.address
        return a.id_bytes + a.manufacturer.to_bytes(2, "little") + date_g(ctx.date)


MODE_2 = Mode2()
MODE_3 = Mode3()
