"""The PHY is declared once: a new link mode is one ModeSpec row, a new line code one Coding, both
registered at runtime; our TX sends them and the receiver decodes them byte-exact. Relations
between modes (shared channel and sync, same PHY) come from the data; the demodulator reports the
sync-word start where the transmitter put it."""

from __future__ import annotations

import ast

import numpy as np
import pytest

from dsp import coding
from dsp.channel import Burst, render
from dsp.coding import Coding, register_coding
from dsp.demod import Demodulator
from dsp.modes import (
    MODES,
    T_SYNC,
    ModeSpec,
    chips,
    default_rx_modes,
    register_mode,
    rx_mode_for,
    shared_search,
    unregister_mode,
)
from dsp.modulate import fsk
from dsp.phy import frame_chips
from flowgraphs.pipelines.receive import Receiver, plan_channels
from flowgraphs.stations.session import PROFILES
from sdr.types import IQChunk, StreamInfo

from .conftest import REPO

TEL = bytes.fromhex("2E4493157856341233037A2A0020255923C95AAA26D1B2E7493B013EC4A6F6D3529B520EDFF0EA6DEFC99D6D69EBF3")
TEL2 = bytes.fromhex("1844AE4C4455223368077A55000000041389E20100023B0000")


# --- a dummy line code: every data bit sent as two equal chips --------------------------------------

def _encode_repeat2(data: bytes) -> np.ndarray:
    return np.repeat(coding.bytes_to_bits(data), 2)


def _pair_sums(soft: np.ndarray) -> np.ndarray:
    s = np.asarray(soft, dtype=np.float32)
    n = len(s) // 16 * 16
    return s[0:n:2] + s[1:n:2]


def _decode_repeat2(soft: np.ndarray) -> tuple[bytes, int]:
    s = np.asarray(soft, dtype=np.float32)
    n = len(s) // 16 * 16
    violations = int(((s[0:n:2] > 0) != (s[1:n:2] > 0)).sum())
    return coding.bits_to_bytes((_pair_sums(s) > 0).astype(np.uint8)), violations


def _alternatives_repeat2(soft: np.ndarray):
    d = _pair_sums(soft)
    i = np.arange(len(d))
    return i // 8, (1 << (7 - i % 8)).astype(np.uint8), np.abs(d)


REPEAT2 = Coding(name="repeat2-test", encode=_encode_repeat2, soft_decode=_decode_repeat2,
                 alternatives=_alternatives_repeat2, chips_per_byte=16, info_bits_per_chip=0.5,
                 max_head_violations=6, source="test dummy")


@pytest.fixture
def dummy_coding():
    register_coding(REPEAT2)
    yield REPEAT2
    coding._CODINGS.pop(REPEAT2.name, None)


def test_dummy_coding_is_one_object_plus_registration(dummy_coding):
    code = coding.get_coding("repeat2-test")
    assert code is REPEAT2 and coding.CODINGS["repeat2-test"] is REPEAT2
    rng = np.random.default_rng(3)
    for data in (b"", b"\x00", TEL, bytes(rng.integers(0, 256, 300, dtype=np.uint8))):
        c = code.encode(data)
        assert len(c) == code.chips_per_byte * len(data)
        soft = (2.0 * c - 1.0) * rng.uniform(0.2, 1.0, len(c))
        assert code.soft_decode(soft) == (data, 0)
    # one weak, wrong chip: the pair's sum still decides right, the violation is counted
    soft = 2.0 * code.encode(b"\xa5") - 1.0
    soft[0] = -0.1 * soft[0]
    assert code.soft_decode(soft) == (b"\xa5", 1)
    with pytest.raises(ValueError):
        register_coding(Coding(name="repeat2-test", encode=_encode_repeat2, soft_decode=_decode_repeat2,
                               alternatives=_alternatives_repeat2, chips_per_byte=16, info_bits_per_chip=0.5))
    with pytest.raises(ValueError):
        coding.get_coding("no-such-code")


@pytest.mark.parametrize("name", ["3of6", "manchester", "nrz"])
def test_builtin_codings_carry_their_figures(name):
    code = coding.CODINGS[name]
    data = bytes(range(40))
    assert len(code.encode(data)) == code.chips_per_byte * len(data)
    assert code.info_bits_per_chip == 8 / code.chips_per_byte
    soft = 2.0 * code.encode(data) - 1.0
    byte_idx, masks, margins = code.alternatives(soft)
    assert byte_idx.max() == len(data) - 1 and (masks > 0).all() and (margins > 0).all()


# --- dummy link modes: one ModeSpec row each --------------------------------------------------------

DUMMY_NRZ = ModeSpec(name="XN", channel_hz=433.82e6, chip_rate=38.4e3, deviation_hz=20e3, coding=coding.NRZ,
                     sync=chips("1111011010001101"), preamble_pairs=16, postamble=chips("0101"),
                     chip_rate_tolerance=0.02, source="test dummy (F-like band, another chip rate)")
DUMMY_3OF6 = ModeSpec(name="XT", channel_hz=867.70e6, chip_rate=60e3, deviation_hz=35e3,
                      coding=coding.THREE_OF_SIX_CODING, sync=T_SYNC, preamble_pairs=19, postamble=chips("0101"),
                      chip_rate_tolerance=0.05, source="test dummy (3-of-6 at another frequency and rate)")
DUMMY_REPEAT2 = ModeSpec(name="XR", channel_hz=869.10e6, chip_rate=50e3, deviation_hz=25e3, coding=REPEAT2,
                         sync=chips("0001110110100101"), preamble_pairs=20, postamble=chips("01"),
                         sync_threshold=0.5, rx_preamble_chips=28, source="test dummy with the dummy coding")


@pytest.fixture
def registered():
    added = []

    def add(spec: ModeSpec) -> ModeSpec:
        added.append(register_mode(spec))
        return spec

    yield add
    for spec in added:
        unregister_mode(spec.name)


def _receive(spec: ModeSpec, bursts: list[Burst], *, rate: float = 1.6e6, seed: int = 5, noise_rms: float = 0.01):
    rng = np.random.default_rng(seed)
    x, notes = render(bursts, sample_rate_hz=rate, center_freq_hz=spec.channel_hz, duration_s=0.2, rng=rng,
                      noise_rms=noise_rms)
    info = StreamInfo(sample_rate_hz=rate, center_freq_hz=spec.channel_hz)
    rx = Receiver(info, [spec.name])
    return [*rx.process(IQChunk(samples=x, info=info, start=0)), *rx.flush()], notes


@pytest.mark.parametrize("spec", [DUMMY_NRZ, DUMMY_3OF6], ids=lambda s: s.name)
def test_dummy_link_mode_round_trip_through_tx_and_receiver(registered, spec):
    registered(spec)
    assert MODES[spec.name] is spec and rx_mode_for(spec) is spec
    info = StreamInfo(sample_rate_hz=1.6e6, center_freq_hz=spec.channel_hz)
    assert plan_channels(info, [spec.name]) == {f"{spec.channel_hz / 1e6:.2f}": (spec.channel_hz, (spec.name,))}
    assert spec.name in default_rx_modes()
    bursts = [Burst(mode=spec, telegram=TEL, start_s=0.01, amplitude=0.3, freq_offset_hz=3e3),
              Burst(mode=spec, telegram=TEL2, start_s=0.08, amplitude=0.3, freq_offset_hz=-4e3,
                    chip_rate_error=0.004)]
    frames, notes = _receive(spec, bursts)
    good = [f for f in frames if f.crc_ok]
    assert [(f.mode, f.frame_format, f.telegram) for f in good] == [(spec.name, "A", TEL), (spec.name, "A", TEL2)]
    for f, note, b in zip(good, notes, bursts, strict=True):
        sent_rate = spec.chip_rate * (1 + b.chip_rate_error)
        sync_at = note.placement.start + 2 * spec.preamble_pairs * 1.6e6 / sent_rate
        assert abs(f.sample - sync_at) <= 6  # 1.5 channel samples (decimation 4)
        assert f.channel_hz == spec.channel_hz


def test_mode_with_dummy_coding_round_trip(registered, dummy_coding):
    spec = registered(DUMMY_REPEAT2)
    assert spec.bit_rate == 25e3
    frames, _ = _receive(spec, [Burst(mode=spec, telegram=TEL, start_s=0.01, amplitude=0.3, freq_offset_hz=2e3)])
    assert [(f.mode, f.telegram) for f in frames if f.crc_ok] == [("XR", TEL)]


def test_registry_refuses_a_second_mode_of_the_same_name():
    with pytest.raises(ValueError):
        register_mode(DUMMY_NRZ.__class__(**{**{f: getattr(DUMMY_NRZ, f) for f in DUMMY_NRZ.__slots__},
                                              "name": "T1"}))
    with pytest.raises(ValueError):
        ModeSpec(name="bad", channel_hz=868e6, chip_rate=1e4, deviation_hz=5e3, coding=coding.NRZ, sync=(0, 2))


# --- relations come from the data ------------------------------------------------------------------

def test_relations_between_the_builtin_modes_are_computed():
    pairs = {(a.name, b.name) for a in MODES.values() for b in MODES.values() if shared_search(a, b)}
    assert pairs == {("T1", "C1")}  # T's preamble + sync is the end of C's preamble + 0x543D
    n_modes = {f"N{k}{c}": f"N1{c}" for k in "12" for c in "abcdef"}  # N2x is heard as N1x (same PHY)
    assert {m: rx_mode_for(MODES[m]).name for m in MODES} == {"S1": "S1", "S2": "S1", "T1": "T1", "T2": "S1",
                                                             "C1": "C1", "C2": "C2", **n_modes,
                                                             "F2": "F2", "R2": "R2"}
    assert default_rx_modes() == ("S1", "T1", "C1", "N1a", "N1b", "N1c", "N1d", "N1e", "N1f", "F2", "R2")
    info = StreamInfo(sample_rate_hz=2.4e6, center_freq_hz=868.625e6)
    assert plan_channels(info, ["S1", "T1", "C1", "C2", "S2"]) == {"868.30": (868.30e6, ("S1",)),
                                                                   "868.95": (868.95e6, ("T1", "C1")),
                                                                   "869.525": (869.525e6, ("C2",))}
    assert plan_channels(StreamInfo(sample_rate_hz=1.6e6, center_freq_hz=868.95e6), ["S1", "T1"]) == {
        "868.95": (868.95e6, ("T1",))}
    with pytest.raises(ValueError, match="unknown mode"):
        plan_channels(info, ["T3"])
    assert {n: (p.uplink, p.downlink, p.rx_uplink, p.rx_downlink) for n, p in PROFILES.items()} == {
        "T2": ("T1", "T2", ("T1",), ("S1",)), "S2": ("S2", "S2", ("S1",), ("S1",)),
        "C2": ("C1", "C2", ("C1",), ("C2",)), "R2": ("R2", "R2", ("R2",), ("R2",)),
        "F2": ("F2", "F2", ("F2",), ("F2",))}


def test_a_dummy_sharing_t1s_channel_and_sync_is_served_by_t1s_search(registered):
    """A mode whose preamble + sync ends like T1's template, on T1's channel and inside T1's chip-rate
    range, needs no search of its own; it is told apart by the sync chips after T1's."""
    spec = registered(ModeSpec(name="XC", channel_hz=868.95e6, chip_rate=100e3, deviation_hz=45e3,
                               coding=coding.NRZ, sync=chips("0101010000111101 1010011010100110"),
                               preamble_pairs=16, search_sync_chips=16, chip_rate_tolerance=0.005,
                               source="test dummy"))
    assert shared_search(MODES["T1"], spec) and not shared_search(spec, MODES["T1"])
    rate = 400e3
    rng = np.random.default_rng(9)
    for name, tel in (("XC", TEL2), ("T1", TEL)):
        c = frame_chips(MODES[name], tel, "A")
        x = fsk(c, sample_rate_hz=rate, chip_rate=100e3, deviation_hz=MODES[name].deviation_hz,
                lead_in_s=2e-3, tail_s=1e-3, start_phase=1.0)
        x = x + 0.05 * (rng.standard_normal(len(x)) + 1j * rng.standard_normal(len(x)))
        demod = Demodulator(rate, ["T1", "XC"])
        assert len(demod._search) == 1  # one search serves both
        assert [(r.mode, r.telegram) for r in demod.demodulate(x) if r.crc_ok] == [(name, tel)]


# --- the sync-word start, against the transmitter's placement ----------------------------------------

@pytest.mark.parametrize("name,fmt", [("S1", "A"), ("T1", "A"), ("C1", "A"), ("C1", "B"), ("C2", "A"), ("C2", "B")])
def test_demodulator_reports_the_sync_word_start(name, fmt):
    spec = MODES[name]
    rate = 400e3
    rng = np.random.default_rng(21)
    for lead in rng.uniform(500, 900, 4):
        x = fsk(frame_chips(spec, TEL, fmt), sample_rate_hz=rate, chip_rate=spec.chip_rate,
                deviation_hz=spec.deviation_hz, gaussian_bt=spec.gaussian_bt, lead_in_s=lead / rate, tail_s=1e-3,
                start_phase=float(rng.uniform(0, 6)))
        x = x + 0.03 * (rng.standard_normal(len(x)) + 1j * rng.standard_normal(len(x)))
        (r,) = [r for r in Demodulator(rate, [name]).demodulate(x) if r.crc_ok]
        assert (r.mode, r.frame_format, r.telegram) == (name, fmt, TEL)
        sync_at = lead + 2 * spec.preamble_pairs * rate / spec.chip_rate
        # within 1.25 channel samples (a third of a chip at T / C, a tenth at S); the position of the
        # first data chip and the sync length at the measured chip rate give it
        assert abs(r.sync_start - sync_at) <= 1.25
        assert r.position - r.sync_start == pytest.approx(len(spec.syncs[fmt]) * rate / r.chip_rate_hz)


def test_receiver_takes_the_sync_start_from_the_demodulator():
    tree = ast.parse((REPO / "flowgraphs" / "pipelines" / "receive.py").read_text(encoding="utf-8"))
    frame = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "_frame")
    assert "sync_start" in ast.unparse(frame) and ".sync)" not in ast.unparse(frame)


def test_no_mode_names_in_the_demodulator():
    src = (REPO / "dsp" / "demod.py").read_text(encoding="utf-8")
    literals = {n.value for n in ast.walk(ast.parse(src)) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    assert not literals & (set(MODES) | {"3of6", "manchester", "nrz"})
