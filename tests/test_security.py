"""Security modes against published examples (OMS Annex N, CEN/TR 17167 F.3, exmbus ELL)."""

from __future__ import annotations

import json

import pytest

from mbus.errors import MACMismatchError, WrongKeyError
from mbus.keys import KeyStore
from mbus.security import ell_ctr, mode5, mode7
from mbus.telegram import decode

N21 = bytes.fromhex(
    "2E4493157856341233037A2A0020255923C95AAA26D1B2E7493B013EC4A6F6D3529B520EDFF0EA6DEFC99D6D69EBF3")
N21_KEY = bytes.fromhex("0102030405060708090A0B0C0D0E0F11")
N21_PLAIN = bytes.fromhex("2F2F0C1427048502046D32371F1502FD1700002F2F2F2F2F2F2F2F2F2F2F2F2F")

F3 = bytes.fromhex(
    "530824484433221103378E80753A63665544330A31900F002C25B30A0000AF5D74DF73A600D9727856341293153303"
    "75002007109058475F4BC91DF878B80A1B0F98B629024AAC727942BFC549233C0140829B93")
F3_KEY = bytes(range(16))

N53 = bytes.fromhex(
    "304493444433221155378C00757288776655934455080004100500DFE2A782146D1513581CD2F83F39040CFD1078563412")

ELL = bytes.fromhex(
    "35442D2C1131342733028D20E9603A102008C67C819AAE99B4DE753AA136EF64917ED9D8B2E2D35840BDEA173B8FE14CCE3F1406B7CF")
ELL_KEY = bytes.fromhex("0102030405060708090A0B0C0D0E0F10")

MODE10 = bytes.fromhex("4544372C060382533C168C20307A3010FF2A10018C570E00") + bytes(46)


def keys(k: bytes) -> KeyStore:
    return KeyStore(default=k)


def test_mode5_annex_n21():
    t = decode(N21, keys=keys(N21_KEY))
    assert t.decryption == "ok"
    assert t.payload == N21_PLAIN
    assert mode5.iv(type("C", (), {"address": t.link.address, "acc": 0x2A})()) == bytes.fromhex(
        "93157856341233032A2A2A2A2A2A2A2A")
    assert (t.security_mode, t.access_number, t.ci_chain) == (5, 0x2A, [0x7A])


def test_mode5_partial_encryption_long_header_iv_n53():
    t = decode(N53, keys=keys(F3_KEY))
    assert t.decryption == "ok"
    assert t.ci_chain == [0x8C, 0x72]
    assert t.meter.id == "55667788" and t.link.address.id == "11223344"
    assert t.payload == bytes.fromhex("2F2F0B6E341200426CFE044B6E563402") + bytes.fromhex("0CFD1078563412")
    assert t.access_number == 0x00  # the TPL ACC, not the ELL's 0x75


def test_mode7_kdf_mac_and_plaintext_f3():
    assert mode7.kdf_a(F3_KEY, 0x00, 0x0AB3, bytes.fromhex("78563412")).hex().upper() == \
        "ECCF39D475D730B8284FDFDC1995D52F"
    assert mode7.kdf_a(F3_KEY, 0x01, 0x0AB3, bytes.fromhex("78563412")).hex().upper() == \
        "C9CD19FF5A9AAD5A6BBDA13BD2C4C7AD"
    t = decode(F3, keys=keys(F3_KEY))
    assert t.decryption == "ok", t.message
    assert "AFL MAC verified" in t.message
    assert t.payload == N21_PLAIN
    assert t.ci_chain == [0x8E, 0x90, 0x72]
    assert t.afl.mcr == 0x0AB3 and t.afl.mac.hex() == "af5d74df73a600d9"


def test_mode7_tampered_ciphertext_after_block_one_is_mac_mismatch():
    bad = bytearray(F3)
    bad[-1] ^= 0x01  # last ciphertext byte: block 1 (2F2F) still decrypts, the MAC does not verify
    t = decode(bytes(bad), keys=keys(F3_KEY))
    assert t.decryption == "mac_mismatch"
    assert "12345678" in t.message
    with pytest.raises(MACMismatchError):
        decode(bytes(bad), keys=keys(F3_KEY), strict=True)


def test_wrong_key_is_named_for_each_scheme():
    wrong = bytes(16)
    for frame in (N21, F3, N53, ELL):
        t = decode(frame, keys=keys(wrong))
        assert t.decryption == "wrong_key", (frame.hex(), t.message)
        assert t.payload is None
        assert "wrong key" in t.message
    with pytest.raises(WrongKeyError):
        decode(N21, keys=keys(wrong), strict=True)


def test_no_key_and_unsupported_mode():
    t = decode(N21)
    assert t.decryption == "no_key" and "no key for meter 12345678" in t.message
    # mode 10 is decrypted since issue 14: a wrong key fails its CCM tag; mode 9 stays unsupported
    t = decode(MODE10, keys=keys(bytes(16)))
    assert t.decryption == "mac_mismatch" and t.records == ()
    mode9 = MODE10[:17] + bytes([0x29]) + MODE10[18:]  # CF high byte: mode 9
    t = decode(mode9, keys=keys(bytes(16)))
    assert t.decryption == "unsupported_mode"
    assert "mode 9" in t.message


def test_ell_ctr_decrypts_and_checks_payload_crc():
    t = decode(ELL, keys=keys(ELL_KEY))
    assert t.decryption == "ok"
    assert t.ell.encryption == 1 and t.ell.session_minutes == 66470
    assert t.payload[:3] == bytes.fromhex("040500") or t.ci_chain == [0x8D, 0x78]
    assert t.ci_chain == [0x8D, 0x78]
    assert ell_ctr.icb(t.link.address.dll_bytes(), 0x20, t.ell.session).hex() == \
        "2d2c11313427330220603a1020000000"


def test_ell_ctr_ignores_hop_and_repeat_bits():
    relayed = bytearray(ELL)
    relayed[11] |= 0x12  # a repeater set H and R
    t = decode(bytes(relayed), keys=keys(ELL_KEY))
    assert t.decryption == "ok"


def test_truncated_inside_encrypted_blocks():
    t = decode(N21[:-20], keys=keys(N21_KEY))
    assert t.decryption == "truncated"


def test_keys_never_appear_in_output():
    t = decode(N21, keys=keys(N21_KEY))
    text = json.dumps(t.to_json()) + repr(t) + repr(keys(N21_KEY))
    assert N21_KEY.hex() not in text.lower()


def test_key_file(tmp_path):
    path = tmp_path / "meters.keys"
    path.write_text("# id  manufacturer  key\n12345678 ELS 0102030405060708090A0B0C0D0E0F11\n"
                    "55667788, 000102030405060708090A0B0C0D0E0F  # HCA\n")
    store = KeyStore.from_file(path)
    assert decode(N21, keys=store).decryption == "ok"
    assert decode(N53, keys=store).decryption == "ok"
    # F3's meter is ELS 12345678 too, so the file's key is tried and named wrong
    assert decode(F3, keys=store).decryption == "wrong_key"
    assert decode(bytes.fromhex("35442D2C1131342733028D20E9603A1020") + bytes(36), keys=store).decryption == "no_key"
    path.write_text("12345678 ELS 0102\n")
    with pytest.raises(ValueError, match=r"meters.keys:1: .*32 hex digits"):
        KeyStore.from_file(path)
