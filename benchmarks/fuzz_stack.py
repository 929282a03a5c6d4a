"""Fuzz benchmark of the protocol stack: N inputs (default 200 000), zero exceptions outside the
DecodeError family, and the slowest single decode in milliseconds.

Inputs, in equal shares: random bytes (0-300), random frames with a consistent L-field, vectors
with 1-4 random mutations (byte flips, deletions, insertions), and valid link headers followed by
a random CI-led layer stack (ELL / AFL / TPL selectors with random bodies). A key is always
offered, so the security paths run too. Seeded: the same run every time.

    python benchmarks/fuzz_stack.py [--count 200000] [--seed 1]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import traceback
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._vectors import even_hex, wireless_vectors  # noqa: E402
from mbus.errors import DecodeError  # noqa: E402
from mbus.keys import KeyStore  # noqa: E402
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

    return [random_bytes, consistent_l, mutated, layered]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    seeds = [even_hex(r["canonical_hex"]) for r in wireless_vectors()]
    gens = generators(rng, seeds)
    keys = KeyStore(default=bytes(range(16)))
    outcomes: Counter = Counter()
    crashes: list[str] = []
    slowest, slowest_input, total = 0.0, b"", 0.0
    times = []
    clock = time.perf_counter
    for i in range(args.count):
        data = gens[i % len(gens)]()
        t0 = clock()
        try:
            t = decode(data, keys=keys)
            t.to_json()
            outcomes[t.decryption] += 1
        except DecodeError:
            outcomes["DecodeError"] += 1
        except Exception:  # noqa: BLE001 - the benchmark counts exactly these
            crashes.append(f"{data.hex()}\n{traceback.format_exc()}")
        dt = clock() - t0
        total += dt
        times.append(dt)
        if dt > slowest:
            slowest, slowest_input = dt, data
    times.sort()
    print(f"fuzz benchmark: {args.count} inputs, seed {args.seed}")
    print("| measure | value |\n|---|---|")
    print(f"| exceptions outside DecodeError | {len(crashes)} |")
    print(f"| mean decode | {total / args.count * 1e6:.1f} µs |")
    print(f"| 99.9th percentile | {times[int(len(times) * 0.999)] * 1e3:.3f} ms |")
    print(f"| slowest | {slowest * 1e3:.3f} ms ({len(slowest_input)} bytes) |")
    print("| outcomes | " + ", ".join(f"{k} {v}" for k, v in outcomes.most_common()) + " |")
    for c in crashes[:5]:
        print(c, file=sys.stderr)
    return 1 if crashes or slowest > 0.010 else 0


if __name__ == "__main__":
    sys.exit(main())
