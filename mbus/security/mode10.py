"""Security mode 10: AES-128-CCM (OMS security profile D).

Configuration field: CC(15-14) Z(13) mode(12-8) number of encrypted bytes (7-0, 0xFF = all), then
the 2-byte CFE (LSB first), an optional key-version byte, and the 4-byte message counter when Z
is set. CFE bits: key id 3-0, KDF selection 5-4 (01 = KDF-A), key version follows 6, tag size
9-8 (tag = 4 + 4 x code bytes: 4, 8, 12, 16).

    Kenc   KDF-A (mode 7's): CMAC(MK, 00 || counter(4, LE) || ID(4) || 07 x 7)
    nonce  M(2) ID(4) version type (the long TPL header's address, else the link's) || 00 ||
           counter (4, big-endian)
    AAD    the TPL header from its CI to the CFE (and key version), without the counter
    tag    after the encrypted APL; verified before anything is returned (MACMismatchError)

This is one implementer's reading (wmbusmeters PR #2085 / issue #1667, facts only), checked here on
the two published telegrams of a Kamstrup meter: only this AAD (with the counter left out) and
this nonce make the tag verify. Partial encryption (N < all) is not supported: where the clear
tail sits in the CCM input is not public. CCM itself is ``cryptography``'s AESCCM.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESCCM

from ..errors import FieldError, MACMismatchError, TruncatedError, UnsupportedModeError
from . import ConfigExtension, SecurityContext, SecurityMode
from .common import need
from .mode7 import DC_KENC, DC_LENC, kdf_a

MODE = 10
ALL_BYTES = 0xFF
CFE_KEY_VERSION = 0x40
KDF_A = 1


def tag_size(cfe: int) -> int:
    return 4 + 4 * ((cfe >> 8) & 3)


def nonce(ctx: SecurityContext) -> bytes:
    a = ctx.address
    return a.dll_bytes() + b"\x00" + _counter(ctx).to_bytes(4, "big")


def _counter(ctx: SecurityContext) -> int:
    if ctx.counter is None:
        raise FieldError("mode 10 needs the TPL message counter (CF bit 13) and the header has none",
                         layer="TPL")
    return ctx.counter


def aad(ctx: SecurityContext) -> bytes:
    """The TPL header without the trailing message counter."""
    return ctx.header[:-4] if ctx.counter is not None else ctx.header


def enc_key(master: bytes, ctx: SecurityContext) -> bytes:
    kdf = (ctx.cfe or 0) >> 4 & 3
    if kdf == 0:
        return master
    if kdf != KDF_A:
        raise UnsupportedModeError(f"mode 10 key derivation {kdf} is not supported (0: none, 1: KDF-A)",
                                   layer="TPL")
    return kdf_a(master, DC_KENC if ctx.from_meter else DC_LENC, _counter(ctx), ctx.address.id_bytes)


def _check_all(ctx: SecurityContext) -> None:
    if ctx.encrypted_bytes not in (ALL_BYTES, None):
        raise UnsupportedModeError(f"mode 10 partial encryption ({ctx.encrypted_bytes} bytes) is not "
                                   "supported: its CCM layout is not public", layer="TPL")


class Mode10(SecurityMode):
    number = MODE
    name = "AES-128-CCM"
    cfe_size = 2
    uses_blocks = False
    filler_check = False

    def flags(self, cf: int) -> dict:
        return {"content": (cf >> 14) & 3, "counter_present": bool(cf & 0x2000), "encrypted_bytes": cf & 0xFF}

    def has_counter(self, cf: int) -> bool:
        return bool(cf & 0x2000)

    def parse_extension(self, cf: int, data: bytes, pos: int) -> ConfigExtension:
        need(data, pos, 2, "mode 10 CF extension")
        cfe = data[pos] | data[pos + 1] << 8
        pos += 2
        key_version = counter = None
        if cfe & CFE_KEY_VERSION:
            need(data, pos, 1, "mode 10 key version")
            key_version = data[pos]
            pos += 1
        if cf & 0x2000:
            need(data, pos, 4, "mode 10 message counter")
            counter = int.from_bytes(data[pos:pos + 4], "little")
        return ConfigExtension(cfe=cfe, counter=counter, key_version=key_version)

    def extension_bytes(self, cf: int, ext: ConfigExtension) -> bytes:
        cfe = ext.cfe or 0
        out = cfe.to_bytes(2, "little")
        if cfe & CFE_KEY_VERSION:
            out += bytes((ext.key_version or 0,))
        if cf & 0x2000:
            out += (ext.counter or 0).to_bytes(4, "little")
        return out

    def cfe_meaning(self, cfe: int) -> str:
        return (f"0x{cfe:04X} key id {cfe & 15}, KDF {(cfe >> 4) & 3}, tag {tag_size(cfe)} bytes"
                + (", key version follows" if cfe & CFE_KEY_VERSION else ""))

    def extension_fields(self, cf, ext, offset):
        out, pos = [], offset
        if ext.cfe is not None:
            out.append((pos, 2, "CFE", self.cfe_meaning(ext.cfe)))
            pos += 2
        if ext.key_version is not None:
            out.append((pos, 1, "key version", str(ext.key_version)))
            pos += 1
        if ext.counter is not None:
            out.append((pos, 4, "counter", f"message counter {ext.counter}"))
        return out

    def build_config(self, *, blocks, b_bit, a_bit, sync, content, options):
        """Profile D: counter in the TPL (Z), KDF-A, an 8-byte tag unless ``tag`` says otherwise;
        everything encrypted (N = 0xFF). Options: counter, key_id, tag (4, 8, 12 or 16)."""
        counter = options.int("counter", 1, 0xFFFFFFFF)
        key_id = options.int("key_id", 0, 15)
        tag = options.int("tag", 8, 16)
        if tag not in (4, 8, 12, 16):
            raise FieldError(f"tag {tag}: a mode 10 tag has 4, 8, 12 or 16 bytes")
        cf = content << 14 | 0x2000 | MODE << 8 | ALL_BYTES
        cfe = ((tag - 4) // 4) << 8 | KDF_A << 4 | key_id
        return cf, ConfigExtension(cfe=cfe, counter=counter), None

    def verified_text(self) -> str:
        return "mode 10, AES-CCM tag verified"

    def prepare_plain(self, data: bytes, blocks: int | None) -> tuple[bytes, int]:
        """The APL as mode 10 encrypts it: as is (no 2F2F, no padding; CCM is a stream mode)."""
        return data, 0

    def decrypt(self, key: bytes, ctx: SecurityContext, data: bytes) -> bytes:
        _check_all(ctx)
        size = tag_size(ctx.cfe or 0)
        if len(data) < size:
            raise TruncatedError(f"mode 10 tag of {size} bytes announced, {len(data)} bytes left", layer="TPL")
        try:
            return AESCCM(enc_key(key, ctx), tag_length=size).decrypt(nonce(ctx), data, aad(ctx))
        except InvalidTag:
            raise MACMismatchError(f"mode 10 (AES-CCM) tag {data[-size:].hex()} does not verify for "
                                   f"{ctx.address.id}", layer="TPL") from None

    def encrypt(self, key: bytes, ctx: SecurityContext, plain: bytes) -> bytes:
        _check_all(ctx)
        size = tag_size(ctx.cfe or 0)
        return AESCCM(enc_key(key, ctx), tag_length=size).encrypt(nonce(ctx), plain, aad(ctx))


SECURITY_MODE = Mode10()
