"""Chip codings: 3-out-of-6 (T uplink), Manchester (S, T downlink), NRZ (C), with soft decoding.

Chips are uint8 arrays of 0/1; soft values are floats, positive for chip 1. Bytes go MSB first.
Each line code is one `Coding` (encode, soft decode, alternatives for repair, chips per byte,
information bits per chip) in a registry keyed by name: a new line code is one `Coding` plus
`register_coding(...)`; nothing else in the PHY branches on the coding's name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType

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


def _bit_alternatives(d: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One alternative per bit (flip it), from per-bit soft values ``d`` (positive = 1)."""
    i = np.arange(len(d))
    return i // 8, (1 << (7 - i % 8)).astype(np.uint8), np.abs(d)


def alternatives_3of6(soft: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One alternative per nibble: its second-best code word."""
    s = np.asarray(soft, dtype=np.float32)
    n = len(s) // 12 * 12
    scores = s[:n].reshape(-1, 6) @ _CODE_SIGNS.T
    order = np.argsort(-scores, axis=1)
    best, second = order[:, 0], order[:, 1]
    margin = scores[np.arange(len(best)), best] - scores[np.arange(len(best)), second]
    idx = np.arange(len(best))
    shift = np.where(idx % 2 == 0, 4, 0)
    return idx // 2, ((best ^ second) << shift).astype(np.uint8), margin


def alternatives_manchester(soft: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    s = np.asarray(soft, dtype=np.float32)
    n = len(s) // 16 * 16
    return _bit_alternatives(s[1:n:2] - s[0:n:2])


def alternatives_nrz(soft: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    s = np.asarray(soft, dtype=np.float32)
    return _bit_alternatives(s[: len(s) // 8 * 8])


Encoder = Callable[[bytes], np.ndarray]
SoftDecoder = Callable[[np.ndarray], tuple[bytes, int]]
Alternatives = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]


@dataclass(frozen=True, slots=True, kw_only=True)
class Coding:
    """One line code: bytes <-> chips.

    ``soft_decode(soft)`` returns (bytes, coding violations); ``alternatives(soft)`` returns, per
    decision, the next-best alternative as (byte index, XOR mask, reliability margin), which the
    demodulator uses to try other L-fields and to repair blocks. ``max_head_violations`` is how
    many violations the first 4 decoded bytes may carry before the sync match is taken for noise;
    ``pad_to_byte`` is set when a whole frame's chips need not fill whole bytes on air (3-of-6: an
    odd nibble count), so the transmitter appends alternating chips."""

    name: str
    encode: Encoder
    soft_decode: SoftDecoder
    alternatives: Alternatives
    chips_per_byte: int
    info_bits_per_chip: float
    max_head_violations: int = 0
    pad_to_byte: bool = False
    source: str = ""


THREE_OF_SIX_CODING = Coding(name="3of6", encode=encode_3of6, soft_decode=decode_3of6_soft,
                             alternatives=alternatives_3of6, chips_per_byte=12, info_bits_per_chip=2 / 3,
                             max_head_violations=1, pad_to_byte=True, source="phy.md §2.2")
MANCHESTER = Coding(name="manchester", encode=encode_manchester, soft_decode=decode_manchester_soft,
                    alternatives=alternatives_manchester, chips_per_byte=16, info_bits_per_chip=0.5,
                    max_head_violations=6, source="phy.md §2.1")
NRZ = Coding(name="nrz", encode=encode_nrz, soft_decode=decode_nrz_soft, alternatives=alternatives_nrz,
             chips_per_byte=8, info_bits_per_chip=1.0, max_head_violations=1, source="phy.md §1 (chip = bit)")

_CODINGS: dict[str, Coding] = {}
CODINGS = MappingProxyType(_CODINGS)  # name -> Coding, read-only view of the registry


def register_coding(c: Coding) -> Coding:
    """Add a line code to the registry (its name must be new, or the very same object)."""
    old = _CODINGS.get(c.name)
    if old is not None and old is not c:
        raise ValueError(f"coding {c.name!r} is already registered")
    if c.chips_per_byte <= 0 or not 0 < c.info_bits_per_chip <= 8:
        raise ValueError(f"coding {c.name!r}: chips per byte and information bits per chip must be positive")
    _CODINGS[c.name] = c
    return c


def get_coding(name: str) -> Coding:
    try:
        return _CODINGS[name]
    except KeyError:
        raise ValueError(f"unknown coding {name!r}; known: {', '.join(_CODINGS)}") from None


for _c in (THREE_OF_SIX_CODING, MANCHESTER, NRZ):
    register_coding(_c)
