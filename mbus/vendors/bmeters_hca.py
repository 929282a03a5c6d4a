"""B METERS (BMP) Hydroclima heat cost allocators: the bytes after DIF 0x0F.

Frame 0x10 (RKN0, version 0x53): status(2) time(2) date(2) ambient average(2) ambient maximum(2)
maximum date(2) measurement count(2) ambient average last month(2) heater average last month(2)
indication(2) total(3).
Frame 0x11 (version 0x85): status(2) time(2) date(2) ?(2) heater average(2) ambient average(2)
ambient maximum(2) maximum date(2) heater average last month(2) ambient average last month(2)
consumption at set dates 1-4 (4 x 2) ambient at set dates 1-3 (3 x 2) ... total(3).
Temperatures: int16 LE in 0.01 degC, 0x8000 = no value. Consumption: uint16 LE HCA units. The
total consumption (uint24 LE) is the last three bytes in both frames. Layouts checked against the
three published telegrams; dates are not decoded.
"""

from __future__ import annotations

from decimal import Decimal

from ..records import DataRecord

TAG = "vendor hydroclima"


def _rec(offset, raw, quantity, unit, value, mods=(), storage=0):
    return DataRecord(offset=offset, raw=raw, dib=b"", vib=b"", data=raw, function="instantaneous",
                      storage=storage, quantity=quantity, unit=unit, value=value, modifiers=(*mods, TAG),
                      text=None if value is not None else "no value")


def hydroclima(data: bytes, offset: int) -> list[DataRecord]:
    if len(data) < 4 or data[0] not in (0x10, 0x11):
        return []
    out: list[DataRecord] = []

    def temp(i: int, what: str, storage: int = 0) -> None:
        if i + 2 > len(data):
            return
        raw = int.from_bytes(data[i:i + 2], "little", signed=True)
        value = None if raw == -0x8000 else Decimal(raw) / 100
        out.append(_rec(offset + i, data[i:i + 2], "temperature", "°C", value, (what,), storage))

    def hca(i: int, what: str, storage: int) -> None:
        if i + 2 <= len(data):
            out.append(_rec(offset + i, data[i:i + 2], "hca_units", "",
                            Decimal(int.from_bytes(data[i:i + 2], "little")), (what,), storage))

    if data[0] == 0x10:
        temp(7, "ambient, average this month")
        temp(9, "ambient, maximum this month")
        temp(15, "ambient, average last month")
        temp(17, "heater, average last month")
    else:
        temp(9, "heater, average this month")
        temp(11, "ambient, average this month")
        temp(13, "ambient, maximum this month")
        temp(17, "heater, average last month")
        temp(19, "ambient, average last month")
        for k in range(4):
            hca(21 + 2 * k, f"consumption at set date {k + 1}", k + 1)
        for k in range(3):
            temp(29 + 2 * k, f"ambient at set date {k + 1}", k + 1)
    if len(data) >= 24:
        out.append(_rec(offset + len(data) - 3, data[-3:], "hca_units", "",
                        Decimal(int.from_bytes(data[-3:], "little")), ("total consumption",)))
    return out
