"""Extension points of the protocol stack (issue #11, scope 3): a security mode is one module plus
one registry line, a CI layer is one dataclass plus one registry line, and the records decoder
resyncs past a bad record by its declared length."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path

import pytest

from mbus import explain, layers, security
from mbus.builder import build
from mbus.dll import Address
from mbus.errors import FieldError, TruncatedError
from mbus.keys import KeyStore
from mbus.records import BadRecord, build_record, decode_records, iter_results, parse_records
from mbus.telegram import decode, encode
from mbus.tpl import TransportLayer

REPO = Path(__file__).resolve().parent.parent
KEY = bytes(range(16))
OTHER_KEY = bytes(range(1, 17))

# 0C13: volume, 8-digit BCD, 10^-3 m3; 046D: date-time F; 02FD17: error flags, 16 bit
VOLUME = bytes.fromhex("0C1378563412")
DATETIME = bytes.fromhex("046D32371F15")
FLAGS = bytes.fromhex("02FD170400")


@pytest.fixture
def clean_registries():
    """Whatever a test registers is gone afterwards."""
    saved = (dict(security.TPL_MODES), dict(security.ELL_MODES), dict(layers.LAYERS))
    yield
    for table, before in zip((security.TPL_MODES, security.ELL_MODES, layers.LAYERS), saved, strict=True):
        table.clear()
        table.update(before)


# ----------------------------------------------------------------------------------------------
# a security mode: one module + one registry line

DUMMY_MODE_MODULE = '''
"""Test security mode 20: AES-128-CBC (cryptography) with IV = 16 x ACC, verified by 2F2F."""

from mbus.security import SecurityMode, Verification
from mbus.security.common import decrypt_cbc_part, encrypt_cbc_part


class Mode20(SecurityMode):
    number = 20
    name = "test: AES-128-CBC, IV = 16 x ACC"

    def decrypt(self, key, ctx, data):
        return decrypt_cbc_part(key, bytes([ctx.acc]) * 16, ctx.encrypted_blocks, data, "mode 20")

    def encrypt(self, key, ctx, plain):
        return encrypt_cbc_part(key, bytes([ctx.acc]) * 16, ctx.encrypted_blocks, plain, "mode 20")

    def verify(self, key, ctx, afl, tpdu):
        return Verification(verified="test check passed")


SECURITY_MODE = Mode20()
'''


def _load_module(tmp_path: Path, name: str, text: str):
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(text))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _spec(security_mode: int) -> dict:
    return {"kind": "SND-NR", "manufacturer": "ELS", "id": "12345678", "version": 0x33, "device_type": 7,
            "security": security_mode, "acc": 0x2A, "data": (VOLUME + DATETIME).hex()}


def test_security_mode_is_one_module_plus_one_registry_line(tmp_path, clean_registries):
    module = _load_module(tmp_path, "mode20", DUMMY_MODE_MODULE)
    with pytest.raises(FieldError, match="security 20"):
        build(_spec(20), key=KEY)  # not registered yet: the builder refuses it

    security.register(module.SECURITY_MODE)  # the one registry line

    telegram = build(_spec(20), key=KEY).telegram
    # link header 10 bytes, then CI 7A ACC STS CF(2): CF = mode 20, one encrypted block
    assert telegram[10:15] == bytes.fromhex("7A2A00") + bytes.fromhex("1014")
    plain = b"\x2f\x2f" + VOLUME + DATETIME
    plain += b"\x2f" * (16 - len(plain))
    assert telegram[15:] != plain  # encrypted on air

    t = decode(telegram, keys=KeyStore(default=KEY))
    assert t.problems == ()
    assert t.decryption == "ok"
    assert t.security_mode == 20
    assert t.payload == plain
    assert "mode 20, 2F2F verified" in t.message and "test check passed" in t.message
    assert [(r.raw, r.quantity, r.value) for r in t.records] == [
        (VOLUME, "volume", Decimal("12345.678")), (DATETIME, "datetime", None)]
    assert t.records[1].text == "2008-05-31T23:50"
    assert t.tpl.config.describe().startswith("mode 20 (test: AES-128-CBC, IV = 16 x ACC), 1 encrypted blocks")
    assert t.encode(KEY) == telegram  # build . parse = id

    wrong = decode(telegram, keys=KeyStore(default=OTHER_KEY))
    assert wrong.decryption == "wrong_key" and wrong.records == ()


def test_unregistered_mode_number_stays_reserved(clean_registries):
    plain = build(_spec(0), key=None).telegram
    # the same frame with CF naming mode 20: no module for it, so the data is NOT taken as plaintext
    # (issue 14: reserved / manufacturer modes gave junk records); the mode is named, no records
    reserved = plain[:13] + bytes.fromhex("0014") + plain[15:]
    t = decode(reserved)
    assert t.decryption == "unsupported_mode"
    assert "security mode 20 (reserved / manufacturer use) is not supported" in t.message
    assert t.records == () and t.payload is None


def test_registering_a_taken_mode_number_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        security.register(security.TPL_MODES[5])


def test_ell_ctr_and_tpl_modes_share_one_api():
    modes = [security.ELL_MODES[1], security.TPL_MODES[5], security.TPL_MODES[7]]
    assert all(isinstance(m, security.SecurityMode) for m in modes)
    address = Address.make("ELS", "12345678", 0x33, 7)
    ell_ctx = security.SecurityContext(address=address, cc=0x20, session=0x20000001)
    tpl_ctx = security.SecurityContext(address=address, acc=0x2A, encrypted_blocks=1, counter=1)
    plain = b"\x2f\x2f" + VOLUME + b"\x2f" * 8
    for mode, ctx in zip(modes, (ell_ctx, tpl_ctx, tpl_ctx), strict=True):
        sealed = mode.encrypt(KEY, ctx, plain)
        assert sealed != plain
        assert mode.decrypt(KEY, ctx, sealed) == plain


# ----------------------------------------------------------------------------------------------
# a CI layer: one dataclass + one registry line


@dataclass(frozen=True, slots=True, kw_only=True)
class TagLayer:
    """Test layer, CI 0x42: a 2-byte tag and the length of the rest (computed when building)."""

    tag: int
    length: int = 0
    ci = 0x42
    name = "TAG"

    @classmethod
    def split(cls, data: bytes):
        if len(data) < 4:
            raise TruncatedError("tag layer needs 4 bytes", layer="TAG", offset=len(data))
        return cls(tag=int.from_bytes(data[1:3], "little"), length=data[3]), data[4:]

    def to_bytes(self) -> bytes:
        return bytes((self.ci,)) + self.tag.to_bytes(2, "little") + bytes((self.length,))

    def fields(self, offset: int):
        return [(offset, 1, "CI", "0x42 test tag layer"), (offset + 1, 2, "tag", f"0x{self.tag:04X}"),
                (offset + 3, 1, "length", str(self.length))]

    def to_json(self) -> dict:
        return {"ci": self.ci, "tag": self.tag, "length": self.length}


def _open_tag(layer: TagLayer, st) -> None:
    if layer.length != len(st.buf) - st.pos:
        st.problems.append(f"tag layer announces {layer.length} bytes, {len(st.buf) - st.pos} follow")


def _seal_tag(layer: TagLayer, inner: bytes, es):
    return replace(layer, length=len(inner)), inner


TAG_KIND = layers.LayerKind(name="TAG", split=TagLayer.split, open=_open_tag, seal=_seal_tag)


def test_ci_layer_is_one_dataclass_plus_one_registry_line(clean_registries):
    address = Address.make("ELS", "12345678", 0x33, 7)
    tpl = TransportLayer(ci=0x7A, acc=0x2A, status=0, cf=0)
    before = encode(c_field=0x44, address=address, layers=[TagLayer(tag=0xBEEF), tpl], payload=VOLUME)
    unknown = decode(before)  # nobody registered 0x42: an unknown CI, kept raw, with a problem
    assert unknown.ci_chain == [0x42]
    assert unknown.problems == ("unknown CI 0x42 at byte 10; the rest is kept raw",)
    assert unknown.layers[0].known is False

    layers.register(0x42, TAG_KIND)  # the one registry line

    telegram = encode(c_field=0x44, address=address, layers=[TagLayer(tag=0xBEEF), tpl], payload=VOLUME)
    # the seal hook computed the length of what follows the tag layer: 7A 2A 00 0000 + 6 bytes
    assert telegram[10:] == bytes.fromhex("42EFBE0B" "7A2A000000") + VOLUME
    assert telegram[0] == len(telegram) - 1
    t = decode(telegram)
    assert t.problems == ()
    assert t.ci_chain == [0x42, 0x7A]
    assert t.layers[0] == TagLayer(tag=0xBEEF, length=11)
    assert t.layer_offsets == (10, 14)
    assert [(r.raw, r.value) for r in t.records] == [(VOLUME, Decimal("12345.678"))]
    assert t.encode() == telegram
    rows = [(row.layer, row.field, row.data.hex()) for row in explain.rows(t)]
    assert ("TAG", "tag", "efbe") in rows and ("TAG", "length", "0b") in rows

    cut = bytearray(telegram)
    cut[13] = 5  # the open hook checks the announced length
    assert decode(bytes(cut)).problems == ("tag layer announces 5 bytes, 11 follow",)
    cut_short = decode(telegram[:13]).problems  # the split's offset is made absolute (10 + 3)
    assert "TAG byte 13: tag layer needs 4 bytes" in cut_short


def test_registering_a_taken_ci_is_refused():
    with pytest.raises(ValueError, match="0x7A is already registered"):
        layers.register(0x7A, TAG_KIND)


# ----------------------------------------------------------------------------------------------
# records resync

ELEVEN_DIFES = bytes.fromhex("84" + "80" * 10 + "00" + "13" + "01020304")  # 11 DIFEs: limit is 10
ELEVEN_VIFES = bytes.fromhex("02" + "93" + "F4" * 10 + "74" + "0500")  # 11 VIFEs: limit is 10


def test_records_resync_after_a_record_with_too_many_difes():
    apl = VOLUME + ELEVEN_DIFES + DATETIME + FLAGS
    result = decode_records(apl)
    assert [(r.offset, r.raw) for r in result.records] == [(0, VOLUME), (23, DATETIME), (29, FLAGS)]
    assert result.records[0].value == Decimal("12345.678")
    assert result.records[1].text == "2008-05-31T23:50"
    assert (result.records[2].quantity, result.records[2].value) == ("error_flags", Decimal(4))
    assert len(result.errors) == 1
    assert str(result.errors[0]) == ("APL byte 17: more than 10 DIFEs; skipped the record's 17 declared bytes "
                                     "and went on")
    bad = [x for x in iter_results(apl) if isinstance(x, BadRecord)]
    assert [(b.offset, b.raw, b.resynced) for b in bad] == [(6, ELEVEN_DIFES, True)]
    recs, err = parse_records(apl)
    assert len(recs) == 3 and str(err) == str(result.errors[0])


def test_records_resync_after_a_record_with_too_many_vifes():
    apl = ELEVEN_VIFES + VOLUME
    result = decode_records(apl)
    assert [(r.offset, r.raw) for r in result.records] == [(len(ELEVEN_VIFES), VOLUME)]
    assert "more than 10 VIFEs" in str(result.errors[0])


def test_records_stop_when_the_length_is_unknowable():
    reserved_lvar = bytes.fromhex("0D13F7") + b"\x00" * 8  # LVAR F7 is reserved: no length
    result = decode_records(VOLUME + reserved_lvar + DATETIME)
    assert [r.raw for r in result.records] == [VOLUME]
    assert [str(e) for e in result.errors] == ["APL byte 8: LVAR 0xF7 is reserved"]
    truncated = decode_records(VOLUME + DATETIME[:4])
    assert [r.raw for r in truncated.records] == [VOLUME]
    assert truncated.errors[0].reason == "truncated"


def test_telegram_with_a_corrupt_record_in_the_middle_keeps_the_rest():
    data = VOLUME + ELEVEN_DIFES + DATETIME + FLAGS
    telegram = build({"kind": "SND-NR", "manufacturer": "ELS", "id": "12345678", "data": data.hex()}).telegram
    t = decode(telegram)
    assert t.records_outcome == "error"
    assert [r.raw for r in t.records] == [VOLUME, DATETIME, FLAGS]
    assert [r.offset for r in t.records] == [0, 23, 29]
    assert t.problems == ("APL byte 17: more than 10 DIFEs; skipped the record's 17 declared bytes and went on",)
    shown = b"".join(row.data for row in explain.rows(t) if row.field == "data")
    assert shown == ELEVEN_DIFES  # the bad record's bytes are still shown, between the good ones


def test_build_record_round_trip_around_a_bad_one():
    good = build_record(vib=bytes.fromhex("13"), raw=-5, coding="int32", storage=3)
    result = decode_records(good + ELEVEN_DIFES + good)
    assert [r.raw for r in result.records] == [good, good]
    assert [r.value for r in result.records] == [Decimal("-0.005")] * 2


# ----------------------------------------------------------------------------------------------
# mbus stays pure bytes


def test_mbus_stack_imports_no_numpy_and_nothing_outside_mbus():
    code = ("import sys; import mbus.telegram, mbus.layers, mbus.security, mbus.wired, mbus.builder, "
            "mbus.explain; bad = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('numpy', 'scipy', 'sdr', 'dsp', 'flowgraphs')); print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "[]"
