"""Issue 14 acceptance over ../shared/vectors (wireless and wired): no telegram decodes with a problem
unless it is listed in tests/data/wireless_exceptions.json ("decode") with its reason, and the share
of wmbusmeters' driver values found among our records (benchmarks/driver_values.py) holds.

The benchmark's measurement is the test's: a new problem, a listed telegram that starts decoding
cleanly, or a coverage drop fails here.
"""

from __future__ import annotations

import json

import pytest

from benchmarks import driver_values as dv
from mbus.compact import FormatCache
from mbus.telegram import decode

from .conftest import DATA, even_hex, shared_path

EXCEPTIONS = json.loads((DATA / "wireless_exceptions.json").read_text())


@pytest.fixture(scope="module")
def rows():
    return dv.measure(shared_path("vectors"), EXCEPTIONS)


def test_every_decode_problem_is_listed_with_its_reason(rows):
    problems = {r.vid: r.error for r in rows if r.error}
    listed = EXCEPTIONS["decode"]
    new = {k: v for k, v in problems.items() if k not in listed}
    assert not new, f"new decode problems, fix them or list them with a reason: {new}"
    stale = sorted(set(listed) - set(problems))
    assert not stale, f"listed but decoding cleanly now, remove from wireless_exceptions.json: {stale}"
    for vid, entry in listed.items():
        assert entry["kind"] in ("malformed", "no key"), vid
        assert len(entry["reason"]) > 20, vid
    # a telegram listed as "no key" fails for that reason and nothing else
    for vid, entry in listed.items():
        if entry["kind"] == "no key":
            assert problems[vid].startswith("decryption: no_key"), (vid, problems[vid])


def test_transport_exceptions_are_among_the_decode_exceptions():
    assert set(EXCEPTIONS["transport"]) <= set(EXCEPTIONS["decode"])


def test_driver_value_coverage(rows):
    driver = [r for r in rows if r.source == "driver"]
    std = [f for r in driver for f in r.fields if f.standard]
    alls = [f for r in driver for f in r.fields]
    std_rate = sum(f.found for f in std) / len(std)
    all_rate = sum(f.found for f in alls) / len(alls)
    print(f"\nstandard values found {std_rate:.1%} of {len(std)}, all numbers {all_rate:.1%} of {len(alls)}")
    assert len(std) >= 1400 and len(alls) >= 1850
    assert std_rate >= 0.99
    assert all_rate >= 0.85


def test_wrong_expected_values_really_contradict_the_telegram(wireless_vectors):
    """A field listed as the source's mistake is not among our values, and our value is the one the
    reason derives from the bytes (so the listing cannot hide a decoding fault of ours)."""
    by_id = {r["id"]: r for r in wireless_vectors}
    row = by_id["wl-wmbusmeters-0414"]
    assert "total_m3" in EXCEPTIONS["expected"]["wl-wmbusmeters-0414"]
    t = decode(even_hex(row["canonical_hex"]))
    volumes = [r for r in t.records if r.unit == "m3" and r.storage == 0 and r.value is not None]
    assert str(volumes[0].value) == "5.648"
    assert row["expected"]["total_m3"] == 6.548
    twin = by_id["wl-wmbusmeters-0413"]  # the first telegram of the same simulation file: 48 55 00 00
    first = [r for r in decode(even_hex(twin["canonical_hex"])).records if r.unit == "m3"][0]
    assert (str(first.value), twin["expected"]["total_m3"]) == ("5.548", 5.548)


def test_compact_frames_decode_after_their_sources_full_frame(wireless_vectors):
    """jmbus' ShortTelegramTest feeds the full frame, then the compact one (CI 0x79): one format
    cache per source file, in line order, as the benchmark does."""
    by_id = {r["id"]: r for r in wireless_vectors}
    for full, short, count in (("wl-jmbus-0011", "wl-jmbus-0012", 13), ("wl-jmbus-0013", "wl-jmbus-0014", 8)):
        alone = decode(even_hex(by_id[short]["canonical_hex"]))
        assert alone.records_outcome == "format_unknown"
        cache = FormatCache()
        decode(even_hex(by_id[full]["canonical_hex"]), formats=cache)
        t = decode(even_hex(by_id[short]["canonical_hex"]), formats=cache)
        assert not t.problems, t.problems
        assert len(t.records) == by_id[short]["expected"]["record_count_after_full_frame"] == count


@pytest.mark.parametrize(("vid", "total_m3"), [("wl-wmbusmeters-0197", "3.871"), ("wl-wmbusmeters-0198", "60.770"),
                                               ("wl-wmbusmeters-0092", "253.409")])
def test_compact_frames_of_published_formats_decode_alone(wireless_vectors, vid, total_m3):
    """flowIQ 2200 (KAW) and Engelmann FAW (EFE) compact frames whose formats the vendors' data file
    knows (wmbusmeters kamwater.xmq / engelmann_faw.xmq compact_frame_formats): no full frame needed."""
    from mbus.keys import KeyStore

    row = next(r for r in wireless_vectors if r["id"] == vid)
    keys = KeyStore(default=bytes.fromhex(row["key"])) if row.get("key") else None
    t = decode(even_hex(row["canonical_hex"]), keys=keys)
    assert not t.problems and t.records_outcome != "format_unknown", t.problems
    totals = [r for r in t.records if r.unit == "m3" and r.storage == 0 and r.function == "instantaneous"
              and r.value is not None]
    assert [str(r.value) for r in totals] == [total_m3]
