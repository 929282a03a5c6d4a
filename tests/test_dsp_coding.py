"""Chip codings and PHY framing: round trips, soft decisions, code-word violations."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from dsp import coding
from dsp.modes import MODES
from dsp.phy import frame_chips, onair_size


@given(st.binary(max_size=300), st.sampled_from(["3of6", "manchester", "nrz"]))
def test_coding_round_trip_hard_and_soft(data, name):
    code = coding.CODINGS[name]
    chips = code.encode(data)
    assert len(chips) == len(data) * code.chips_per_byte
    soft = chips.astype(np.float32) * 2 - 1
    decoded, violations = code.soft_decode(soft)
    assert decoded == data and violations == 0


def test_three_of_six_table_and_violations():
    assert coding.encode_3of6(b"\x00").tolist() == [0, 1, 0, 1, 1, 0, 0, 1, 0, 1, 1, 0]
    assert all(bin(w).count("1") == 3 for w in coding.THREE_OF_SIX)
    chips = coding.encode_3of6(b"\x5a")
    chips[0] ^= 1  # break one code word
    data, bad = coding.decode_3of6_hard(chips)
    assert bad == 1
    soft = chips.astype(np.float32) * 2 - 1
    soft[0] *= 0.1  # the broken chip is unreliable: soft decoding recovers the nibble
    assert coding.decode_3of6_soft(soft)[0] == b"\x5a"


def test_manchester_convention():
    # data 1 -> 01, data 0 -> 10 (phy.md 2.1)
    assert coding.encode_manchester(b"\x80").tolist()[:4] == [0, 1, 1, 0]


def test_frame_chips_structure():
    tel = bytes.fromhex("2E4493157856341233037A2A0020255923C95AAA26D1B2E7493B"
                        "013EC4A6F6D3529B520EDFF0EA6DEFC99D6D69EBF3")
    t1 = frame_chips(MODES["T1"], tel, "A")
    pre = 2 * MODES["T1"].preamble_pairs
    assert t1[:pre].tolist() == [0, 1] * MODES["T1"].preamble_pairs
    assert t1[pre:pre + 10].tolist() == list(MODES["T1"].sync)
    assert len(t1) == pre + 10 + 12 * onair_size(tel[0], "A") + len(MODES["T1"].postamble)
    c1b = frame_chips(MODES["C1"], tel, "B")
    assert np.packbits(c1b[32:64]).tobytes().hex() == "543d543d"
