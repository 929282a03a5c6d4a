"""Rules shared by the CBC modes: encrypted length, 2F2F verification, padding."""

from __future__ import annotations

from ..errors import TruncatedError, WrongKeyError
from .aes import cbc_decrypt, cbc_encrypt

FILLER = 0x2F


def split_encrypted(data: bytes, blocks: int, layer: str) -> tuple[bytes, bytes]:
    """(encrypted part, plaintext tail). N = 0 means every whole block that remains."""
    if blocks == 0:
        n = len(data) - len(data) % 16
    else:
        n = 16 * blocks
        if len(data) < n:
            raise TruncatedError(f"{blocks} encrypted blocks announced ({n} bytes), {len(data)} present",
                                 layer=layer)
    return data[:n], data[n:]


def check_filler(plain: bytes, what: str) -> None:
    if plain[:2] != b"\x2f\x2f":
        raise WrongKeyError(f"{what}: decrypted data starts {plain[:2].hex()}, not 2f2f", layer="TPL")


def pad_to_blocks(plain: bytes, blocks: int) -> bytes:
    """Pad the part to be encrypted with 2F fillers to N blocks (N = 0: to a whole block)."""
    size = 16 * blocks if blocks else -(-len(plain) // 16) * 16
    if len(plain) > size:
        return plain
    return plain + bytes([FILLER]) * (size - len(plain))


def decrypt_cbc_part(key: bytes, iv: bytes, blocks: int, data: bytes, what: str) -> bytes:
    """CBC-decrypt the N announced blocks, verify 2F2F, keep the plaintext tail (modes 5 and 7)."""
    enc, tail = split_encrypted(data, blocks, f"TPL {what}")
    if not enc:
        return tail
    plain = cbc_decrypt(key, iv, enc)
    check_filler(plain, what)
    return plain + tail


def encrypt_cbc_part(key: bytes, iv: bytes, blocks: int, plain: bytes, what: str) -> bytes:
    part, tail = split_encrypted(plain, blocks, f"TPL {what}")
    if not part:
        return tail
    return cbc_encrypt(key, iv, part) + tail


def need(data: bytes, pos: int, n: int, what: str) -> None:
    """Raise TruncatedError unless ``n`` bytes of ``what`` are there at ``pos`` (TPL header fields)."""
    if len(data) < pos + n:
        raise TruncatedError(f"{what} needs {n} bytes, {len(data) - pos} left", layer="TPL", offset=len(data))
