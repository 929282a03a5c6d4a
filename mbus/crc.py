"""CRC-16/EN-13757: poly 0x3D65, init 0, no reflection, result inverted (check value 0xC2B7).

Link-layer blocks store it big-endian; the ELL payload CRC and compact-frame signatures store it
little-endian (those callers swap the bytes themselves).
"""

from __future__ import annotations

POLY = 0x3D65


def _make_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ POLY) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return tuple(table)


_TABLE = _make_table()


def crc16(data: bytes | bytearray | memoryview) -> int:
    """CRC-16/EN-13757 of ``data`` as an integer."""
    crc = 0
    table = _TABLE
    for byte in data:
        crc = ((crc << 8) & 0xFF00) ^ table[(crc >> 8) ^ byte]
    return crc ^ 0xFFFF


def crc16_bytes(data: bytes | bytearray | memoryview) -> bytes:
    """The CRC as it is sent after a link-layer block: high byte first."""
    return crc16(data).to_bytes(2, "big")
