"""Issue 14 security modes: mode 10 (AES-CCM, profile D), DES modes 2 and 3, every mode this stack
cannot decrypt named as unsupported (no records from undecrypted bytes), manufacturer-specific CIs,
and the opener hook vendor decoders use."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from mbus import security
from mbus.builder import build
from mbus.errors import MACMismatchError
from mbus.keys import KeyStore
from mbus.security import SecurityContext, des, manufacturer, mode10
from mbus.security.mode7 import kdf_a
from mbus.telegram import decode

# wmbusmeters simulations/simulation_kamwater_ccm_tag_ok.txt / _bad.txt (PR #2085): a Kamstrup water
# meter in security mode 10; key from tests/test_ccm_tag.sh. The bad one has a corrupted tag.
M10_OK = bytes.fromhex(
    "4544372c060382533c168c20307a3010ff2a10018c570e006da7632471f42b0a3ceccd461353573ed02b87118bc5ffe982"
    "f7f00a0274543bc51938f8b9c8bb8928114d60788a")
M10_BAD = bytes.fromhex(
    "4544372c060382533c168c20307a3010ff2a1001dc2e0d00cf1a85672e138d6c0af61338403fdeb528ab264e2c61e41b06"
    "073550aa296ae9815c8a7a9868ec6c624cfbbcecb3")
M10_KEY = bytes.fromhex("BF902DD6DFADAFE83E4AE6832B5FA14C")
M10_PLAIN = bytes.fromhex("046D1C2A2F3C04150000000002FF25010406FF1BFFFFFFFFFFFF446D0020213C441500000000")

# wmbusmeters drivers/src/actislink.xmq: DES (mode 2), key 0102030405060708, total 1 m3
DES2 = bytes.fromhex("1E468B050100000004077A01001002BBD1EAFD0222F871CB70DA16C78AE098")
DES_KEY = bytes.fromhex("0102030405060708")

# wmbusmeters drivers/src/hydrus.xmq: a Diehl real-data frame (CF 0x7D10, "mode 29") logged descrambled
HYDRUS = bytes.fromhex("1E4424238B07797389607A8F00107D041312170100426CBF23441344100100")

VOLUME = bytes.fromhex("0C1378563412")  # 12345.678 m3


def store(key: bytes) -> KeyStore:
    return KeyStore(default=key)


# --- mode 10 --------------------------------------------------------------------------------------

def test_mode10_published_telegram_decrypts_byte_exact_and_rebuilds():
    t = decode(M10_OK, keys=store(M10_KEY))
    assert t.problems == ()
    assert t.decryption == "ok" and t.security_mode == 10
    assert "AES-CCM tag verified" in t.message
    assert t.payload == M10_PLAIN
    assert [(r.quantity, r.text if r.value is None else r.value) for r in t.records][:2] == [
        ("datetime", "2025-12-15T10:28"), ("volume", Decimal("0.0"))]
    assert len(t.records) == 6
    assert t.tpl.cfe == 0x0110 and t.tpl.counter == 0x000E578C
    assert t.encode(M10_KEY) == M10_OK  # build . parse = id, tag included


def test_mode10_key_nonce_and_aad_are_the_digest_values():
    t = decode(M10_OK, keys=store(M10_KEY))
    ctx = SecurityContext(address=t.link.address, counter=t.tpl.counter, header=t.tpl.to_bytes(), cfe=t.tpl.cfe,
                          encrypted_bytes=0xFF)
    assert kdf_a(M10_KEY, 0, ctx.counter, ctx.address.id_bytes).hex().upper() == "B3FAAED774AD70EAA3135A5B31242D13"
    assert mode10.nonce(ctx) == bytes.fromhex("372C060382533C1600000E578C")
    assert mode10.aad(ctx) == bytes.fromhex("7A3010FF2A1001")  # CI .. CFE, not the counter
    assert mode10.tag_size(ctx.cfe) == 8
    assert mode10.SECURITY_MODE.encrypt(M10_KEY, ctx, M10_PLAIN) == M10_OK[24:]


def test_mode10_bad_tag_is_mac_mismatch_with_no_records():
    t = decode(M10_BAD, keys=store(M10_KEY))
    assert t.decryption == "mac_mismatch"
    assert t.payload is None and t.records == () and t.records_outcome == "not_decrypted"
    assert "tag" in t.message and M10_KEY.hex() not in t.message.lower()


@pytest.mark.parametrize("where", [13 + 2, 13 + 5, 13 + 8, 30, len(M10_OK) - 1])  # STS, CF, counter, data, tag
def test_mode10_any_changed_byte_fails_the_tag(where):
    bad = bytearray(M10_OK)
    bad[where] ^= 0x01
    t = decode(bytes(bad), keys=store(M10_KEY))
    assert t.decryption == "mac_mismatch" and t.records == ()


def test_mode10_wrong_key_is_mac_mismatch():
    t = decode(M10_OK, keys=store(bytes(16)))
    assert t.decryption == "mac_mismatch" and t.records == ()
    with pytest.raises(MACMismatchError):
        decode(M10_OK, keys=store(bytes(16)), strict=True)


def test_mode10_partial_encryption_is_named_unsupported():
    partial = M10_OK[:16] + bytes([0x20]) + M10_OK[17:]  # CF low byte 0x20: 32 encrypted bytes
    t = decode(partial, keys=store(M10_KEY))
    assert t.decryption == "unsupported_mode" and "partial encryption" in t.message and t.records == ()


@pytest.mark.parametrize("tag", [4, 8, 12, 16])
def test_mode10_build_encrypt_decrypt_round_trip(tag):
    spec = {"kind": "SND-NR", "manufacturer": "KAM", "id": "76348799", "version": 0x1B, "device_type": 0x16,
            "security": 10, "counter": 0x1234, "tag": tag, "acc": 0x2A, "data": VOLUME.hex()}
    frame = build(spec, key=M10_KEY).telegram
    assert frame[-(len(VOLUME) + tag):-tag] != VOLUME  # encrypted on air
    t = decode(frame, keys=store(M10_KEY))
    assert t.decryption == "ok" and t.payload == VOLUME
    assert [(r.quantity, r.value, r.unit) for r in t.records] == [("volume", Decimal("12345.678"), "m3")]
    assert t.encode(M10_KEY) == frame
    assert decode(frame, keys=store(bytes(16))).decryption == "mac_mismatch"


# --- DES ------------------------------------------------------------------------------------------

def test_des_mode2_published_vector():
    t = decode(DES2, keys=store(DES_KEY))
    assert t.decryption == "ok" and t.security_mode == 2 and "2F2F verified" in t.message
    assert t.payload == bytes.fromhex("2F2F0413E8030000") + b"\x2f" * 8
    assert [(r.quantity, r.value, r.unit) for r in t.records] == [("volume", Decimal("1.000"), "m3")]
    assert t.encode(DES_KEY) == DES2


def test_des_wrong_key_and_wrong_key_size():
    t = decode(DES2, keys=store(bytes.fromhex("1102030405060708")))  # (bit 0 of each byte is DES parity)
    assert t.decryption == "wrong_key" and t.records == ()
    t = decode(DES2, keys=store(bytes(16)))  # an AES key for a DES meter: named, no traceback
    assert t.decryption == "wrong_key" and "takes 8" in t.message
    n21 = bytes.fromhex("2E4493157856341233037A2A0020255923C95AAA26D1B2E7493B013EC4A6F6D3529B520EDFF0EA6DEFC99D"
                        "6D69EBF3")
    t = decode(n21, keys=store(DES_KEY))  # and a DES key for an AES meter
    assert t.decryption == "wrong_key" and "takes 16" in t.message


def test_des_date_g_is_en13757_type_g():
    assert des.date_g(dt.date(2021, 3, 31)) == bytes.fromhex("BF23")  # the hydrus vector's 426C BF23


def test_des_mode3_needs_the_date_and_round_trips_with_it():
    address = decode(DES2).link.address
    ctx = SecurityContext(address=address, encrypted_blocks=1, date=dt.date(2026, 12, 1))
    plain = b"\x2f\x2f" + VOLUME + b"\x2f" * 8
    sealed = des.MODE_3.encrypt(DES_KEY, ctx, plain)
    assert sealed != plain and des.MODE_3.decrypt(DES_KEY, ctx, sealed) == plain
    assert des.MODE_3.iv(ctx) == address.id_bytes + address.manufacturer.to_bytes(2, "little") + des.date_g(ctx.date)
    mode3 = DES2[:14] + bytes([0x03]) + DES2[15:]
    t = decode(mode3, keys=store(DES_KEY))
    assert t.decryption == "unsupported_mode" and "needs the day" in t.message and t.records == ()


def test_des_mode2_builder_round_trip():
    spec = {"kind": "SND-NR", "manufacturer": "ALK", "id": "00000001", "version": 4, "device_type": 7,
            "security": 2, "data": VOLUME.hex()}
    frame = build(spec, key=DES_KEY).telegram
    t = decode(frame, keys=store(DES_KEY))
    assert t.decryption == "ok" and t.records[0].value == Decimal("12345.678")
    assert t.encode(DES_KEY) == frame


# --- modes this stack cannot decrypt -------------------------------------------------------------

UNSUPPORTED = [n for n in range(32) if n not in (0, 2, 3, 5, 7, 10)]


@pytest.mark.parametrize("number", UNSUPPORTED)
def test_every_other_mode_is_named_and_gives_no_records(number):
    plain = build({"kind": "SND-NR", "manufacturer": "ELS", "id": "12345678", "data": VOLUME.hex()}).telegram
    frame = plain[:14] + bytes([number]) + plain[15:]  # CF high byte: mode number, the data stays readable
    for keys in (None, store(bytes(16))):
        t = decode(frame, keys=keys)
        assert t.decryption == "unsupported_mode", number
        assert f"security mode {number} ({security.mode_name(number)}) is not supported" in t.message
        assert t.records == () and t.payload is None


def test_mode9_message_names_aes_gcm():
    plain = build({"kind": "SND-NR", "manufacturer": "ELS", "id": "12345678", "data": VOLUME.hex()}).telegram
    t = decode(plain[:14] + b"\x09" + plain[15:])
    assert "security mode 9 (AES-GCM) is not supported" in t.message


def test_diehl_real_data_in_the_clear_only_with_its_checksum():
    t = decode(HYDRUS)
    assert t.decryption == "not_encrypted" and t.in_clear
    assert any("checksum" in n for n in t.notes)
    assert [r.value for r in t.records if r.quantity == "volume"] == [Decimal("71.442"), Decimal("69.7")]
    scrambled = HYDRUS[:-2] + b"\x02\x00"  # checksum no longer matches: scrambled data is not parsed
    t = decode(scrambled)
    assert t.decryption == "unsupported_mode" and t.records == ()


# --- manufacturer-specific CIs and the opener hook -------------------------------------------------

def test_manufacturer_specific_ci_without_vendor_decoder():
    frame = bytes.fromhex("0F44" "3412" "78563412" "01" "07" "A3" "0102030405")  # manufacturer code 0x1234
    frame = bytes([len(frame) - 1]) + frame[1:]
    t = decode(frame)
    assert t.decryption == "manufacturer_specific" and t.records == ()
    assert "manufacturer-specific CI 0xA3" in t.message


def test_manufacturer_specific_ci_served_by_a_vendor_decoder_keeps_not_encrypted(wireless_vectors):
    row = next(r for r in wireless_vectors if r["id"] == "wl-wmbusmeters-0064")  # Techem compact V, CI 0xA1
    t = decode(bytes.fromhex(row["canonical_hex"]))
    assert t.decryption == "not_encrypted" and t.records


@pytest.fixture
def opener_registry():
    saved = list(manufacturer.OPENERS)
    yield
    manufacturer.OPENERS[:] = saved


def test_an_opener_registered_for_a_vendor_mode_is_used(opener_registry):
    plain = build({"kind": "SND-NR", "manufacturer": "ELS", "id": "12345678", "data": VOLUME.hex()}).telegram
    scrambled = plain[:14] + bytes([21]) + bytes(b ^ 0x55 for b in plain[15:])
    seen = []

    def xor55(frame: manufacturer.ManufacturerFrame):
        seen.append(repr(frame))
        if frame.link_address.manufacturer_code != "ELS" or frame.mode != 21:
            return None
        return manufacturer.Opened(payload=bytes(b ^ 0x55 for b in frame.data), how="test xor, verified")

    manufacturer.register_opener(xor55)
    with pytest.raises(ValueError, match="already registered"):
        manufacturer.register_opener(xor55)
    t = decode(scrambled, keys=store(M10_KEY))
    assert t.decryption == "ok" and "test xor, verified" in t.message
    assert [r.value for r in t.records] == [Decimal("12345.678")]
    assert M10_KEY.hex() not in seen[0]  # the frame's repr never shows the key
