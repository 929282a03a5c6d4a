"""CRC-16/EN-13757 and link-layer frame formats A and B."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mbus.crc import crc16
from mbus.errors import CRCError, FieldError, TruncatedError
from mbus.frame import (
    build_format_a,
    build_format_b,
    format_a_size,
    normalize,
    strip_format_a,
    strip_format_b,
)

# OMS Annex N.2.1 with its on-air CRCs (quoted in wmbusmeters issue #1207).
N21_WITH_CRC = bytes.fromhex(
    "2E44931578563412330333637A2A0020255923C95AAA26D1B2E7493BC2AD013EC4A6F6D3529B520EDFF0EA6DEFC9"
    "55B29D6D69EBF3EC8A")
N21 = bytes.fromhex(
    "2E4493157856341233037A2A0020255923C95AAA26D1B2E7493B013EC4A6F6D3529B520EDFF0EA6DEFC99D6D69EBF3")


def test_crc_check_value_and_annex_n_blocks():
    assert crc16(b"123456789") == 0xC2B7
    assert crc16(bytes.fromhex("2E449315785634123303")) == 0x3363
    assert crc16(bytes.fromhex("7A2A0020255923C95AAA26D1B2E7493B")) == 0xC2AD
    assert crc16(bytes.fromhex("013EC4A6F6D3529B520EDFF0EA6DEFC9")) == 0x55B2
    assert crc16(bytes.fromhex("9D6D69EBF3")) == 0xEC8A
    assert crc16(bytes.fromhex("EE449ACE0100008023 07".replace(" ", ""))) == 0xAABC


def test_format_a_annex_n_both_ways():
    assert build_format_a(N21) == N21_WITH_CRC
    assert strip_format_a(N21_WITH_CRC) == (N21, b"")
    assert len(N21_WITH_CRC) == format_a_size(N21[0])
    fb = normalize(N21_WITH_CRC)
    assert (fb.canonical, fb.frame_format, fb.trailing) == (N21, "A", b"")


def test_format_b_known_frame():
    # EN 13757-4 style format B example (ELL 8C + CI 78), as in lvogt/wireless-mbus-parser.
    raw = bytes.fromhex("1444AE0C7856341201078C2027780B134365877AC5")
    canonical, trailing = strip_format_b(raw)
    assert canonical == bytes.fromhex("1244AE0C7856341201078C2027780B13436587")
    assert trailing == b""
    assert build_format_b(canonical) == raw
    assert normalize(raw).frame_format == "B"


def test_bad_block2_crc_names_block_and_offset():
    bad = bytearray(N21_WITH_CRC)
    bad[20] ^= 0x01  # inside block 2
    with pytest.raises(CRCError) as info:
        strip_format_a(bytes(bad))
    assert "block 2" in str(info.value)
    assert info.value.offset == 12 + 16
    # auto-detection then falls back to "no CRCs" and the frame does not look canonical
    assert normalize(bytes(bad)).frame_format is None


def test_truncated_and_too_small():
    with pytest.raises(TruncatedError):
        strip_format_a(N21_WITH_CRC[:-1])
    with pytest.raises(FieldError):
        strip_format_a(bytes([5, 0x44, 0, 0, 0, 0]))
    with pytest.raises(TruncatedError):
        normalize(b"\x2e")
    fb = normalize(N21[:30])
    assert fb.truncated and fb.canonical == N21[:30]


def test_trailing_bytes_and_missing_l_field():
    fb = normalize(N21 + b"\x89")
    assert fb.canonical == N21 and fb.trailing == b"\x89"
    fb = normalize(N21[1:])  # starts at the C-field
    assert fb.l_field_added and fb.canonical == N21


frames = st.integers(min_value=9, max_value=245).flatmap(
    lambda n: st.binary(min_size=n, max_size=n).map(lambda body: bytes([n]) + body))


@given(frames)
def test_format_a_round_trip(canonical):
    assert strip_format_a(build_format_a(canonical)) == (canonical, b"")
    assert normalize(build_format_a(canonical)).canonical == canonical


@given(st.integers(min_value=10, max_value=251).flatmap(
    lambda n: st.binary(min_size=n, max_size=n).map(lambda body: bytes([n]) + body)))
def test_format_b_round_trip(canonical):
    raw = build_format_b(canonical)
    assert strip_format_b(raw) == (canonical, b"")
    assert raw[0] == len(raw) - 1


def _crc_bitwise(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x3D65) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc ^ 0xFFFF


@given(st.binary(max_size=300))
def test_crc_fast_paths_match_bitwise_definition(data):
    assert crc16(data) == _crc_bitwise(data)


def test_crc_16bit_table_built_after_enough_long_input_and_agrees():
    """The 16-bit table is built lazily, once long inputs add up to TABLE16_AFTER bytes: before and
    after that, every length (odd, even, short, long) gives the bitwise definition's CRC."""
    import random

    from mbus import crc

    rng = random.Random(12)
    samples = [bytes(rng.randrange(256) for _ in range(n)) for n in (*range(0, 60), 127, 128, 255, 300)]
    for data in samples:
        assert crc.crc16(data) == _crc_bitwise(data)
    block = bytes(range(200))
    for _ in range(crc.TABLE16_AFTER // len(block) + 1):
        assert crc.crc16(block) == _crc_bitwise(block)
    assert len(crc._TABLE16) == 1 << 16  # built by now
    for data in samples:
        assert crc.crc16(data) == _crc_bitwise(data)
