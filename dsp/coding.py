"""Chip codings: 3-out-of-6 (T uplink), Manchester (S, T downlink), NRZ (C), with soft decoding.

Chips are uint8 arrays of 0/1; soft values are floats, positive for chip 1. Bytes go MSB first.
"""

from __future__ import annotations

import numpy as np

# nibble -> 6-chip code word (phy.md §2.2)
THREE_OF_SIX = (0x16, 0x0D, 0x0E, 0x0B, 0x1C, 0x19, 0x1A, 0x13, 0x2C, 0x25, 0x26, 0x23, 0x34, 0x31, 0x32, 0x29)
_CODE_CHIPS = np.array([[(w >> (5 - i)) & 1 for i in range(6)] for w in THREE_OF_SIX], dtype=np.uint8)
_CODE_SIGNS = (2.0 * _CODE_CHIPS - 1.0).astype(np.float32)  # 16 x 6
_DECODE = np.full(64, -1, dtype=np.int16)
for _n, _w in enumerate(THREE_OF_SIX):
    _DECODE[_w] = _n


def bytes_to_bits(data: bytes) -> np.ndarray:
    return np.unpackbits(np.frombuffer(data, dtype=np.uint8))


def bits_to_bytes(bits: np.ndarray) -> bytes:
    return np.packbits(np.asarray(bits, dtype=np.uint8)[: len(bits) - len(bits) % 8]).tobytes()


def encode_3of6(data: bytes) -> np.ndarray:
    nibbles = np.frombuffer(data, dtype=np.uint8)
    nib = np.empty(2 * len(nibbles), dtype=np.uint8)
    nib[0::2] = nibbles >> 4
    nib[1::2] = nibbles & 0x0F
    return _CODE_CHIPS[nib].reshape(-1)


def decode_3of6_hard(chip_bits: np.ndarray) -> tuple[bytes, int]:
    """(bytes, number of invalid code words). Invalid words decode to nibble 0."""
    n = len(chip_bits) // 12 * 12
    words = np.packbits(np.pad(chip_bits[:n].reshape(-1, 6), ((0, 0), (2, 0))), axis=1).reshape(-1)
    nib = _DECODE[words]
    bad = int((nib < 0).sum())
    nib = np.where(nib < 0, 0, nib).astype(np.uint8)
    return (nib[0::2] << 4 | nib[1::2]).astype(np.uint8).tobytes(), bad


def decode_3of6_soft(soft: np.ndarray) -> tuple[bytes, int]:
    """Maximum-correlation decoding over the 16 valid code words; also counts words whose hard
    decision was not a valid code word (coding violations)."""
    n = len(soft) // 12 * 12
    s = np.asarray(soft[:n], dtype=np.float32).reshape(-1, 6)
    nib = np.argmax(s @ _CODE_SIGNS.T, axis=1).astype(np.uint8)
    hard = (s > 0).astype(np.uint8)
    words = hard @ np.array([32, 16, 8, 4, 2, 1], dtype=np.uint8)
    violations = int((_DECODE[words] < 0).sum())
    return (nib[0::2] << 4 | nib[1::2]).astype(np.uint8).tobytes(), violations


def encode_manchester(data: bytes) -> np.ndarray:
    """Data 1 -> chips 01, data 0 -> chips 10 (phy.md §2.1)."""
    bits = bytes_to_bits(data)
    out = np.empty(2 * len(bits), dtype=np.uint8)
    out[0::2] = 1 - bits
    out[1::2] = bits
    return out


def decode_manchester_soft(soft: np.ndarray) -> tuple[bytes, int]:
    """Bits from chip pairs (second minus first); counts pairs with equal hard chips."""
    n = len(soft) // 16 * 16
    s = np.asarray(soft[:n], dtype=np.float32).reshape(-1, 2)
    bits = (s[:, 1] > s[:, 0]).astype(np.uint8)
    violations = int(((s[:, 0] > 0) == (s[:, 1] > 0)).sum())
    return bits_to_bytes(bits), violations


def encode_nrz(data: bytes) -> np.ndarray:
    return bytes_to_bits(data)


def decode_nrz_soft(soft: np.ndarray) -> tuple[bytes, int]:
    n = len(soft) // 8 * 8
    return bits_to_bytes((np.asarray(soft[:n]) > 0).astype(np.uint8)), 0


CHIPS_PER_BYTE = {"3of6": 12, "manchester": 16, "nrz": 8}
ENCODERS = {"3of6": encode_3of6, "manchester": encode_manchester, "nrz": encode_nrz}
SOFT_DECODERS = {"3of6": decode_3of6_soft, "manchester": decode_manchester_soft, "nrz": decode_nrz_soft}


def alternatives(coding: str, soft: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per decision, the next-best alternative: (byte index, XOR mask, reliability margin).

    NRZ and Manchester: one entry per bit (flip it); 3-of-6: one per nibble (its second-best
    code word). Small margins mark the decisions most likely to be wrong."""
    s = np.asarray(soft, dtype=np.float32)
    if coding == "3of6":
        n = len(s) // 12 * 12
        scores = s[:n].reshape(-1, 6) @ _CODE_SIGNS.T
        order = np.argsort(-scores, axis=1)
        best, second = order[:, 0], order[:, 1]
        margin = scores[np.arange(len(best)), best] - scores[np.arange(len(best)), second]
        idx = np.arange(len(best))
        shift = np.where(idx % 2 == 0, 4, 0)
        return idx // 2, ((best ^ second) << shift).astype(np.uint8), margin
    if coding == "manchester":
        n = len(s) // 16 * 16
        d = s[1:n:2] - s[0:n:2]
    else:
        n = len(s) // 8 * 8
        d = s[:n]
    i = np.arange(len(d))
    return i // 8, (1 << (7 - i % 8)).astype(np.uint8), np.abs(d)
