"""Frame builder: every dialogue frame of both directions, with and without security, decodes back
to its kind, its fields and its records; a published example is rebuilt byte-exact from a spec."""

from __future__ import annotations

import json

import pytest

from mbus.builder import KINDS, build, kind_of, merge, parse_assignments
from mbus.errors import FieldError
from mbus.keys import KeyStore
from mbus.telegram import decode

from .test_security import N21, N21_KEY

KEY = bytes(range(16))
METER = {"manufacturer": "ELS", "id": "12345678", "version": 0x33, "device_type": 7}
RECORDS = "0C13 78563412 046D32371F15"


def _decode(telegram: bytes, key: bytes = KEY):
    return decode(telegram, keys=KeyStore(default=key))


def test_annex_n21_rebuilt_from_spec():
    spec = dict(METER, device_type=3, kind="SND-NR", acc=0x2A, security=5, synchronous=True,
                data="0C1427048502 046D32371F15 02FD170000")
    assert build(spec, N21_KEY).telegram == N21


@pytest.mark.parametrize("security", [0, 5, 7])
@pytest.mark.parametrize("name", list(KINDS))
def test_every_kind_decodes_back(name, security):
    kind = KINDS[name]
    spec = dict(METER, kind=name, security=security, acc=0x42)
    if kind.carries_data:
        spec["data"] = RECORDS
    frame = build(spec, KEY)
    t = _decode(frame.telegram)
    assert not t.problems
    assert t.link.c_field == kind.c_field
    assert kind_of(t.link.c_field) is kind
    assert t.link.address.id == "12345678" and t.link.address.manufacturer_code == "ELS"
    assert t.decryption == ("ok" if security else "not_encrypted")
    assert t.tpl.acc == 0x42
    assert t.tpl.security_mode == security
    if kind.carries_data:
        assert [r.raw.hex() for r in t.records] == ["0c1378563412", "046d32371f15"]
    else:
        assert not t.records
    # direction decides the CI: uplink 0x7A / 0x8A, downlink 0x5A / 0x80
    assert t.tpl.ci == (0x7A if kind.carries_data else 0x8A) if kind.from_meter else (
        0x5A if kind.carries_data else 0x80)


@pytest.mark.parametrize("access,flags", [("none", (False, False)), ("no-window", (False, True)),
                                          ("limited", (True, False)), ("unlimited", (True, True))])
def test_access_bits_in_configuration_field(access, flags):
    t = _decode(build(dict(METER, kind="SND-NR", access=access, synchronous=True, data=RECORDS)).telegram)
    f = t.tpl.config.flags()
    assert (f["bidirectional"], f["accessibility"], f["synchronous"]) == (*flags, True)


def test_installation_request_offers_a_window_by_default():
    t = _decode(build(dict(METER, kind="SND-IR", data=RECORDS)).telegram)
    assert t.tpl.config.flags()["bidirectional"]


def test_ell_counter_mode_and_mode5_together():
    spec = dict(METER, kind="SND-NR", security=5, data=RECORDS, access="limited",
                ell={"ci": "0x8D", "encrypt": True, "session": 77})
    t = _decode(build(spec, KEY).telegram)
    assert t.decryption == "ok" and t.ell.ci == 0x8D and t.ell.cc & 0x80
    assert t.ell.session & ((1 << 29) - 1) == 77
    assert len(t.records) == 2
    assert _decode(build(spec, KEY).telegram, key=bytes(16)).decryption != "ok"


def test_mode7_counter_in_tpl_without_afl():
    spec = dict(METER, kind="SND-NR", security=7, counter=1234, data=RECORDS, afl={"mac": False})
    t = _decode(build(spec, KEY).telegram)
    assert t.decryption == "ok" and t.tpl.counter == 1234 and t.afl is None


def test_long_header_and_fcb_and_ack_from_meter():
    t = _decode(build(dict(METER, kind="RSP-UD", header="long", data=RECORDS)).telegram)
    assert t.tpl.ci == 0x72 and t.tpl.address.id == "12345678"
    assert build(dict(METER, kind="SND-UD", fcb=True, data=RECORDS)).telegram[1] == 0x73
    t = _decode(build(dict(METER, kind="ACK", direction="meter")).telegram)
    assert t.tpl.ci == 0x8A


def test_link_only_frame():
    frame = build(dict(METER, kind="SND-NKE", ci="none"))
    assert frame.telegram.hex() == "094093157856341233" + "07"


@pytest.mark.parametrize("change,field", [
    ({"kind": "SND-XX"}, "kind"),
    ({"colour": 1}, "colour"),
    ({"data": "0C1G"}, "data"),
    ({"security": 5, "data": RECORDS}, "key"),
    ({"security": 9}, "security"),
    ({"security": 5, "blocks": 0}, "blocks"),
    ({"access": "sometimes"}, "access"),
    ({"version": 300}, "version"),
    ({"version": "x"}, "version"),
    ({"direction": "meter"}, "direction"),
    ({"ell": {"ci": "0x8C", "encrypt": True}}, "ell.encrypt"),
    ({"ell": {"ci": "0x8E"}}, "ell.receiver"),
    ({"ci": "0x99"}, "ci"),
    ({"data": "00" * 260}, "L-field"),
])
def test_bad_specs_name_the_field(change, field):
    spec = merge(dict(METER, kind="SND-NKE"), change)
    with pytest.raises(FieldError) as err:
        build(spec)
    assert field in str(err.value)


def test_key_may_come_from_the_spec():
    t = _decode(build(dict(METER, kind="SND-IR", security=5, key=KEY.hex(), data=RECORDS)).telegram)
    assert t.decryption == "ok"


def test_set_options_nest_and_override():
    over = parse_assignments(["kind=CNF-IR", "ell.ci=0x8C", "ell.cc=0x80", "synchronous=true"])
    assert over == {"kind": "CNF-IR", "ell": {"ci": "0x8C", "cc": "0x80"}, "synchronous": True}
    spec = merge(json.loads(json.dumps(dict(METER, kind="SND-IR", ell={"acc": 5}))), over)
    assert spec["ell"] == {"acc": 5, "ci": "0x8C", "cc": "0x80"} and spec["kind"] == "CNF-IR"
    t = _decode(build(spec).telegram)
    assert t.link.c_field == 0x06 and t.ell.cc == 0x80 and t.ell.acc == 5
    with pytest.raises(FieldError, match="field=value"):
        parse_assignments(["novalue"])
