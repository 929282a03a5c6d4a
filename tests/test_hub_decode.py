"""The cheaper decode the hub uses is the same decode: over every public wireless vector, a
transport layer's size is the length of its bytes, the vendor decoders remembered for an address
are the ones that serve it, and ``describe=False`` changes nothing but the success text; the hub's
time text is the sinks' one."""

from __future__ import annotations

import dataclasses
import random

import pytest

from flowgraphs.hub.core import iso
from flowgraphs.sinks.base import utc_iso
from mbus.dll import Address
from mbus.keys import KeyStore
from mbus.telegram import decode
from mbus.tpl import TransportLayer
from mbus.vendors import DECODERS, _serving

from .conftest import even_hex
from .test_hub import frames  # noqa: F401 - the fixture


def _keys(row) -> KeyStore | None:
    key = row.get("key")
    return KeyStore(default=bytes.fromhex(key)) if key and len(key) in (16, 32) else None


def test_transport_layer_size_is_the_length_of_its_bytes(wireless_vectors):
    seen = set()
    for row in wireless_vectors:
        t = decode(even_hex(row["canonical_hex"]), keys=_keys(row))
        for layer in t.layers:
            if isinstance(layer, TransportLayer):
                assert layer.size == len(layer.to_bytes()), row["id"]
                seen.add((layer.ci, layer.security_mode))
    assert len(seen) >= 10  # short, long and no headers; modes 0, 5, 7, 10 among them


def test_missing_header_fields_still_raise_naming_them():
    with pytest.raises(ValueError, match="ACC, status and configuration field"):
        _ = TransportLayer(ci=0x7A).size


def test_remembered_vendor_decoders_are_the_serving_ones(wireless_vectors):
    addresses = {decode(even_hex(row["canonical_hex"])).link.address for row in wireless_vectors}
    for dec in DECODERS:  # every checked meter of every decoder, and its neighbours
        for m, version, device_type in dec.meters or ():
            code = sum((ord(c) - 64) << s for c, s in zip(m, (10, 5, 0), strict=True))
            for v in (version, version + 1):
                addresses.add(Address(manufacturer=code, id_bytes=b"\x01\x02\x03\x04", version=v & 0xFF,
                                      device_type=device_type))
    assert len(addresses) > 100
    for a in sorted(addresses, key=repr):
        for sources in (("tail", "record"), ("apl",)):
            want = tuple(d for d in DECODERS if d.source in sources and d.serves(a))
            assert _serving(sources, a) == want
            assert _serving(sources, a) == want  # remembered: the same
    assert any(_serving(("tail", "record"), a) or _serving(("apl",), a) for a in addresses)


def test_decode_without_description_differs_only_in_the_success_text(wireless_vectors):
    described = 0
    for row in wireless_vectors:
        raw, keys = even_hex(row["canonical_hex"]), _keys(row)
        full = decode(raw, keys=keys, frame_format=None)
        lean = decode(raw, keys=keys, frame_format=None, describe=False)
        if lean.message:  # a failure's message is still written
            assert lean == full, row["id"]
        else:
            described += 1
            assert full.message and dataclasses.replace(full, message="") == lean, row["id"]
    assert described >= 200


def test_hub_time_text_is_the_sinks_one():
    rng = random.Random(16)
    times = [0, 1, 999, -1, -1_000_000_001, 1_796_000_000_123_456_789, 1_700_000_000_999_999_999]
    times += [rng.randrange(-10**18, 4 * 10**18) for _ in range(5000)]
    times += [1_796_000_000_000_000_000 + rng.randrange(10**9) for _ in range(100)]  # one second, remembered
    for t in times:
        assert iso(t) == utc_iso(t), t


def test_intake_tuple_is_the_parsed_hearing(frames):  # noqa: F811 - frames: the recording's, from test_hub
    from flowgraphs.hub.ingest import heard_from_tuple, heard_tuple, parse_raw, parse_raw_tuple

    from .test_hub import raw_message

    for i, frame in enumerate(frames):
        payload = raw_message(frame, "north", time_text=None if i % 2 else "keep")
        heard = parse_raw(payload, topic_receiver="north", arrived_ns=i)
        assert parse_raw_tuple(payload, topic_receiver="north", arrived_ns=i) == heard_tuple(heard)
        assert heard_from_tuple(heard_tuple(heard)) == heard
