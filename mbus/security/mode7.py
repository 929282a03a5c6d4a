"""Security mode 7: AES-128-CBC with IV = 0 and keys from KDF-A (OMS security profile B).

KDF-A: K = AES-CMAC(MK, DC || counter(4, LE) || ID(4) || 07 x 7) with DC 0x00 Kenc, 0x01 Kmac
(meter -> partner) and 0x10 Lenc, 0x11 Lmac (partner -> meter). The counter is the AFL MCR or
the TPL message counter; ID is the meter identification (TPL long header or link header).
The AFL MAC = CMAC(Kmac, MCL || KI || MCR || ML || TPDU), truncated to the MCL length.
"""

from __future__ import annotations

import hmac

from ..errors import FieldError, MACMismatchError
from .aes import ZERO_IV, cmac
from .common import decrypt_cbc_part, encrypt_cbc_part

MODE = 7
DC_KENC, DC_KMAC, DC_LENC, DC_LMAC = 0x00, 0x01, 0x10, 0x11


def kdf_a(master: bytes, dc: int, counter: int, id_bytes: bytes) -> bytes:
    return cmac(master, bytes([dc]) + counter.to_bytes(4, "little") + id_bytes + b"\x07" * 7)


def _counter(ctx) -> int:
    if ctx.counter is None:
        raise FieldError("mode 7 needs a message counter (AFL MCR or TPL counter) and has none",
                         layer="TPL")
    return ctx.counter


def enc_key(master: bytes, ctx) -> bytes:
    return kdf_a(master, DC_KENC if ctx.from_meter else DC_LENC, _counter(ctx), ctx.address.id_bytes)


def mac_key(master: bytes, ctx) -> bytes:
    return kdf_a(master, DC_KMAC if ctx.from_meter else DC_LMAC, _counter(ctx), ctx.address.id_bytes)


def decrypt(key: bytes, ctx, data: bytes) -> bytes:
    return decrypt_cbc_part(enc_key(key, ctx), ZERO_IV, ctx.encrypted_blocks, data, f"mode 7 for {ctx.address.id}")


def encrypt(key: bytes, ctx, plain: bytes) -> bytes:
    return encrypt_cbc_part(enc_key(key, ctx), ZERO_IV, ctx.encrypted_blocks, plain, "mode 7")


def compute_mac(key: bytes, ctx, afl, tpdu: bytes, length: int) -> bytes:
    return cmac(mac_key(key, ctx), afl.mac_input_prefix() + tpdu)[:length]


def verify_mac(key: bytes, ctx, afl, tpdu: bytes) -> None:
    """Raise MACMismatchError unless the AFL MAC matches (cryptography-style verify)."""
    expected = compute_mac(key, ctx, afl, tpdu, len(afl.mac))
    if not hmac.compare_digest(expected, afl.mac):
        raise MACMismatchError(f"AFL MAC {afl.mac.hex()} != computed {expected.hex()}", layer="AFL")
