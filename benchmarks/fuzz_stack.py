"""Fuzz benchmark of the protocol stack: N inputs (default 200 000), zero exceptions outside the
project's own errors, and the slowest single decode in milliseconds.

Telegram inputs, in equal shares (one row each in the table):

* random bytes (0-300), random frames with a consistent L-field;
* vectors with 1-4 random mutations (byte flips, deletions, insertions);
* valid link headers followed by a random CI-led layer stack (ELL / AFL / TPL selectors);
* plaintext frames of random DIF/VIF records: every data coding, DIFE chains (storage, tariff,
  subunit), the FB / FD / FC / manufacturer VIFE tables, plain-text units, dates of every type,
  "no value" markers, compact profiles (VIFE 0x1E / 0x1F / 0x13 with their base value and base time),
  manufacturer-specific DIFs 0x0F / 0x1F, fillers;
* compact frames (CI 0x79 / 0x7B / 0x73) of every format the stack knows by signature (vendors.toml),
  with exact, short and long data, and of formats a preceding full frame taught the shared cache;
* vendor frames: the manufacturer, version, device type and CI of each decoder in vendors.toml with
  random bytes of about its layout's length (its required bytes set, or not);
* secured frames built by the stack itself (modes 2, 5, 7, 10 with the right key, mode 3, ELL CTR) of
  random records, then 0-2 mutations (so the decrypted records, and the tag / 2F2F checks, both run);
* wired frames (68 L L 68 C A CI ... CS 16, with a correct checksum) of random CIs and records.

``mbus.telegram.decode`` (or ``mbus.wired.decode``) may raise only DecodeError; every 10th input also
goes through ``mbus.explain.analyze`` (every decoder that could apply) and the text rendering.
Key files: ``--key-files`` inputs (default 20 000) of mutated key files in each format (text, CSV,
JSON lines, Kamstrup KEM XML encrypted with a known password, KEM inside a zip) go through
``KeyStore.load``, which may raise only ValueError, whose message must never contain a key of the
file. Seeded: the same run every time.

    python benchmarks/fuzz_stack.py [--count 200000] [--key-files 20000] [--seed 1]
"""

from __future__ import annotations

import argparse
import io
import random
import sys
import tempfile
import time
import traceback
import zipfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._vectors import even_hex, wireless_vectors  # noqa: E402
from mbus import explain as _explain  # noqa: E402
from mbus import vendors as _vendors  # noqa: E402
from mbus import wired as _wired  # noqa: E402
from mbus.builder import build  # noqa: E402
from mbus.compact import KNOWN_FORMATS, FormatCache, split_headers  # noqa: E402
from mbus.crc import crc16  # noqa: E402
from mbus.dll import manufacturer_value  # noqa: E402
from mbus.errors import DecodeError  # noqa: E402
from mbus.keys import KeyStore, kem_encrypt  # noqa: E402
from mbus.records import DATA_FIELDS  # noqa: E402
from mbus.telegram import decode  # noqa: E402

SELECTORS = [0x8C, 0x8D, 0x8E, 0x8F, 0x90, 0x72, 0x7A, 0x78, 0x79, 0x8A, 0x8B, 0x71, 0xA0, 0x5B]


def generators(rng: random.Random, seeds: list[bytes]):
    def random_bytes():
        return rng.randbytes(rng.randint(0, 300))

    def consistent_l():
        n = rng.randint(9, 255)
        return bytes([n]) + rng.randbytes(n)

    def mutated():
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 4)):
            pos = rng.randrange(len(data)) if data else 0
            op = rng.random()
            if op < 0.5 and data:
                data[pos] = rng.randrange(256)
            elif op < 0.75:
                del data[pos:pos + rng.randint(1, 8)]
            else:
                data[pos:pos] = rng.randbytes(rng.randint(1, 8))
        return bytes(data)

    def layered():
        body = bytearray(rng.choice(seeds)[1:10])
        for _ in range(rng.randint(1, 3)):
            body.append(rng.choice(SELECTORS))
            body += rng.randbytes(rng.randint(0, 24))
        body += rng.randbytes(rng.randint(0, 64))
        body = body[:255]
        return bytes([len(body)]) + bytes(body)

    return {"random bytes": random_bytes, "consistent L": consistent_l, "mutated vectors": mutated,
            "layer stacks": layered}


# ---------------------------------------------------------------------------------------------
# structured inputs: records, compact frames, vendor frames, secured frames, wired frames

AES_KEY = bytes(range(16))
DES_KEY = bytes.fromhex("0102030405060708")
AES_KEYS = KeyStore(default=AES_KEY)
DES_KEYS = KeyStore(default=DES_KEY)
NUMERIC_VIFS = [0x03, 0x06, 0x0E, 0x13, 0x16, 0x2B, 0x2E, 0x3B, 0x3E, 0x5B, 0x5F, 0x61, 0x67, 0x74, 0x78]
DATE_VIFS = [0x6C, 0x6D]
MANUFACTURERS = ["KAM", "KAW", "EFE", "DME", "HYD", "TCH", "QDS", "APA", "APT", "BMT", "BFW", "ZRI", "SON",
                 "LSE", "ELS", "SEN", "ITW", "DWZ", "MAD", "AMB"]


def _link(rng: random.Random, manufacturer: str, version: int, device_type: int, body: bytes,
          c_field: int = 0x44) -> bytes:
    m = manufacturer_value(manufacturer)
    head = bytes([c_field, m & 0xFF, m >> 8]) + rng.randbytes(4) + bytes([version, device_type])
    frame = head + body
    return bytes([min(len(frame), 255)]) + frame[:255]


def _data(rng: random.Random, coding: int) -> bytes:
    size = DATA_FIELDS.get(coding, (0, ""))[0]
    if size < 0:  # LVAR: text, or a number / binary in the 0xC0-0xEF ranges, or a big one
        lvar = rng.choice([rng.randint(0, 40), rng.randint(0xC0, 0xC8), rng.randint(0xD0, 0xD8),
                           rng.randint(0xE0, 0xE8), rng.randint(0xF0, 0xFA), rng.randint(0, 255)])
        n = lvar if lvar <= 0xBF else lvar & 0x0F if lvar < 0xF0 else rng.randint(0, 64)
        return bytes([lvar]) + rng.randbytes(n)
    kind = rng.random()
    if kind < 0.1:  # "no value" markers: lowest signed number, all ones, invalid BCD
        return (b"\x00" * (size - 1) + b"\x80") if size else b""
    if kind < 0.2:
        return b"\xff" * size
    return rng.randbytes(size)


def _record(rng: random.Random) -> bytes:
    r = rng.random()
    if r < 0.04:
        return b"\x2f" * rng.randint(1, 3)
    if r < 0.07:  # manufacturer-specific data to the end (0x0F) / more records follow (0x1F)
        return bytes([rng.choice((0x0F, 0x1F))]) + rng.randbytes(rng.randint(0, 20))
    coding = rng.choice([*range(0x0, 0xF)])
    dif = coding | rng.choice((0x00, 0x10, 0x20, 0x30)) | rng.choice((0x00, 0x40))
    difes = []
    for _ in range(rng.choice((0, 0, 0, 1, 1, 2, 3, 11)) if r < 0.95 else 0):
        difes.append(rng.randrange(256) | 0x80)
    if difes:
        difes[-1] &= 0x7F
        dif |= 0x80
    q = rng.random()
    if q < 0.35:
        vib = bytes([rng.choice(NUMERIC_VIFS) & 0x78 | rng.randrange(8)])
    elif q < 0.45:
        vib = bytes([rng.choice(DATE_VIFS)])
        coding = {0x6C: 0x2, 0x6D: rng.choice((0x4, 0x6, 0x3))}[vib[0]]
        dif = dif & 0xF0 | coding
    elif q < 0.55:  # FB / FD tables
        vib = bytes([rng.choice((0xFB, 0xFD)), rng.randrange(128)])
    elif q < 0.62:  # combinable VIFEs, some of them profile VIFEs (0x1E / 0x1F / 0x13)
        vifes = [rng.choice((0x1E, 0x1F, 0x13, rng.randrange(128), 0x7F)) for _ in range(rng.randint(1, 3))]
        vib = bytes([rng.choice(NUMERIC_VIFS) | 0x80] + [v | 0x80 for v in vifes[:-1]] + [vifes[-1]])
    elif q < 0.66:  # plain-text unit
        text = rng.randbytes(rng.randint(0, 6))
        vib = bytes([0x7C, len(text) if rng.random() < 0.9 else rng.randrange(256)]) + text
    elif q < 0.70:  # manufacturer VIF, with or without VIFEs
        vib = bytes([0xFF, rng.randrange(128)]) if rng.random() < 0.5 else b"\x7f"
    elif q < 0.74:  # FC: a VIFE-led extension table / 0x7E any VIF
        vib = bytes([rng.choice((0xFC, 0x7E, 0xFE)), rng.randrange(256), rng.randrange(128)])
    else:
        vib = bytes([rng.randrange(256)])
        if vib[0] & 0x80:
            vib += bytes([rng.randrange(128)])
    return bytes([dif, *difes]) + vib + _data(rng, coding)


def _profile(rng: random.Random) -> bytes:
    """A compact profile (EN 13757-3 Annex F) with its base value and base time, or without."""
    storage = rng.choice((0, 0, 1, 8))
    sdif = 0x40 if storage & 1 else 0x00
    vif = rng.choice(NUMERIC_VIFS)
    out = b""
    if rng.random() < 0.7:
        out += bytes([0x04 | sdif, vif]) + rng.randbytes(4)  # base value
    if rng.random() < 0.7:
        out += bytes([0x02 | sdif, 0x6C]) + rng.randbytes(2) if rng.random() < 0.5 else \
            bytes([0x04 | sdif, 0x6D]) + rng.randbytes(4)
    control = rng.randrange(256) if rng.random() < 0.3 else \
        rng.randrange(4) << 6 | rng.randrange(4) << 4 | rng.choice((0x1, 0x2, 0x3, 0x4, 0x6, 0x9, 0xA, 0xC))
    spacing = rng.choice((0, 1, 15, 60, 250, 251, 253, 254, 255, rng.randrange(256)))
    size = max(DATA_FIELDS.get(control & 0x0F, (1, ""))[0], 1)
    elements = rng.randbytes(size * rng.randint(0, 40) + (rng.randrange(size) if rng.random() < 0.1 else 0))
    body = bytes([control, spacing]) + elements
    code = rng.choice((0x1E, 0x1F, 0x13))
    vib = bytes([vif | 0x80, code]) if rng.random() < 0.8 else bytes([vif | 0x80, 0x80 | rng.randrange(128), code])
    return out + bytes([0x0D | sdif]) + vib + bytes([min(len(body), 0xBF)]) + body[:0xBF]


def _apl(rng: random.Random, n: int | None = None) -> bytes:
    parts = [_profile(rng) if rng.random() < 0.15 else _record(rng) for _ in range(n or rng.randint(1, 12))]
    return b"".join(parts)[:200]


def structured(rng: random.Random, cache: FormatCache):
    formats = sorted(set(KNOWN_FORMATS.items()) | {(f.signature, f.headers) for f in _vendors.FORMATS})
    decoders = list(_vendors.DECODERS)

    def records():
        apl = _apl(rng)
        tpl = bytes([0x7A, rng.randrange(256), 0x00, 0x00, 0x00])
        return _link(rng, rng.choice(MANUFACTURERS), rng.randrange(256), rng.randrange(256), tpl + apl)

    def compact():
        sig, headers = rng.choice(formats)
        size = 0
        for h in split_headers(headers):
            n = DATA_FIELDS[h[0] & 0x0F][0]
            size += n if n >= 0 else 1
        data = rng.randbytes(max(0, size + rng.choice((0, 0, 0, -1, 1, -5, 3))))
        ci = rng.choice((0x79, 0x79, 0x7B, 0x73))
        # 0x7B: short header (ACC STS CF), 0x73: long header; random bytes, so sometimes "encrypted"
        head = bytes([ci]) + (b"" if ci == 0x79 else rng.randbytes(4 if ci == 0x7B else 12))
        apl = sig.to_bytes(2, "little") + crc16(data).to_bytes(2, "little") + data
        fmt = next((f for f in _vendors.FORMATS if f.signature == sig), None)
        m = rng.choice(sorted(fmt.manufacturers)) if fmt is not None else rng.choice(MANUFACTURERS)
        return _link(rng, m, rng.randrange(256), rng.randrange(256), head + apl)

    def learned_compact():
        """A full frame teaches the shared cache its format; a compact frame of that format follows."""
        apl = b"".join(_record(rng) for _ in range(rng.randint(1, 6)))
        m = rng.choice(MANUFACTURERS)
        full = _link(rng, m, 1, 7, bytes([0x78]) + apl)
        try:
            t = decode(full, formats=cache)
        except DecodeError:
            return full
        if not t.records:
            return full
        data = b"".join(r.data for r in t.records)
        sig = crc16(b"".join(r.header for r in t.records))
        if rng.random() < 0.3:
            data = bytearray(data)
            if data:
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
            data = bytes(data)
        if len(data) >= 230:
            return full
        short = full[1:10] + bytes([0x79]) + sig.to_bytes(2, "little") + crc16(data).to_bytes(2, "little") + data
        return bytes([len(short)]) + short

    def vendor():
        d = rng.choice(decoders)
        m = rng.choice(sorted(d.manufacturers))
        version = rng.choice(sorted(d.versions)) if d.versions else rng.randrange(256)
        device_type = rng.choice(sorted(d.device_types)) if d.device_types else rng.randrange(256)
        if d.meters and rng.random() < 0.8:
            m, version, device_type = rng.choice(sorted(d.meters))
        body = bytearray(rng.randbytes(max(0, d.min_length + rng.randint(-3, 12))))
        if rng.random() < 0.8:
            for offset, values in d.require:
                if offset < len(body):
                    body[offset] = rng.choice(sorted(values))
        ci = rng.choice(sorted(d.cis)) if d.cis else None
        if ci is None or rng.random() < 0.2:  # after a manufacturer-specific DIF in a plain TPL
            lead = bytes([0x7A, rng.randrange(256), 0, 0, 0]) + _apl(rng, rng.randint(0, 3))[:40] + b"\x0f"
        else:
            lead = bytes([ci]) + (rng.randbytes(rng.choice((0, 4, 12))) if rng.random() < 0.3 else b"")
        return _link(rng, m, version, device_type, lead + bytes(body))

    def secured():
        mode = rng.choice((5, 5, 7, 10, 10, 2, 0))
        key = DES_KEY if mode == 2 else AES_KEY
        spec = {"kind": "SND-NR", "manufacturer": rng.choice(MANUFACTURERS), "id": f"{rng.randrange(10**8):08d}",
                "version": rng.randrange(256), "device_type": rng.randrange(256), "security": mode,
                "acc": rng.randrange(256), "data": _apl(rng, rng.randint(1, 8))[:150].hex()}
        if mode in (7, 10):
            spec["counter"] = rng.randrange(2**32)
        if mode == 10:
            spec["tag"] = rng.choice((4, 8, 12, 16))
        if rng.random() < 0.2:
            spec["ell"] = {"ci": 0x8D, "session": rng.randrange(2**32), "encrypt": True}
        try:
            frame = bytearray(build(spec, key=key).telegram)
        except DecodeError:  # e.g. too long for one frame: the builder says so
            return bytes(rng.randbytes(20)), None
        for _ in range(rng.choice((0, 0, 1, 2))):
            frame[rng.randrange(len(frame))] = rng.randrange(256)
        keys = DES_KEYS if mode == 2 else AES_KEYS
        return bytes(frame), (keys if rng.random() < 0.9 else None)

    def wired():
        ci = rng.choice((0x72, 0x76, 0x78, 0x7A, 0x70, 0x73, 0x71, 0x7C, 0x7D, 0x7F, rng.randrange(256)))
        head = {0x72: rng.randbytes(12), 0x76: rng.randbytes(12), 0x7A: rng.randbytes(4),
                0x73: rng.randbytes(rng.randint(10, 16))}.get(ci, b"")
        body = bytes([rng.choice((0x08, 0x18, 0x28, 0x38)), rng.randrange(256), ci]) + head + _apl(rng)[:200]
        body = body[:255]
        frame = bytes([0x68, len(body), len(body), 0x68]) + body + bytes([_wired.checksum(body), 0x16])
        if rng.random() < 0.2:
            frame = bytearray(frame)
            frame[rng.randrange(len(frame))] = rng.randrange(256)
        return bytes(frame)

    return {"DIF/VIF records": records, "compact, known formats": compact, "compact, learned formats": learned_compact,
            "vendor frames": vendor, "secured frames": secured, "wired frames": wired}


# ---------------------------------------------------------------------------------------------
# key files

KEM_PASSWORD = "fuzz-password"
FILE_KEYS = [bytes([i]) * 16 for i in range(1, 4)]


def key_file_seeds() -> list[tuple[str, bytes]]:
    k1, k2, k3 = (k.hex().upper() for k in FILE_KEYS)
    text = f"# meters\n12345678 KAM {k1}\n87654321\t{k2}\n* {k3}\n".encode()
    csv_ = f"meter_id;manufacturer;aes_key\n12345678;KAM;{k1}\n\"87654321\";;\"{k2}\"\n".encode()
    jsonl = (f'{{"id": "12345678", "key": "{k1}", "manufacturer": "KAM"}}\n{{"id": "87654321", "key": "{k2}"}}\n'
             ).encode()
    meters = (f"<MetersInOrder><Meter><SerialNo>12345678</SerialNo><DEK>{k1}</DEK></Meter>"
              f"<Meter><SerialNo>87654321</SerialNo><DEK>{k2}</DEK></Meter></MetersInOrder>").encode()
    cipher = kem_encrypt(meters, KEM_PASSWORD)
    kem = ('<?xml version="1.0" encoding="utf-8"?><EncryptedData xmlns="http://www.w3.org/2001/04/xmlenc#">'
           f"<CipherData><CipherValue>{cipher}</CipherValue></CipherData></EncryptedData>").encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("order.kem", kem)
    return [("keys.txt", text), ("keys.csv", csv_), ("keys.jsonl", jsonl), ("meters.kem", kem),
            ("meters.xml", meters), ("meters.zip", buf.getvalue())]


def fuzz_key_files(rng: random.Random, count: int) -> tuple[Counter, list[str]]:
    seeds = key_file_seeds()
    secrets = [k.hex() for k in FILE_KEYS] + [k.hex().upper() for k in FILE_KEYS]
    outcomes: Counter = Counter()
    crashes: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(count):
            name, data = seeds[i % len(seeds)]
            data = bytearray(data)
            for _ in range(rng.randint(0, 4)):
                pos = rng.randrange(len(data)) if data else 0
                op = rng.random()
                if op < 0.5 and data:
                    data[pos] = rng.choice((rng.randrange(256), rng.randrange(32, 127), ord(rng.choice("<>\"{},;#\n"))))
                elif op < 0.75:
                    del data[pos:pos + rng.randint(1, 8)]
                else:
                    data[pos:pos] = rng.randbytes(rng.randint(1, 8))
            path = Path(tmp) / name
            path.write_bytes(bytes(data))
            try:
                KeyStore().load(path, kem_password=KEM_PASSWORD if rng.random() < 0.9 else None)
                outcomes["loaded"] += 1
            except ValueError as err:
                outcomes["ValueError"] += 1
                if any(s in str(err) for s in secrets):
                    crashes.append(f"{name} {bytes(data)!r}\nkey echoed in the error")
            except Exception:  # noqa: BLE001 - the benchmark counts exactly these
                crashes.append(f"{name} {bytes(data)!r}\n{traceback.format_exc()}")
    return outcomes, crashes


def _run_one(data: bytes, keys, formats: FormatCache | None):
    """(outcome name, telegram or None) of one input; raises only what the stack must never raise."""
    if _wired.looks_wired(data) and data[:1] == b"\x68":
        try:
            return "wired " + _wired.decode(data, keys=keys).decryption, None
        except DecodeError:
            return "wired DecodeError", None
    try:
        t = decode(data, keys=keys, formats=formats)
        t.to_json()
        return t.decryption, t
    except DecodeError:
        return "DecodeError", None


def _explain_one(data: bytes, keys, formats: FormatCache | None, t) -> None:
    attempts = _explain.analyze(data, keys=keys, formats=formats)
    _explain.render_analysis(attempts)
    if t is not None:
        _explain.render(t, attempts)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=200_000, help="telegram inputs")
    ap.add_argument("--key-files", type=int, default=20_000, help="key-file inputs")
    ap.add_argument("--explain-every", type=int, default=10, help="every Nth input also through explain")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-ms", type=float, default=None,
                    help="also fail when the slowest decode takes longer (off by default: on a shared machine "
                         "the slowest input mostly measures the scheduler)")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    seeds = [even_hex(r["canonical_hex"]) for r in wireless_vectors()]
    cache = FormatCache(max_entries=256)
    gens = {**generators(rng, seeds), **structured(rng, cache)}
    names = list(gens)
    per_gen: dict[str, Counter] = {n: Counter() for n in names}
    crashes: list[str] = []
    slowest, slowest_input, total = 0.0, b"", 0.0
    times = []
    explained = 0
    gen_slowest: dict[str, float] = {}
    clock = time.perf_counter
    for i in range(args.count):
        name = names[i % len(names)]
        made = gens[name]()
        data, keys = made if isinstance(made, tuple) else (made, AES_KEYS)
        t0 = clock()
        t = None
        try:
            outcome, t = _run_one(data, keys, cache)
            per_gen[name][outcome] += 1
        except Exception:  # noqa: BLE001 - the benchmark counts exactly these
            per_gen[name]["EXCEPTION"] += 1
            crashes.append(f"[{name}] {data.hex()}\n{traceback.format_exc()}")
        dt = clock() - t0
        gen_slowest[name] = max(gen_slowest.get(name, 0.0), dt)
        if args.explain_every > 0 and i % args.explain_every == 0:
            try:
                _explain_one(data, keys, cache, t)
                explained += 1
            except Exception:  # noqa: BLE001 - the benchmark counts exactly these
                per_gen[name]["EXCEPTION in explain"] += 1
                crashes.append(f"[{name}, explain] {data.hex()}\n{traceback.format_exc()}")
        total += dt
        times.append(dt)
        if dt > slowest:
            slowest, slowest_input = dt, data
    key_outcomes, key_crashes = fuzz_key_files(rng, args.key_files)
    times.sort()
    print(f"fuzz benchmark: {args.count} telegram inputs + {args.key_files} key files, seed {args.seed}")
    print("| measure | value |\n|---|---|")
    print(f"| exceptions outside DecodeError (telegrams; {explained} also through explain) | {len(crashes)} |")
    print(f"| exceptions outside ValueError, or a key echoed (key files) | {len(key_crashes)} |")
    print(f"| mean decode | {total / max(args.count, 1) * 1e6:.1f} µs |")
    if times:
        print(f"| 99.9th percentile | {times[int(len(times) * 0.999)] * 1e3:.3f} ms |")
        print(f"| slowest | {slowest * 1e3:.3f} ms ({len(slowest_input)} bytes) |")
    print("\n| input kind | inputs | slowest decode | outcomes |\n|---|---|---|---|")
    for n in names:
        c = per_gen[n]
        print(f"| {n} | {sum(c.values())} | {gen_slowest.get(n, 0) * 1e3:.2f} ms | "
              + ", ".join(f"{k} {v}" for k, v in c.most_common()) + " |")
    print(f"| key files | {sum(key_outcomes.values())} | - | "
          + ", ".join(f"{k} {v}" for k, v in key_outcomes.most_common()) + " |")
    for c in (crashes + key_crashes)[:5]:
        print(c, file=sys.stderr)
    too_slow = args.max_ms is not None and slowest * 1e3 > args.max_ms
    return 1 if crashes or key_crashes or too_slow else 0


if __name__ == "__main__":
    sys.exit(main())
