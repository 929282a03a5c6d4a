"""Diehl (DME, HYD, SAP, EWT, SPL) scrambling: the PRIOS / IZAR payload and "real data" frames.

Facts (from wmbusmeters' manufacturer_specificities.cc and driver_izar.cc; the code here is ours):

- a 32-bit LFSR (taps: bits 1, 2, 11 and 31, shifted left, the new bit appended) is stepped 8 times
  per byte; the low 8 bits of the register are XORed onto each byte from frame byte 15 on;
- its seed is the key's two halves XORed (big-endian 32-bit words of an 8-byte key) XORed with the
  frame's bytes 2-5, 6-9 and 10-13 read as big-endian words (L-field = byte 0, no CRCs);
- the published default keys are 39BC8A10E66D83F8 and 51728910E66D83F8;
- PRIOS (CI 0xA0-0xA7): the first descrambled byte is 0x4B;
- real data (CI 0x7A with bit 4 of the CF's mode bits set): the sum of the
  descrambled bytes, masked with 0xEF, equals the CF's high byte masked with 0xEF;
- PRIOS frames of DME / HYD put version and device type in front of the id (bytes 4-5, id in
  bytes 6-9); SAP frames use all five bytes as the serial number (a water meter).

A key is never logged or written; only which of the candidates fitted ("default key 1").
"""

from __future__ import annotations

from ..dll import Address

DIEHL = frozenset({"DME", "HYD", "SAP", "EWT", "SPL"})
DEFAULT_KEYS = (bytes.fromhex("39BC8A10E66D83F8"), bytes.fromhex("51728910E66D83F8"))
PRIOS_CIS = frozenset(range(0xA0, 0xA8))
PRIOS_CHECK = 0x4B


def _seed(key: bytes, frame: bytes) -> int:
    def be32(b: bytes) -> int:
        return int.from_bytes(b, "big")

    return be32(key[0:4]) ^ be32(key[4:8]) ^ be32(frame[2:6]) ^ be32(frame[6:10]) ^ be32(frame[10:14])


def lfsr_xor(key: bytes, frame: bytes) -> bytes:
    """frame[15:] XOR the key stream seeded from ``key`` and the frame header (involution)."""
    reg = _seed(key, frame)
    out = bytearray()
    for byte in frame[15:]:
        for _ in range(8):
            bit = ((reg >> 1) ^ (reg >> 2) ^ (reg >> 11) ^ (reg >> 31)) & 1
            reg = ((reg << 1) | bit) & 0xFFFFFFFF
        out.append(byte ^ (reg & 0xFF))
    return bytes(out)


def _candidates(extra: bytes | None) -> list[tuple[str, bytes]]:
    keys = [("the meter's key", extra[:8])] if extra is not None and len(extra) >= 8 else []
    return keys + [(f"default key {i + 1}", k) for i, k in enumerate(DEFAULT_KEYS)]


def prios_descramble(frame: bytes, key: bytes | None = None) -> tuple[bytes, str] | None:
    """The descrambled PRIOS bytes (frame[15:]) and which key fitted, or None if none did."""
    if len(frame) < 16:
        return None
    for name, k in _candidates(key):
        plain = lfsr_xor(k, frame)
        if plain[0] == PRIOS_CHECK:
            return plain, name
    return None


def real_data_descramble(frame: bytes, key: bytes | None = None) -> tuple[bytes, str] | None:
    """The descrambled "real data" application bytes (frame[15:]) and which key fitted, or None."""
    if len(frame) < 16:
        return None
    want = frame[14] & 0xEF
    for name, k in _candidates(key):
        plain = lfsr_xor(k, frame)
        if sum(plain) & 0xEF == want:
            return plain, name
    return None


def is_real_data(frame: bytes, address: Address) -> bool:
    """A Diehl SND-NR / SND-IR frame whose CF marks LFSR-scrambled application data."""
    if len(frame) < 15 or address.manufacturer_code not in DIEHL or frame[1] not in (0x44, 0x46):
        return False
    return frame[10] == 0x7A and bool(frame[14] & 0x10)


def prios_address(frame: bytes, address: Address) -> tuple[int, int]:
    """(version, device type) of a PRIOS frame, read the Diehl way (see the module docstring)."""
    if address.manufacturer_code == "SAP":
        return 0x00, 0x07
    return frame[4], frame[5]
