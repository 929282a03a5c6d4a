"""The decoder never crashes: random bytes and mutated vectors give a Telegram (with problems) or,
for fewer than 10 bytes, a DecodeError — nothing else."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from mbus.errors import DecodeError
from mbus.keys import KeyStore
from mbus.telegram import decode

from .conftest import even_hex

KEY = KeyStore(default=bytes(range(16)))


def _check(data: bytes) -> None:
    try:
        t = decode(data, keys=KEY)
    except DecodeError as err:
        # only a frame too short for the 10-byte link header may raise
        assert err.reason == "truncated" and min(len(data), data[0] + 1 if data else 0) < 11, err
        return
    t.to_json()


@settings(max_examples=600, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes(data):
    _check(data)


@settings(max_examples=300, deadline=None)
@given(st.integers(9, 255).flatmap(lambda n: st.binary(min_size=n, max_size=n).map(lambda b: bytes([n]) + b)))
def test_random_frames_with_consistent_l(data):
    t = decode(data, keys=KEY)
    t.to_json()


def test_mutated_vectors(wireless_vectors):
    rng = random.Random(1234)
    seeds = [even_hex(r["canonical_hex"]) for r in wireless_vectors]
    for _ in range(4000):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 4)):
            op = rng.random()
            pos = rng.randrange(len(data)) if data else 0
            if op < 0.5 and data:
                data[pos] = rng.randrange(256)
            elif op < 0.75:
                del data[pos:pos + rng.randint(1, 8)]
            else:
                data[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        _check(bytes(data))


def test_short_input_raises_decode_error():
    for data in (b"", b"\x2e", bytes.fromhex("2e4493157856")):
        try:
            decode(data)
        except DecodeError as err:
            assert err.reason == "truncated"
        else:
            raise AssertionError("short input must raise")


def test_structured_inputs_of_the_fuzz_benchmark():
    """A slice of benchmarks/fuzz_stack.py's structured inputs (records with compact profiles,
    compact frames, vendor layouts, frames secured by the stack, wired frames): decode raises only
    DecodeError, and the secured ones with the right key and no mutation decrypt."""
    from benchmarks import fuzz_stack as fz
    from mbus.compact import FormatCache

    rng = random.Random(14)
    cache = FormatCache(max_entries=64)
    gens = fz.structured(rng, cache)
    ok = 0
    for name, gen in gens.items():
        for _ in range(150):
            made = gen()
            data, keys = made if isinstance(made, tuple) else (made, KEY)
            outcome, t = fz._run_one(data, keys, cache)
            assert outcome, name
            ok += outcome == "ok"
            if t is not None:
                t.to_json()
    assert ok >= 30  # secured frames that were not mutated decrypt and verify


def test_key_files_of_the_fuzz_benchmark_raise_only_value_errors():
    from benchmarks import fuzz_stack as fz

    outcomes, crashes = fz.fuzz_key_files(random.Random(14), 600)
    assert not crashes, crashes[:2]
    assert outcomes["loaded"] > 50 and outcomes["ValueError"] > 200
