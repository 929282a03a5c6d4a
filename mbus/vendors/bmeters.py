"""B METERS (BMT) Hydrodigit water meters: the bytes after DIF 0x0F.

    flags(1) [voltage(1)] [fraud date(3) fraud type(1)] [leak date(3)] [backflow(4)] [monthly 12 x 3] ...

flags: 0x01 battery voltage, 0x02 fraud date, 0x04 backflow, 0x10 monthly totals, 0x80 leak date
(0x08, 0x20, 0x40 not seen with data). Voltage: low nibble through VOLTAGE (0, E, F = 3.7 V).
Dates: YY MM DD in BCD. Backflow: uint32 LE in litres. Monthly: uint24 LE in 0.01 m3, January
first; FFFFFF = the radio module was not installed yet. The fraud-date layout is an assumption
(every telegram seen carries zeros there).
"""

from __future__ import annotations

from decimal import Decimal

from ..records import DataRecord

VOLTAGE = {0x1: "1.9", 0x2: "2.1", 0x3: "2.2", 0x4: "2.3", 0x5: "2.4", 0x6: "2.5", 0x7: "2.65", 0x8: "2.8",
           0x9: "2.9", 0xA: "3.05", 0xB: "3.2", 0xC: "3.35", 0xD: "3.5"}
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")
TAG = "vendor hydrodigit"


def _rec(offset: int, raw: bytes, quantity: str, unit: str = "", value: Decimal | None = None,
         text: str | None = None, storage: int = 0, modifiers: tuple[str, ...] = ()) -> DataRecord:
    return DataRecord(offset=offset, raw=raw, dib=b"", vib=b"", data=raw, function="instantaneous",
                      storage=storage, quantity=quantity, unit=unit, value=value, text=text,
                      modifiers=(*modifiers, TAG))


def _bcd_date(b: bytes) -> str | None:
    if b == b"\x00\x00\x00":
        return None
    yy, mm, dd = (f"{x:02x}" for x in b)
    return f"20{yy}-{mm}-{dd}"


def hydrodigit(data: bytes, offset: int) -> list[DataRecord]:
    if not data:
        return []
    flags = data[0]
    out: list[DataRecord] = []
    pos = 1

    def take(n: int) -> bytes | None:
        nonlocal pos
        if pos + n > len(data):
            return None
        chunk = data[pos:pos + n]
        pos += n
        return chunk

    if flags & 0x01:
        b = take(1)
        if b is None:
            return out
        out.append(_rec(offset + pos - 1, b, "voltage", "V", Decimal(VOLTAGE.get(b[0] & 0x0F, "3.7"))))
    if flags & 0x02:
        b = take(4)
        if b is None:
            return out
        out.append(_rec(offset + pos - 4, b, "fraud_date", text=_bcd_date(b[:3]), modifiers=(f"type {b[3]}",)))
    if flags & 0x80:
        b = take(3)
        if b is None:
            return out
        out.append(_rec(offset + pos - 3, b, "leak_date", text=_bcd_date(b)))
    if flags & 0x04:
        b = take(4)
        if b is None:
            return out
        out.append(_rec(offset + pos - 4, b, "volume", "m3", Decimal(int.from_bytes(b, "little")) / 1000,
                        modifiers=("backflow",)))
    if flags & 0x10:
        for i, month in enumerate(MONTHS):
            b = take(3)
            if b is None:
                return out
            raw = int.from_bytes(b, "little")
            value = None if raw == 0xFFFFFF else Decimal(raw) / 100
            out.append(_rec(offset + pos - 3, b, "volume", "m3", value, storage=i + 1,
                            modifiers=(f"end of {month}",), text=None if value is not None else "not installed"))
    return out
