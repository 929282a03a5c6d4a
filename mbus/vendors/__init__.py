"""Vendor decoders: values some meters send as manufacturer-specific bytes (after DIF 0x0F).

Each decoder says which meters it serves (manufacturer, device type, version) and turns the bytes
after the 0F into records like the standard ones, marked with ``vendor <name>`` in their modifiers
so nobody mistakes them for OMS-defined data. Layouts are facts gathered from public decoders and
checked against their published telegrams (tests/test_vendors.py); code is our own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..dll import Address
from ..records import DataRecord
from . import apator, bmeters, bmeters_hca, techem


@dataclass(frozen=True, slots=True)
class VendorDecoder:
    name: str
    manufacturers: frozenset[str]
    device_types: frozenset[int]
    versions: frozenset[int]
    decode: Callable[[bytes, int], list[DataRecord]]  # (bytes, their offset in the APL)
    ci: int | None = None  # None: the bytes after DIF 0x0F; a CI: the whole payload behind that CI

    def serves(self, address: Address) -> bool:
        return (address.manufacturer_code in self.manufacturers and address.device_type in self.device_types
                and address.version in self.versions)


def _d(name: str, manufacturers: str, types: set[int], versions: set[int], decode, ci: int | None = None):
    return VendorDecoder(name, frozenset(manufacturers.split()), frozenset(types), frozenset(versions), decode, ci)


TECHEM_HEAT = {0x04, 0xC3, 0x43}
DECODERS = (
    _d("hydrodigit", "BMT", {0x06, 0x07}, {0x13, 0x15, 0x17}, bmeters.hydrodigit),
    _d("hydroclima", "BMP", {0x08}, {0x53, 0x85}, bmeters_hca.hydroclima),
    _d("compact5", "TCH", TECHEM_HEAT, {0x45, 0x22, 0x39}, techem.compact5, ci=0xA2),
    _d("compact5", "TCH", TECHEM_HEAT, {0x45, 0x22, 0x39}, techem.compact5, ci=0xA1),
    _d("vario451", "TCH", {0x04, 0xC3}, {0x27}, techem.vario451, ci=0xA2),
    _d("mkradio3", "TCH", {0x62, 0x72}, {0x74}, techem.mkradio3, ci=0xA2),
    _d("apatoreitn", "APA APT", {0x08}, {0x04}, apator.eitn_a0, ci=0xA0),
    _d("apatoreitn", "APA APT", {0x08}, {0x04}, apator.eitn_b6, ci=0xB6),
)


def vendor_records(address: Address, records: list[DataRecord]) -> list[DataRecord]:
    """Records decoded from the manufacturer-specific tail, when a decoder serves this meter."""
    tail = next((r for r in records if r.quantity == "manufacturer_data" and r.dib == b"\x0f"), None)
    if tail is None or not tail.data:
        return []
    for dec in DECODERS:
        if dec.ci is None and dec.serves(address):
            return dec.decode(tail.data, tail.offset + 1)
    return []


def vendor_payload_records(address: Address, ci: int, payload: bytes) -> list[DataRecord]:
    """Records from a manufacturer-specific CI's payload, when a decoder serves this meter."""
    for dec in DECODERS:
        if dec.ci == ci and dec.serves(address):
            return dec.decode(payload, 0)
    return []
