"""Application records: published examples, data types, round trips, compact frames, and the
coverage of wmbusmeters' expected readings in ../shared/vectors/wireless.jsonl."""

from __future__ import annotations

import re
from collections import defaultdict
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from mbus.compact import FormatCache, decode_compact, parse_format_frame, signature
from mbus.keys import KeyStore
from mbus.records import build_record, date_g, datetime_f, json_number, parse_records
from mbus.telegram import decode

from .conftest import even_hex


def test_annex_n_records():
    recs, err = parse_records(bytes.fromhex("2F2F0C1427048502046D32371F1502FD1700002F2F2F2F2F2F2F2F2F2F2F2F2F"))
    assert err is None
    vol, when, flags = recs
    assert (vol.quantity, vol.unit, vol.value, vol.offset, vol.raw.hex()) == (
        "volume", "m3", Decimal("28504.27"), 2, "0c1427048502")
    assert when.text == "2008-05-31T23:50"
    assert (flags.quantity, flags.value, flags.dib.hex(), flags.vib.hex()) == ("error_flags", 0, "02", "fd17")


def test_data_types_and_exact_values():
    assert date_g(bytes.fromhex("A122")) == "2021-02-01"
    assert datetime_f(bytes.fromhex("32371F15")) == "2008-05-31T23:50"
    assert json_number(Decimal("123.456")) == 123.456 and repr(json_number(Decimal("123.456"))) == "123.456"
    recs, _ = parse_records(bytes.fromhex("0C13341200F0"))  # negative BCD: F in the top nibble
    assert recs[0].value == Decimal("-1.234")
    recs, _ = parse_records(bytes.fromhex("05 2B 0000C03F".replace(" ", "")))  # real 1.5 W
    assert recs[0].value == Decimal("1.5")
    recs, _ = parse_records(bytes.fromhex("8D04931E0569010302 11".replace(" ", "")))  # compact profile LVAR
    assert recs[0].storage == 8 and "compact profile with register numbers" in recs[0].modifiers


def test_dife_chain_storage_tariff_subunit():
    raw = build_record(vib=b"\x06", raw=7, storage=37, tariff=5, subunit=3)
    rec = parse_records(raw)[0][0]
    assert (rec.storage, rec.tariff, rec.subunit) == (37, 5, 3)


codings = st.sampled_from(["int8", "int16", "int24", "int32", "int48", "int64", "bcd2", "bcd4", "bcd6", "bcd8",
                           "bcd12"])
vibs = st.sampled_from([b"\x13", b"\x06", b"\x2b", b"\x3b", b"\x5a", b"\x6e", b"\xfd\x17", b"\xfb\x0d",
                        b"\x84\x3c", b"\x93\x3b", b"\x13"])


@st.composite
def records(draw):
    coding = draw(codings)
    if coding.startswith("bcd"):
        raw = draw(st.integers(0, 10 ** int(coding[3:]) - 1))
    else:
        bits = {"int8": 8, "int16": 16, "int24": 24, "int32": 32, "int48": 48, "int64": 64}[coding]
        raw = draw(st.integers(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1))
    return dict(vib=draw(vibs), raw=raw, coding=coding, storage=draw(st.integers(0, 2**20)),
                tariff=draw(st.integers(0, 15)), subunit=draw(st.integers(0, 3)),
                function=draw(st.sampled_from(["instantaneous", "maximum", "minimum", "error"])))


@given(st.lists(records(), max_size=6))
def test_build_parse_records_round_trip(specs):
    apl = b"".join(build_record(**s) for s in specs)
    recs, err = parse_records(apl)
    assert err is None and len(recs) == len(specs)
    for spec, rec in zip(specs, recs, strict=True):
        assert (rec.storage, rec.tariff, rec.subunit, rec.function) == (
            spec["storage"], spec["tariff"], spec["subunit"], spec["function"])
        assert rec.vib == spec["vib"]
        assert build_record(vib=rec.vib, data=rec.data, coding=spec["coding"], storage=rec.storage,
                            tariff=rec.tariff, subunit=rec.subunit, function=rec.function) == rec.raw


def test_compact_frame_annex_g_example():
    full = bytes.fromhex("0202D20402152E16022A3423")
    sig, headers = parse_format_frame(bytes.fromhex("08313B02020215022A"))
    assert sig == signature(headers) == 0x3B31
    cache = FormatCache()
    assert cache.learn_records(b"meter", parse_records(full)[0]) == 0x3B31
    expanded, crc_ok = decode_compact(cache, b"other meter", bytes.fromhex("313B42A6D2042E163423"))
    assert expanded == full and crc_ok
    assert signature(bytes.fromhex("040404843C042B04AB3C")) == 35859


def test_compact_frame_before_its_full_frame_is_format_unknown():
    t = decode(bytes.fromhex("18446d5e2611262012167b4100000044c9b2df9a1000000900"), formats=FormatCache())
    assert (t.decryption, t.records_outcome) == ("not_encrypted", "format_unknown")


def test_preceding_hex_vectors_decode_after_their_full_frame(wireless_vectors):
    rows = [r for r in wireless_vectors if r.get("preceding_hex")]
    assert len(rows) >= 4
    decoded = 0
    for row in rows:
        cache = FormatCache()
        key = KeyStore(default=bytes.fromhex(row["key"])) if row.get("key") and len(row["key"]) == 32 else None
        for earlier in row["preceding_hex"]:
            decode(bytes.fromhex(earlier), keys=key, formats=cache)
        t = decode(even_hex(row["hex"]), keys=key, formats=cache)
        if t.tpl is not None and t.tpl.info.payload == "compact":
            assert t.records_outcome == "ok", (row["id"], t.problems, t.notes)
            assert t.records
            decoded += 1
    assert decoded >= 4


# --- wmbusmeters expected readings -------------------------------------------------------------

SUFFIX = re.compile(r"_(m3|l|kwh|mwh|gj|mj|c|k|m3h|lh|w|kw|v|a|hca|s|h|d|y|bar|kg|pct|rh|hz|dbm)$")
CONVERT = {
    "m3": {"m3": 1, "ft3": 0.0283168}, "l": {"m3": 1000}, "kwh": {"kWh": 1, "MWh": 1e3, "MJ": 1 / 3.6,
                                                                   "GJ": 1e3 / 3.6},
    "mwh": {"kWh": 1e-3, "MWh": 1, "MJ": 1 / 3600, "GJ": 1 / 3.6}, "gj": {"GJ": 1, "MJ": 1e-3, "kWh": 0.0036,
                                                                        "MWh": 3.6},
    "mj": {"MJ": 1, "GJ": 1e3, "kWh": 3.6}, "c": {"°C": 1}, "k": {"K": 1}, "m3h": {"m3/h": 1, "m3/min": 60,
                                                                                  "m3/s": 3600},
    "lh": {"m3/h": 1e3, "m3/min": 6e4, "m3/s": 3.6e6}, "w": {"W": 1, "kW": 1e3, "MW": 1e6, "J/h": 1 / 3600},
    "kw": {"W": 1e-3, "kW": 1, "MW": 1e3}, "v": {"V": 1}, "a": {"A": 1}, "hca": {"": 1},
    "s": {"s": 1, "min": 60, "h": 3600, "d": 86400}, "h": {"h": 1, "d": 24, "min": 1 / 60, "s": 1 / 3600},
    "d": {"d": 1, "h": 1 / 24}, "y": {"year": 1, "month": 1 / 12, "d": 1 / 365.25}, "bar": {"bar": 1},
    "kg": {"kg": 1, "t": 1e3}, "pct": {"%": 1}, "rh": {"%": 1}, "hz": {"Hz": 1}, "dbm": {"dBm": 1},
}


def _is_no_value_marker(want) -> bool:
    scaled = abs(Decimal(repr(want)) if isinstance(want, float) else Decimal(want))
    return any(scaled == Decimal(2 ** (bits - 1)).scaleb(-k) for bits in (8, 16, 24, 32, 48, 64) for k in range(10))


def _miss_reason(t) -> str:
    if t.payload is None:
        return f"not decrypted ({t.decryption})"
    if t.records_outcome == "format_unknown":
        return "compact frame whose format no vector teaches"
    if any(layer.ci >= 0xA0 and layer.ci <= 0xB7 for layer in t.layers):
        return "manufacturer-specific CI: the driver decodes vendor bytes"
    if any(r.quantity in ("manufacturer_data", "manufacturer_specific") for r in t.records):
        return "manufacturer-specific bytes or driver formula"
    if t.records_outcome == "error":
        return "record decoding stopped: " + "; ".join(t.problems)
    return "driver formula (no standard record carries this value)"


def test_wmbusmeters_readings_coverage(wireless_vectors):
    per_driver = defaultdict(lambda: [0, 0])
    misses = []
    cache = FormatCache()
    for row in wireless_vectors:
        if not row["kind"].startswith("wmbusmeters"):
            continue
        key = KeyStore(default=bytes.fromhex(row["key"])) if row.get("key") and len(row["key"]) == 32 else None
        for earlier in row.get("preceding_hex") or []:
            decode(bytes.fromhex(earlier), keys=key, formats=cache)
        t = decode(even_hex(row["hex"]), keys=key, formats=cache)
        for field, want in row["expected"].items():
            m = SUFFIX.search(field)
            if not m or isinstance(want, bool) or not isinstance(want, (int, float)):
                continue
            conv = CONVERT[m.group(1)]
            found = any(r.value is not None and r.unit in conv
                        and abs(float(r.value) * conv[r.unit] - want) <= 1e-6 * max(1.0, abs(want))
                        for r in t.records)
            if not found and _is_no_value_marker(want):
                # wmbusmeters prints the lowest signed number (type B "no value") as a number; our record
                # carries value null and says so
                found = any(r.value is None and r.unit in conv and (r.note or "").startswith("no value")
                            for r in t.records)
            driver = row.get("driver") or "?"
            per_driver[driver][1] += 1
            per_driver[driver][0] += found
            if not found:
                misses.append((row["id"], driver, field, want, _miss_reason(t)))
    total = sum(n for _, n in per_driver.values())
    hits = sum(h for h, _ in per_driver.values())
    print(f"\nwmbusmeters readings found among our records: {hits}/{total} = {hits / total:.1%}")
    for driver, (h, n) in sorted(per_driver.items(), key=lambda kv: kv[1][0] / kv[1][1]):
        if h < n:
            print(f"  {driver:<28} {h:>4}/{n:<4} {h / n:6.1%}")
    reasons = defaultdict(int)
    for miss in misses:
        reasons[miss[4].split(":")[0]] += 1
    print("misses by reason:", dict(reasons))
    for miss in misses:
        print("  miss", *miss)
    assert total >= 1300
    # The issue asks for 90 %; vendor decoders (mbus/vendors) carry the last points.
    assert hits / total >= 0.90
