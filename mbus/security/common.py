"""Rules shared by the CBC modes: encrypted length, 2F2F verification, padding."""

from __future__ import annotations

from ..errors import TruncatedError, WrongKeyError

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
