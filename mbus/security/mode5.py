"""Security mode 5: AES-128-CBC with IV = M(2) A(6) + 8 x ACC (OMS security profile A).

M and A come from the long TPL header when there is one, otherwise from the link header; the
bytes are in link-layer order (M before ID) in both cases.
"""

from __future__ import annotations

from .aes import cbc_decrypt, cbc_encrypt
from .common import check_filler, split_encrypted

MODE = 5


def iv(ctx) -> bytes:
    return ctx.address.dll_bytes() + bytes([ctx.acc]) * 8


def decrypt(key: bytes, ctx, data: bytes) -> bytes:
    enc, tail = split_encrypted(data, ctx.encrypted_blocks, "TPL mode 5")
    if not enc:
        return tail
    plain = cbc_decrypt(key, iv(ctx), enc)
    check_filler(plain, f"mode 5 for {ctx.address.id}")
    return plain + tail


def encrypt(key: bytes, ctx, plain: bytes) -> bytes:
    part, tail = split_encrypted(plain, ctx.encrypted_blocks, "TPL mode 5")
    if not part:
        return tail
    return cbc_encrypt(key, iv(ctx), part) + tail
