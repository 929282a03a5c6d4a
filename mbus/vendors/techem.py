"""Techem heat and water meters (Compact V, Vario 4 type 4.5.1, MK Radio 3) that send their data behind CI 0xA1 / 0xA2.

After the CI: byte 0 status, bytes 1-2 the previous billing date, bytes 3-4 the value of the
previous billing period (uint16 LE), bytes 5-6 the current date, bytes 7-8 the value of the
current period (uint16 LE). The Compact V carries a third byte of the previous value in byte 5
(a published telegram past 65535 kWh shows it). Units: kWh for the Compact V, MJ for the Vario
4.5.1, 0.1 m3 for the MK Radio 3 water meters. The total is derived here as previous + current (no byte carries it).
"""

from __future__ import annotations

from decimal import Decimal

from ..records import DataRecord


def _periods(quantity: str, unit: str, scale: Decimal, tag: str, prev_bytes: int = 2):
    def decode(data: bytes, offset: int) -> list[DataRecord]:
        if len(data) < 9:
            return []
        end = 3 + prev_bytes
        prev = Decimal(int.from_bytes(data[3:end], "little")) * scale
        curr = Decimal(int.from_bytes(data[7:9], "little")) * scale

        def rec(off, raw, value, mods):
            return DataRecord(offset=offset + off, raw=raw, dib=b"", vib=b"", data=raw, function="instantaneous",
                              quantity=quantity, unit=unit, value=value, modifiers=(*mods, tag))

        return [rec(3, data[3:end], prev, ("previous billing period",)),
                rec(7, data[7:9], curr, ("current billing period",)),
                rec(3, data[3:9], prev + curr, ("total = previous + current",))]
    return decode


compact5 = _periods("energy", "kWh", Decimal(1), "vendor techem compact5", prev_bytes=3)
vario451 = _periods("energy", "MJ", Decimal(1), "vendor techem vario451")
mkradio3 = _periods("volume", "m3", Decimal("0.1"), "vendor techem mkradio3")  # water, 0.1 m3 steps
