"""Write recordings/telegrams.txt and recordings/keys.txt: example telegrams built by our own encoder.

Fictional meters (ids, keys and readings made up here), one per common OMS case, plus the public
OMS Annex N.2.1 test vector. Deterministic: running it again gives the same files.

    python scripts/make_examples.py
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mbus.afl import AuthFragLayer  # noqa: E402
from mbus.compact import signature  # noqa: E402
from mbus.crc import crc16  # noqa: E402
from mbus.dll import Address  # noqa: E402
from mbus.ell import ExtendedLinkLayer  # noqa: E402
from mbus.records import build_record as rec  # noqa: E402
from mbus.records import header_list, parse_records  # noqa: E402
from mbus.telegram import encode  # noqa: E402
from mbus.tpl import TransportLayer  # noqa: E402


def key_for(meter_id: str) -> bytes:
    return hashlib.sha256(f"wmbus-sdr example key {meter_id}".encode()).digest()[:16]


def pad(plain: bytes) -> tuple[bytes, int]:
    """2F2F + records, padded with 2F to whole blocks; returns (plaintext, N blocks)."""
    body = b"\x2f\x2f" + plain
    blocks = -(-len(body) // 16)
    return body + b"\x2f" * (16 * blocks - len(body)), blocks


def datetime_f(y, mo, d, h, mi) -> bytes:
    yy = y - 2000
    return bytes([mi & 0x3F, h & 0x1F, (d & 0x1F) | ((yy & 7) << 5), (mo & 0x0F) | ((yy >> 3) << 4)])


def date_g(y, mo, d) -> bytes:
    return datetime_f(y, mo, d, 0, 0)[2:]


def build() -> list[tuple[str, str, bytes | None]]:
    out = []

    # 1. Water meter, T1/C1 style SND-NR, mode 5, short header.
    water = Address.make("WSM", "20261125", 0x12, 0x07)
    records = (rec(vib=b"\x13", raw=123456) + rec(vib=b"\x6d", data=datetime_f(2026, 11, 25, 6, 0))
               + rec(vib=b"\x13", raw=120001, storage=1) + rec(vib=b"\x6c", data=date_g(2026, 10, 31), coding="int16",
                                                               storage=1)
               + rec(vib=b"\x3b", raw=12, coding="int16") + rec(vib=b"\xfd\x17", raw=0, coding="int16"))
    plain, n = pad(records)
    out.append(("water meter, mode 5 (AES-CBC), short header", encode(
        c_field=0x44, address=water, payload=plain, key=key_for(water.id),
        layers=[TransportLayer(ci=0x7A, acc=0x31, status=0x00, cf=0x0500 | n << 4)]), key_for(water.id)))

    # 2. Heat meter, mode 7 with AFL CMAC (OMS security profile B).
    heat = Address.make("HMS", "31415926", 0x01, 0x04)
    records = (rec(vib=b"\x06", raw=4711) + rec(vib=b"\x13", raw=321765) + rec(vib=b"\x59", raw=6543, coding="int16")
               + rec(vib=b"\x5d", raw=4120, coding="int16") + rec(vib=b"\x61", raw=2423, coding="int16")
               + rec(vib=b"\x2b", raw=12345) + rec(vib=b"\x3b", raw=512)
               + rec(vib=b"\x6d", data=datetime_f(2026, 11, 25, 6, 15)))
    plain, n = pad(records)
    out.append(("heat meter, mode 7 (KDF keys) with AFL MAC", encode(
        c_field=0x44, address=heat, payload=plain, key=key_for(heat.id),
        layers=[AuthFragLayer(fcl=0x2C00, mcl=0x25, mcr=4242),
                TransportLayer(ci=0x7A, acc=0x92, status=0x00, cf=0x0700 | n << 4, cfe=0x10)]), key_for(heat.id)))

    # 3. Heat cost allocator behind ELL AES-CTR (CI 8D), no transport header.
    hca = Address.make("HCA", "77665544", 0x02, 0x08)
    records = (rec(vib=b"\x6e", raw=1234, coding="bcd6") + rec(vib=b"\x6c", data=date_g(2025, 12, 31), coding="int16",
                                                              storage=1)
               + rec(vib=b"\x6e", raw=987, coding="bcd6", storage=1) + rec(vib=b"\x65", raw=2150, coding="int16"))
    out.append(("heat cost allocator, ELL AES-CTR", encode(
        c_field=0x44, address=hca, payload=records, key=key_for(hca.id),
        layers=[ExtendedLinkLayer(ci=0x8D, cc=0x20, acc=0x17, session=1 << 29 | 123456 << 4),
                TransportLayer(ci=0x78)]), key_for(hca.id)))

    # 4. Gas meter, unencrypted, long header (meter address in the transport layer).
    gas = Address.make("GSM", "55443322", 0x33, 0x03)
    records = (rec(vib=b"\x14", raw=2850427, coding="bcd8") + rec(vib=b"\x6d", data=datetime_f(2026, 11, 25, 5, 30))
               + rec(vib=b"\xfd\x17", raw=0, coding="int16"))
    out.append(("gas meter, no encryption, long header", encode(
        c_field=0x44, address=gas, payload=records,
        layers=[TransportLayer(ci=0x72, address=gas, acc=0x05, status=0x00, cf=0x0000)]), None))

    # 5. Electricity meter, mode 5: import and export energy (VIFE 3C = backward).
    elec = Address.make("ESM", "88990011", 0x05, 0x02)
    records = (rec(vib=b"\x04", raw=1569405) + rec(vib=b"\x84\x3c", raw=748) + rec(vib=b"\x2b", raw=330)
               + rec(vib=b"\xfd\x48", raw=2361, coding="int16"))
    plain, n = pad(records)
    out.append(("electricity meter, mode 5, import/export", encode(
        c_field=0x44, address=elec, payload=plain, key=key_for(elec.id),
        layers=[TransportLayer(ci=0x7A, acc=0x08, status=0x00, cf=0x0500 | n << 4)]), key_for(elec.id)))

    # 6. A full frame, then a compact frame of the same meter (format signature + full-frame CRC).
    wm2 = Address.make("WSM", "20261126", 0x12, 0x16)
    full = rec(vib=b"\x13", raw=4242) + rec(vib=b"\x3b", raw=7, coding="int16")
    out.append(("cold water meter, full frame (teaches its format)", encode(
        c_field=0x44, address=wm2, payload=full, layers=[TransportLayer(ci=0x7A, acc=0x40, status=0, cf=0)]), None))
    recs, _ = parse_records(full)
    sig = signature(header_list(recs))
    later = rec(vib=b"\x13", raw=4250) + rec(vib=b"\x3b", raw=9, coding="int16")
    data = b"".join(r.data for r in parse_records(later)[0])
    compact = sig.to_bytes(2, "little") + crc16(later).to_bytes(2, "little") + data
    out.append(("cold water meter, compact frame", encode(
        c_field=0x44, address=wm2, payload=compact, layers=[TransportLayer(ci=0x7B, acc=0x41, status=0, cf=0)]),
        None))

    # 7. OMS Annex N.2.1 (public test vector, key 0102...0F11).
    out.append(("OMS Annex N.2.1 gas meter, mode 5 (public example)", bytes.fromhex(
        "2E4493157856341233037A2A0020255923C95AAA26D1B2E7493B013EC4A6F6D3529B520EDFF0EA6DEFC99D6D69EBF3"),
        bytes.fromhex("0102030405060708090A0B0C0D0E0F11")))
    return out


def main() -> None:
    examples = build()
    lines = ["# Example telegrams (canonical hex), built by scripts/make_examples.py with our encoder.",
             "# Decode them with: wmbus-sdr telegram --keys recordings/keys.txt -"]
    keys = ["# Keys of the example meters (fictional, made up for these examples): ID MANUFACTURER KEY"]
    seen = set()
    for title, frame, key in examples:
        lines += [f"# {title}", frame.hex()]
        if key is not None:
            from mbus.telegram import decode
            a = decode(frame).meter
            if a.id not in seen:
                keys.append(f"{a.id} {a.manufacturer_code} {key.hex()}")
                seen.add(a.id)
    (ROOT / "recordings").mkdir(exist_ok=True)
    (ROOT / "recordings" / "telegrams.txt").write_text("\n".join(lines) + "\n")
    (ROOT / "recordings" / "keys.txt").write_text("\n".join(keys) + "\n")
    print(f"wrote {len(examples)} telegrams to recordings/telegrams.txt and {len(seen)} keys to recordings/keys.txt")


if __name__ == "__main__":
    main()
