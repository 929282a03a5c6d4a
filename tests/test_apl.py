"""Application data (issue 14): compact profiles (EN 13757-3 Annex F examples F.2.6-F.2.8 as
reproduced by exmbus), the Annex A date/time types with century and periodic codes, "no value"
markers, resync after bad records, and wired CI 0x76 (variable data, MSB first)."""

from __future__ import annotations

from decimal import Decimal

from mbus import wired
from mbus.compact import FormatCache
from mbus.records import decode_date, decode_records, header_list, parse_records
from mbus.telegram import decode


def _recs(hexes: str):
    result = decode_records(bytes.fromhex("".join(hexes.split())))
    assert result.errors == ()
    return result.records


# --- compact profiles -------------------------------------------------------------------------


def test_compact_profile_f27_positive_increments():
    recs = _recs("84046D00204111  8B0415003012  8D04951F056901030211")
    when, base, profile, *values = recs
    assert (when.text, when.storage) == ("2010-01-01T00:00", 8)
    assert (base.value, base.unit, base.storage) == (Decimal("12300.0"), "m3", 8)
    assert profile.value is None and profile.raw.hex() == "8d04951f056901030211"
    assert "3 values (positive increments, storage 9..11)" in profile.note
    assert [(v.storage, v.value, v.unit, v.time_point) for v in values] == [
        (9, Decimal("12300.3"), "m3", "2010-01-01T01:00"),
        (10, Decimal("12300.5"), "m3", "2010-01-01T02:00"),
        (11, Decimal("12301.6"), "m3", "2010-01-01T03:00")]
    assert all(v.derived_from == profile.offset == 13 for v in values)
    assert [v.raw.hex() for v in values] == ["03", "02", "11"]  # each value's own element bytes
    assert values[0].to_json()["time_point"] == "2010-01-01T01:00"


def test_inverse_compact_profile_f28_runs_backwards():
    *_, profile, a, b, c = _recs("84046D00234111  8B0415163012  8D049513056901110203")
    assert "inverse compact profile" in profile.modifiers
    assert [(v.storage, v.value, v.time_point) for v in (a, b, c)] == [
        (9, Decimal("12300.5"), "2010-01-01T02:00"), (10, Decimal("12300.3"), "2010-01-01T01:00"),
        (11, Decimal("12300.0"), "2010-01-01T00:00")]


def test_compact_profile_with_register_numbers_f26_monthly_absolute():
    recs = _recs("868081006D0000A0411135 8490810003F0490200 8D908100831E0A34FEA0860100D0FB0100"
                 "C68181006D0B0C8D59130C C491810003905F0100 868281006D00008041140D 849281000350C30000"
                 "8D928100831E0634FE00710200")
    energy = [(r.storage, r.tariff, r.value, r.time_point) for r in recs if r.quantity == "energy" and r.value]
    assert energy == [
        (32, 1, Decimal("150.000"), None),
        (33, 1, Decimal("100.000"), "2010-02-01T00:00:00"), (34, 1, Decimal("130.000"), "2010-03-01T00:00:00"),
        (35, 1, Decimal("90.000"), None), (36, 1, Decimal("50.000"), None),
        (37, 1, Decimal("160.000"), "2010-05-01T00:00:00")]
    assert all(r.unit == "kWh" for r in recs if r.quantity == "energy" and r.value)


def test_profile_elements_with_invalid_markers_are_null_and_formats_ignore_expansions():
    # int24 absolute elements 0x800000 = "illegal" (minomess telegram of the vectors)
    apl = bytes.fromhex("82046CE121" "8D0493130B33FE" + "000080" * 2 + "010000")
    recs = decode_records(apl).records
    values = [r for r in recs if r.derived_from is not None]
    assert [v.value for v in values] == [None, None, Decimal("0.001")]
    assert values[0].note.startswith("no value: 0x800000")
    assert [v.time_point for v in values] == ["2022-12-01", "2022-11-01", "2022-10-01"]  # inverse, months
    # the format signature is over the sent headers only, never the expanded values
    assert header_list(list(recs)) == bytes.fromhex("82046C" "8D049313")


def test_profile_without_base_value_names_what_is_missing():
    recs = _recs("8D04951F056901030211")
    assert "no base value" in recs[0].note
    assert all(r.value is None and "no base value record" in r.note for r in recs[1:])


# --- dates ------------------------------------------------------------------------------------


def test_annex_a_dates_century_and_flags():
    assert decode_date(bytes.fromhex("32371F15")) == ("2008-05-31T23:50", None)  # N.2.1, no century bits
    assert decode_date(bytes.fromhex("00204111"))[0] == "2010-01-01T00:00"  # hundred-year bits 01, year 10
    # 2026-05-26 17:25 with hundred-year 01: year 26 -> 1900 + 100 + 26, never 2126
    assert decode_date(bytes.fromhex("19315A35"))[0] == "2026-05-26T17:25"
    assert decode_date(bytes.fromhex("A122")) == ("2021-02-01", None)  # type G
    assert decode_date(bytes.fromhex("0B0C0D")) == ("13:12:11", None)  # type J
    assert decode_date(bytes.fromhex("0B0C8D59130C")) == ("2010-03-25T13:12:11", "day of week 4; week 12")  # I
    text, note = decode_date(bytes.fromhex("B32E3438"))  # IV bit: kept, but said
    assert text == "2025-08-20T14:51" and "IV bit" in note
    assert decode_date(bytes.fromhex("1991F2A5"))[1] == "summer time"


def test_periodic_and_missing_dates_are_not_years():
    assert decode_date(bytes.fromhex("E1F1")) == ("****-01-01", "periodic: every year")
    assert decode_date(bytes.fromhex("0000E1F1")) == ("****-01-01T00:00", "periodic: every year")
    for raw in ("0000", "FFFF", "00200000"):
        text, note = decode_date(bytes.fromhex(raw))
        assert text is None and note.startswith("no date"), raw
    text, note = decode_date(bytes.fromhex("0100"))  # month 0
    assert text is None and "month 0 out of range" in note


def test_wired_istaheat_style_zero_date_is_null_in_json():
    rec = parse_records(bytes.fromhex("426C0000"))[0][0]
    j = rec.to_json()
    assert j["value"] is None and "text" not in j and j["note"].startswith("no date")


# --- no value ---------------------------------------------------------------------------------


def test_no_value_markers_are_null_with_a_note():
    recs, err = parse_records(bytes.fromhex("0413 00000080  0213 0080  0B13 FFFFFF  05 13 0000C07F  0413 01000000"
                                            .replace(" ", "")))
    assert err is None
    assert [r.value for r in recs] == [None, None, None, None, Decimal("0.001")]
    assert recs[0].note.startswith("no value: 0x80000000") and "-2147483" not in recs[0].describe()
    assert "non-decimal digits" in recs[2].note and recs[2].text is None
    assert recs[3].note == "no value: real NaN"
    assert [r.to_json()["value"] for r in recs] == [None, None, None, None, 0.001]
    # record error "no data available" (VIFE 0x15): no number either
    rec = parse_records(bytes.fromhex("04931500000000"))[0][0]
    assert rec.value is None and rec.error == "no data available" and rec.note.startswith("no value")


# --- resync -------------------------------------------------------------------------------------


def test_records_resync_after_a_bad_record_and_decode_the_rest():
    # 11 DIFEs (too many) in a record whose length is still known, then two good records
    bad = "84" + "80" * 10 + "00" + "13" + "01000000"
    result = decode_records(bytes.fromhex(bad + "0413 02000000 02FD17 0000".replace(" ", "")))
    assert len(result.errors) == 1 and "skipped the record's 17 declared bytes" in str(result.errors[0])
    assert [(r.quantity, r.value) for r in result.records] == [("volume", Decimal("0.002")), ("error_flags", 0)]


# --- wired CI 0x76 ------------------------------------------------------------------------------


def test_wired_ci76_variable_data_msb_first_equals_its_lsb_first_twin():
    lsb = wired.decode(bytes.fromhex("6820206808fd7278563412931533032a0000000c1427048502046d32371f1502fd1700008916"))
    # the same N.2.2 frame with every multi-byte header field and record data field MSB first
    data = bytes.fromhex("12345678" "1593" "33 03 2a 00" "0000" "0c14 02850427" "046d 151f3732" "02fd17 0000"
                         .replace(" ", ""))
    msb = wired.decode(wired.build("long", c_field=0x08, address=0xFD, ci=0x76, data=data))
    assert msb.problems == ()
    assert [r.describe() for r in msb.records] == [r.describe() for r in lsb.records] == [
        "volume 28504.27 m3", "datetime 2008-05-31T23:50", "error flags 0"]
    assert (msb.tpl.address.manufacturer_code, msb.tpl.address.id) == ("ELS", "12345678")
    assert "CI 0x76, MSB first" in msb.message


def test_wired_ci76_short_header_is_a_problem_not_a_crash():
    t = wired.decode(wired.build("long", c_field=0x08, address=1, ci=0x76, data=bytes(5)))
    assert t.problems and "12-byte long header" in t.problems[0]


# --- whole telegrams ----------------------------------------------------------------------------


def test_vector_profiles_expand_in_whole_telegrams(wireless_vectors):
    """Every compact profile in the vectors expands to one record per element, with time points
    when the telegram has a base date of the same storage number."""
    expanded = 0
    for row in wireless_vectors:
        raw = bytes.fromhex(row["canonical_hex"][: len(row["canonical_hex"]) // 2 * 2])
        t = decode(raw, formats=FormatCache())
        for p in (r for r in t.records if r.derived_from is None and r.value is None
                  and any("profile" in m for m in r.modifiers)):
            values = [r for r in t.records if r.derived_from == p.offset]
            assert values, (row["id"], p.note)
            assert [v.storage for v in values] == list(range(p.storage + 1, p.storage + 1 + len(values)))
            expanded += 1
    assert expanded >= 15
    supercom = next(r for r in wireless_vectors if r["id"] == "wl-wmbusmeters-0299")
    t = decode(bytes.fromhex(supercom["canonical_hex"]))
    months = [(r.time_point, r.value) for r in t.records if r.derived_from is not None]
    assert months[0] == ("2017-10-01", Decimal("0.033")) and months[-1] == ("2018-11-01", Decimal("1.834"))


def test_registered_format_decodes_a_compact_frame_never_learned():
    from mbus import compact

    headers = bytes.fromhex("0202" "0215" "022A")  # EN 13757-3 G.5.2: energy, volume, power
    try:
        assert compact.register_format(headers) == 0x3B31
        full, crc_ok = compact.decode_compact(FormatCache(), b"any meter", bytes.fromhex("313B42A6D2042E163423"))
        assert crc_ok and [r.describe() for r in decode_records(full).records] == [
            "energy 0.1234 kWh", "volume 567.8 m3", "power 901.2 W"]
    finally:
        compact.KNOWN_FORMATS.pop(0x3B31, None)
