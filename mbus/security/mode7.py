"""Security mode 7: AES-128-CBC with IV = 0 and keys from KDF-A (OMS security profile B).

KDF-A: K = AES-CMAC(MK, DC || counter(4, LE) || ID(4) || 07 x 7) with DC 0x00 Kenc, 0x01 Kmac
(meter -> partner) and 0x10 Lenc, 0x11 Lmac (partner -> meter). The counter is the AFL MCR or
the TPL message counter; ID is the meter identification (TPL long header or link header).
The AFL MAC = CMAC(Kmac, MCL || KI || MCR || ML || TPDU), truncated to the MCL length.

Configuration field (mode 7): CC(15-14) Z(13) mode(12-8) N(7-4) P(3) content index(2-0), then
CFE (KDF in bits 5-4, key id in 3-0, V = bit 6: a key version byte follows), the 4-byte message
counter when Z is set, and the key version when V is set.
"""

from __future__ import annotations

import hmac
from dataclasses import replace

from ..afl import FCL_MACP, FCL_MCLP, FCL_MCRP, AuthFragLayer
from ..errors import FieldError, MACMismatchError, UnsupportedModeError
from . import ConfigExtension, SecurityMode, Verification
from .aes import ZERO_IV, cmac
from .common import decrypt_cbc_part, encrypt_cbc_part, need

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


class Mode7(SecurityMode):
    number = MODE
    name = "AES-128-CBC, IV = 0, KDF keys"
    cfe_size = 1

    def flags(self, cf: int) -> dict:
        return {"content": (cf >> 14) & 3, "counter_present": bool(cf & 0x2000),
                "encrypted_blocks": (cf >> 4) & 0x0F, "padding": bool(cf & 8), "content_index": cf & 7}

    def has_counter(self, cf: int) -> bool:
        return bool(cf & 0x2000)

    def parse_extension(self, cf: int, data: bytes, pos: int) -> ConfigExtension:
        need(data, pos, 1, "mode 7 CF extension")
        cfe = data[pos]
        pos += 1
        counter = key_version = None
        if cf & 0x2000:
            need(data, pos, 4, "mode 7 message counter")
            counter = int.from_bytes(data[pos:pos + 4], "little")
            pos += 4
        if cfe & 0x40:
            need(data, pos, 1, "mode 7 key version")
            key_version = data[pos]
            pos += 1
        return ConfigExtension(cfe=cfe, counter=counter, key_version=key_version)

    def extension_bytes(self, cf: int, ext: ConfigExtension) -> bytes:
        cfe = ext.cfe or 0
        out = bytearray((cfe,))
        if cf & 0x2000:
            out += (ext.counter or 0).to_bytes(4, "little")
        if cfe & 0x40:
            out.append(ext.key_version or 0)
        return bytes(out)

    def cfe_meaning(self, cfe: int) -> str:
        return (f"0x{cfe:02X} key id {cfe & 15}, KDF {(cfe >> 4) & 3}"
                + (", key version follows" if cfe & 0x40 else ""))

    def build_config(self, *, blocks, b_bit, a_bit, sync, content, options):
        """Profile B: the MAC travels in an AFL (default) or, with ``afl.mac = false``, the counter
        travels in the TPL (Z bit). Options: counter, key_id, afl.mac / afl.mcr / afl.mcl."""
        counter = options.int("counter", 1, 0xFFFFFFFF)
        key_id = options.int("key_id", 0, 15)
        cf = content << 14 | MODE << 8 | blocks << 4
        cfe = 0x10 | key_id  # KDF-A
        afl_spec = options.table("afl", {"mac", "mcr", "mcl"})
        if afl_spec.get("mac", True):
            mcl = options.int("afl.mcl", 0x25, 255, afl_spec.get("mcl", 0x25))  # AT 5: 8-byte CMAC, MCR present
            mcr = options.int("afl.mcr", counter, 0xFFFFFFFF, afl_spec.get("mcr", counter))
            afl = AuthFragLayer(fcl=FCL_MCLP | FCL_MCRP | FCL_MACP, mcl=mcl, mcr=mcr)
            return cf, ConfigExtension(cfe=cfe), afl
        return cf | 0x2000, ConfigExtension(cfe=cfe, counter=counter), None

    def decrypt(self, key: bytes, ctx, data: bytes) -> bytes:
        return decrypt(key, ctx, data)

    def encrypt(self, key: bytes, ctx, plain: bytes) -> bytes:
        return encrypt(key, ctx, plain)

    def verify(self, key: bytes, ctx, afl, tpdu: bytes) -> Verification:
        if afl is None or afl.mac is None:
            return Verification(note="mode 7 telegram without AFL MAC: not authenticated")
        at = afl.auth_type
        if at is None or at > 7:
            raise UnsupportedModeError(f"AFL authentication type {at} is not supported", layer="AFL")
        verify_mac(key, ctx, afl, tpdu)
        return Verification(verified="AFL MAC verified")

    def authenticate(self, key: bytes, ctx, afl, tpdu: bytes):
        return replace(afl, mac=compute_mac(key, ctx, afl, tpdu, AuthFragLayer.mac_length(afl.mcl)))


SECURITY_MODE = Mode7()
