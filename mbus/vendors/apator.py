"""Apator E-ITN heat cost allocators: their data behind CI 0xA0 (sometimes after a CI 0xB6 block).

CI 0xB6: a length byte and that many bytes (content unknown), then CI 0xA0.
After CI 0xA0: bytes 0-2 status / flags, bytes 3-4 HCA units of the previous season (uint16 LE),
bytes 5-6 a date, bytes 7-8 HCA units of the current season (uint16 LE), bytes 9-10 a date,
bytes 11-12 the previous average room temperature and bytes 13-14 the current one (int16 LE in
1/256 degC). Layout checked against three published telegrams; the dates and flags are not decoded.
"""

from __future__ import annotations

from decimal import Decimal

from ..records import DataRecord

TAG = "vendor apator e-itn"


def _rec(offset: int, raw: bytes, quantity: str, unit: str, value: Decimal, mods: tuple[str, ...]) -> DataRecord:
    return DataRecord(offset=offset, raw=raw, dib=b"", vib=b"", data=raw, function="instantaneous",
                      quantity=quantity, unit=unit, value=value, modifiers=(*mods, TAG))


def eitn_a0(data: bytes, offset: int) -> list[DataRecord]:
    if len(data) < 15:
        return []

    def u16(i):
        return int.from_bytes(data[i:i + 2], "little")

    def temp(i):
        return Decimal(int.from_bytes(data[i:i + 2], "little", signed=True)) / 256

    return [_rec(offset + 3, data[3:5], "hca_units", "", Decimal(u16(3)), ("previous season",)),
            _rec(offset + 7, data[7:9], "hca_units", "", Decimal(u16(7)), ("current season",)),
            _rec(offset + 11, data[11:13], "temperature", "°C", temp(11), ("room, previous average",)),
            _rec(offset + 13, data[13:15], "temperature", "°C", temp(13), ("room, current average",))]


def eitn_b6(data: bytes, offset: int) -> list[DataRecord]:
    if not data:
        return []
    skip = 1 + data[0]
    if len(data) <= skip or data[skip] != 0xA0:
        return []
    return eitn_a0(data[skip + 1:], offset + skip + 1)
