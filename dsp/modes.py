"""Link modes as data (EN 13757-4; digest ../shared/spec/phy.md sections 1-4).

A ModeSpec says where a mode is on air and how its chips are made; the modulator and the
demodulator both read it, so TX and RX cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass


def chips(text: str) -> tuple[int, ...]:
    return tuple(int(c) for c in text.replace(" ", ""))


@dataclass(frozen=True, slots=True)
class ModeSpec:
    name: str  # "S1", "T1", "C1", ...
    channel_hz: float  # nominal centre frequency
    chip_rate: float  # chips per second
    deviation_hz: float  # nominal peak deviation
    coding: str  # "manchester" | "3of6" | "nrz"
    sync: tuple[int, ...]  # chips after the preamble (format A for C modes)
    sync_b: tuple[int, ...] | None = None  # C modes: sync announcing format B
    preamble_pairs: int = 19  # n x "01" sent by our TX
    postamble: tuple[int, ...] = ()
    gaussian_bt: float | None = None  # None = plain 2-FSK
    chip_rate_tolerance: float = 0.02  # relative, for RX search ranges
    uplink: bool = True
    source: str = ""


S_SYNC = chips("000111011010010110")
T_SYNC = chips("0000111101")
C_SYNC_A = chips("0101010000111101 0101010011001101")  # 0x543D 0x54CD
C_SYNC_B = chips("0101010000111101 0101010000111101")  # 0x543D 0x543D

MODES: dict[str, ModeSpec] = {
    "S1": ModeSpec("S1", 868.30e6, 32768.0, 50e3, "manchester", S_SYNC, preamble_pairs=279,
                   postamble=chips("01"), source="phy.md §1, §3: 868.30 MHz, 32.768 kcps Manchester, long preamble"),
    "S2": ModeSpec("S2", 868.30e6, 32768.0, 50e3, "manchester", S_SYNC, preamble_pairs=15,
                   postamble=chips("01"), source="phy.md §3: S2 / S1-m short preamble (15 pairs)"),
    "T1": ModeSpec("T1", 868.95e6, 100e3, 50e3, "3of6", T_SYNC, preamble_pairs=19, postamble=chips("0101"),
                   chip_rate_tolerance=0.12, source="phy.md §1, §3: 868.95 MHz, 100 kcps 3-of-6, T sync 0000111101"),
    "T2": ModeSpec("T2", 868.30e6, 32768.0, 50e3, "manchester", S_SYNC, preamble_pairs=15,
                   postamble=chips("01"), uplink=False, source="phy.md §1: T2 other->meter, 32.768 kcps Manchester"),
    # C has no postamble in the standard; our TX still sends 8 alternating chips after the last CRC so
    # that receivers which need a final transition (rtl_433's FSK slicer) get every data bit.
    "C1": ModeSpec("C1", 868.95e6, 100e3, 45e3, "nrz", C_SYNC_A, C_SYNC_B, preamble_pairs=16,
                   postamble=chips("01010101"),
                   source="phy.md §1, §3: 868.95 MHz, 100 kcps NRZ, sync 543D 54CD (A) / 543D 543D (B)"),
    "C2": ModeSpec("C2", 869.525e6, 50e3, 25e3, "nrz", C_SYNC_A, C_SYNC_B, preamble_pairs=16, gaussian_bt=0.5,
                   postamble=chips("01010101"),
                   uplink=False, source="phy.md §1: C2 other->meter, 869.525 MHz, 50 kcps GFSK BT 0.5"),
}

# What the receiver listens for by default, per channel frequency.
RX_MODES = ("S1", "T1", "C1", "C2")


def mode(name: str) -> ModeSpec:
    try:
        return MODES[name.upper()]
    except KeyError:
        raise ValueError(f"unknown mode {name!r}; known: {', '.join(MODES)}") from None
