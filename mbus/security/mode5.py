"""Security mode 5: AES-128-CBC with IV = M(2) A(6) + 8 x ACC (OMS security profile A).

M and A come from the long TPL header when there is one, otherwise from the link header; the
bytes are in link-layer order (M before ID) in both cases.
"""

from __future__ import annotations

from . import SecurityMode
from .common import decrypt_cbc_part, encrypt_cbc_part

MODE = 5


def iv(ctx) -> bytes:
    return ctx.address.dll_bytes() + bytes([ctx.acc]) * 8


def decrypt(key: bytes, ctx, data: bytes) -> bytes:
    return decrypt_cbc_part(key, iv(ctx), ctx.encrypted_blocks, data, f"mode 5 for {ctx.address.id}")


def encrypt(key: bytes, ctx, plain: bytes) -> bytes:
    return encrypt_cbc_part(key, iv(ctx), ctx.encrypted_blocks, plain, "mode 5")


class Mode5(SecurityMode):
    """CF layout of modes 0-5 (the base class's), AES-CBC with the address/ACC IV, no MAC."""

    number = MODE
    name = "AES-128-CBC, IV from address and ACC"

    def decrypt(self, key: bytes, ctx, data: bytes) -> bytes:
        return decrypt(key, ctx, data)

    def encrypt(self, key: bytes, ctx, plain: bytes) -> bytes:
        return encrypt(key, ctx, plain)


SECURITY_MODE = Mode5()
