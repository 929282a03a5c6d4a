"""Vendor decoders against published telegrams (wmbusmeters' test telegrams and expected values):
each value found with its unit, only for the meters a decoder serves, and no crash on short data."""

from __future__ import annotations

from decimal import Decimal

import pytest

from mbus.telegram import decode

CASES = [
    # hydrodigit: voltage, backflow, 12 monthly totals; FFFFFF months = module not installed yet
    ("4644B4092143658713077A9C0000000C1364390400046D212F16350F152A0F000000440F00C00F00511000D51000B20B00"
     "180C007C0C00E60C00560D00D10D00400E00C60E0000",
     [("voltage", "V", "3.05"), ("volume", "m3", "0.015"), ("volume", "m3", "39.08"), ("volume", "m3", "37.82")]),
    ("4944B4092243658713077A7F0000000C1363020400046D242C12360F950A24042507000000A405006E0700850900CA0B004A0E00"
     "FFFFFFFFFFFF020000020000250000B3010095030000",
     [("leak_date", "", "2024-04-25"), ("volume", "m3", "0.007"), ("volume", "m3", "14.44")]),
    # Techem Compact V behind CI 0xA1 / 0xA2 (kWh), Vario 4.5.1 (MJ), MK Radio 3 (0.1 m3)
    ("36446850626262624543A1009F2777010060780000000A000000000000000000000000000000000000000000000000A040000"
     "0B4010000", [("energy", "kWh", "375"), ("energy", "kWh", "120"), ("energy", "kWh", "495")]),
    ("3D446850221471414543A100FF32406002C8CD0000019F81071F68E001072C0C9106642075B5A6AC6AD229E993376AA7D10E1E5C60"
     "C1050000000056FED3", [("energy", "kWh", "155712"), ("energy", "kWh", "205")]),
    ("374468506549235827C3A2129F25383300A8622600008200800A2AF862115175552877A36F26C9AB1CB24400000004000000000"
     "004908002", [("energy", "MJ", "13112"), ("energy", "MJ", "9826"), ("energy", "MJ", "22938")]),
    ("2F446850313233347462A2069F255900B029310000000306060906030609070606050509050505050407040605070500",
     [("volume", "m3", "8.9"), ("volume", "m3", "4.9"), ("volume", "m3", "13.8")]),
    # Apator E-ITN behind CI 0xA0, and behind a CI 0xB6 block
    ("19440186313737370408A0A1000059001C270100322DE413B415",
     [("hca_units", "", "89"), ("hca_units", "", "1"), ("temperature", "°C", "21.703125")]),
    ("25441486323737370408B60AFFFFF5450186F41B9D58A0A100007809000000001F2D6416C819",
     [("hca_units", "", "2424"), ("temperature", "°C", "22.390625"), ("temperature", "°C", "25.78125")]),
    # Hydroclima frame 0x10 and frame 0x11
    ("2E44B0099861036853087A000020002F2F036E0000000F100043106A7D2C4A078F12202CB1242A06D3062100210000",
     [("temperature", "°C", "18.66"), ("temperature", "°C", "47.51"), ("hca_units", "", "33")]),
    ("5144B0095209009385088C20807A800040252F2F036E540200436ED90800426C3F3C0F1100009924293400003713DF08BC16"
     "3633960E8208D401D90879076006DA080809DA08E537000A3500DF1201830900",
     [("temperature", "°C", "49.19"), ("hca_units", "", "1913"), ("temperature", "°C", "23.12"),
      ("hca_units", "", "2435")]),
]


@pytest.mark.parametrize(("hexstr", "want"), CASES)
def test_vendor_values(hexstr, want):
    t = decode(bytes.fromhex(hexstr))
    assert not t.problems, t.problems
    vendor = [r for r in t.records if any(m.startswith("vendor ") for m in r.modifiers)]
    got = {(r.quantity, r.unit, r.value_text()) for r in vendor}
    for w in want:
        assert w in got, (w, sorted(got))
    for r in vendor:  # offsets point at the bytes they came from
        assert r.raw and r.offset >= 0


def test_not_installed_months_have_no_value():
    t = decode(bytes.fromhex(CASES[1][0]))
    months = [r for r in t.records if any(m.startswith("end of ") for m in r.modifiers)]
    assert len(months) == 12
    assert [r.value for r in months[5:7]] == [None, None] and months[5].text == "not installed"
    assert months[7].value == Decimal("0.02")


def test_other_meters_are_left_alone():
    # the hydrodigit telegram with another manufacturer (ELS) keeps its 0F bytes undecoded
    hexstr = CASES[0][0].replace("4644B409", "46449315", 1)
    t = decode(bytes.fromhex(hexstr))
    assert not [r for r in t.records if any(m.startswith("vendor ") for m in r.modifiers)]
    assert any(r.quantity == "manufacturer_data" for r in t.records)


@pytest.mark.parametrize("hexstr", [c[0] for c in CASES])
def test_truncated_vendor_bytes_never_crash(hexstr):
    raw = bytes.fromhex(hexstr)
    for cut in range(12, len(raw)):
        t = decode(raw[:cut])  # L-field now too long: decoded as far as it goes, never an exception
        assert t is not None


def test_decoders_take_any_length():
    from mbus.vendors import DECODERS

    for dec in DECODERS:
        for n in range(0, 64):
            for fill in (0x00, 0xFF, 0x10, 0x11, 0x95):
                data = bytes([fill]) + bytes(range(n))
                assert isinstance(dec.decode(data, 0), list)
