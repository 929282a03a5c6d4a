"""Build and parse are inverses: published examples built from their fields, every clean vector
parsed then rebuilt, and random layer stacks through encode -> decode."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mbus.afl import AuthFragLayer
from mbus.dll import Address
from mbus.ell import ExtendedLinkLayer
from mbus.keys import KeyStore
from mbus.telegram import decode, encode
from mbus.tpl import TransportLayer

from .conftest import even_hex
from .test_security import ELL, ELL_KEY, F3, F3_KEY, N21, N21_KEY, N21_PLAIN, N53


def test_annex_n21_built_from_fields():
    built = encode(c_field=0x44, address=Address.make("ELS", "12345678", 0x33, 0x03),
                   layers=[TransportLayer(ci=0x7A, acc=0x2A, status=0x00, cf=0x2520)],
                   payload=N21_PLAIN, key=N21_KEY)
    assert built == N21


def test_cen_f3_mode7_built_from_fields():
    meter = Address.make("ELS", "12345678", 0x33, 0x03)
    layers = [
        ExtendedLinkLayer(ci=0x8E, cc=0x80, acc=0x75, receiver=Address.make("XYZ", "33445566", 0x0A, 0x31)),
        AuthFragLayer(fcl=0x2C00, mcl=0x25, mcr=0x0AB3),  # MAC computed by encode
        TransportLayer(ci=0x72, address=meter, acc=0x75, status=0x00, cf=0x0720, cfe=0x10),
    ]
    built = encode(c_field=0x08, address=Address.make("RAD", "11223344", 0x03, 0x37), layers=layers,
                   payload=N21_PLAIN, key=F3_KEY)
    assert built == F3


def test_annex_n53_partial_encryption_built_from_fields():
    plain = bytes.fromhex("2F2F0B6E341200426CFE044B6E563402") + bytes.fromhex("0CFD1078563412")
    layers = [ExtendedLinkLayer(ci=0x8C, cc=0x00, acc=0x75),
              TransportLayer(ci=0x72, address=Address.make("QDS", "55667788", 0x55, 0x08), acc=0x00,
                             status=0x04, cf=0x0510)]
    built = encode(c_field=0x44, address=Address.make("QDS", "11223344", 0x55, 0x37), layers=layers,
                   payload=plain, key=F3_KEY)
    assert built == N53


def test_ell_ctr_example_rebuilt():
    t = decode(ELL, keys=KeyStore(default=ELL_KEY))
    assert t.encode(ELL_KEY) == ELL


def test_every_clean_vector_rebuilds_identically(wireless_vectors):
    rebuilt = 0
    for row in wireless_vectors:
        key = bytes.fromhex(row["key"]) if row.get("key") and len(row["key"]) == 32 else None
        raw = even_hex(row["hex"]) if row.get("has_crc") else even_hex(row["canonical_hex"])
        t = decode(raw, keys=KeyStore(default=key) if key else None)
        if t.problems or t.decryption not in ("ok", "not_encrypted"):
            continue
        assert t.encode(key) == t.canonical, row["id"]
        rebuilt += 1
    assert rebuilt >= 200


# Records from the Annex N examples: volume BCD, date-time F, error flags, HCA units, date G.
RECORDS = [bytes.fromhex(h) for h in ("0C1427048502", "046D32371F15", "02FD170000", "0B6E341200", "426CFE04",
                                        "4B6E563402", "0CFD1078563412", "0413BC000000")]

# --- random stacks ---------------------------------------------------------------------------

addresses = st.builds(
    Address, manufacturer=st.integers(0x0421, 0x6B5A), id_bytes=st.binary(min_size=4, max_size=4),
    version=st.integers(0, 255), device_type=st.integers(0, 255))


@st.composite
def stacks(draw):
    link = draw(addresses)
    key = draw(st.binary(min_size=16, max_size=16))
    layers = []
    ell_kind = draw(st.sampled_from([None, 0x8C, 0x8D, 0x8E, 0x8F]))
    if ell_kind is not None:
        session = None
        if ell_kind in (0x8D, 0x8F):
            session = draw(st.sampled_from([0, 1])) << 29 | draw(st.integers(0, (1 << 29) - 1))
        receiver = draw(addresses) if ell_kind in (0x8E, 0x8F) else None
        layers.append(ExtendedLinkLayer(ci=ell_kind, cc=draw(st.integers(0, 255)) & ~0x12,
                                        acc=draw(st.integers(0, 255)), receiver=receiver, session=session))
    ci = draw(st.sampled_from([0x7A, 0x72, 0x78]))
    mode = 0 if ci == 0x78 else draw(st.sampled_from([0, 5, 7]))
    body = b"".join(draw(st.lists(st.sampled_from(RECORDS), max_size=5)))
    blocks = (-(-(2 + len(body)) // 16) + draw(st.integers(0, 1))) if mode else 0
    if mode == 7:
        layers.append(AuthFragLayer(fcl=0x2C00, mcl=0x25, mcr=draw(st.integers(0, 2**32 - 1))))
    if ci == 0x78:
        tpl = TransportLayer(ci=ci)
    else:
        cf = (mode << 8) | (blocks << 4) | (draw(st.integers(0, 3)) << 2 if mode != 7 else 0)
        tpl = TransportLayer(ci=ci, address=draw(addresses) if ci == 0x72 else None,
                             acc=draw(st.integers(0, 255)), status=draw(st.integers(0, 255)), cf=cf,
                             cfe=0x10 if mode == 7 else None)
    layers.append(tpl)
    if mode:
        size = 16 * blocks
        plain = (b"\x2f\x2f" + body + b"\x2f" * size)[:size]
        plain += draw(st.sampled_from([b""] + RECORDS))  # plaintext tail after the encrypted blocks
    else:
        plain = body
    return link, layers, plain, key


@settings(max_examples=150, deadline=None)
@given(stacks(), st.sampled_from([0x44, 0x46, 0x08]))
def test_random_stacks_round_trip(stack, c_field):
    link, layers, plain, key = stack
    raw = encode(c_field=c_field, address=link, layers=layers, payload=plain, key=key)
    # encode gives canonical bytes: say so. ("auto" must guess, and a canonical frame whose last two
    # bytes happen to be the CRC of the rest reads as format B with its CRC: hypothesis found one.)
    t = decode(raw, keys=KeyStore(default=key), frame_format=None)
    assert t.problems == ()
    assert t.decryption in ("ok", "not_encrypted")
    assert t.payload == plain
    assert [type(x) for x in t.layers] == [type(x) for x in layers]
    for got, want in zip(t.layers, layers, strict=True):
        if isinstance(want, AuthFragLayer):
            assert got.mcr == want.mcr and got.mac is not None
        else:
            assert got == want
    assert t.encode(key) == raw


def test_canonical_frame_that_looks_like_format_b_decodes_when_said_canonical():
    # found by hypothesis: the last two bytes are the CRC of the rest, so "auto" reads format B
    raw = bytes.fromhex("24083734ee8f99c4bb8d8d48474a020d00c770727b9a76c95a6b57aeff9e040002fd170000")
    t = decode(raw, keys=KeyStore(default=bytes(16)), frame_format=None)
    assert t.problems == () and t.payload == bytes.fromhex("02fd170000")
    assert decode(raw, keys=KeyStore(default=bytes(16))).frame.frame_format == "B"
