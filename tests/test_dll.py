"""Link header fields: manufacturer codes, identification numbers, C-field names."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mbus.dll import Address, LinkHeader, c_field_name, manufacturer_code, manufacturer_value


def test_manufacturer_examples():
    assert manufacturer_value("ELS") == 0x1593
    assert manufacturer_code(0x1593) == "ELS"
    assert manufacturer_code(0x2C37) == "KAW"
    assert manufacturer_code(0x2C2D) == "KAM"


@given(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=3, max_size=3))
def test_manufacturer_round_trip(code):
    assert manufacturer_code(manufacturer_value(code)) == code


def test_link_header_annex_n():
    h = LinkHeader.parse(bytes.fromhex("2E4493157856341233037A"))
    assert (h.length, h.c_field, h.c_field_name) == (0x2E, 0x44, "SND-NR")
    a = h.address
    assert (a.manufacturer_code, a.id, a.version, a.device_type, a.device_type_name) == (
        "ELS", "12345678", 0x33, 0x03, "gas")
    assert h.to_bytes() == bytes.fromhex("2E449315785634123303")
    assert a.tpl_bytes() == bytes.fromhex("7856341293153303")
    assert Address.from_tpl(a.tpl_bytes()) == a


def test_c_field_names():
    assert [c_field_name(c) for c in (0x46, 0x47, 0x48, 0x06, 0x08, 0x40, 0x53)] == [
        "SND-IR", "ACC-NR", "ACC-DMD", "CNF-IR", "RSP-UD", "SND-NKE", "SND-UD"]
    assert c_field_name(0x99).startswith("unknown")
