"""Link modes as data (EN 13757-4; digest ../shared/spec/phy.md sections 1-7).

A `ModeSpec` holds everything about one link mode: where it is on air, how its chips are made,
what the receiver searches for, the conformance limits the analyser checks, the duty cycle of its
sub-band and, for the modes a station answers with, the response window. The modulator, the
demodulator, the receive channel plan, the analyser and the dialogue simulator all read it, so TX
and RX cannot disagree and a new link mode is one `ModeSpec` (plus `register_mode`).

Relations between modes are computed from the data, never named:
- `rx_mode_for(spec)`: the receivable mode whose demodulator hears ``spec`` (same PHY: channel,
  chip rate, coding, sync words; the modes differ only in preamble length or direction);
- `shared_search(a, b)`: ``a``'s sync search also finds ``b`` (same channel, ``a``'s searched
  preamble + sync is the end of ``b``'s, ``b``'s chip rate inside ``a``'s search range): one
  search serves both and ``b``'s longer sync word is checked after.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

from .coding import MANCHESTER, NRZ, THREE_OF_SIX_CODING, Coding

Limit = tuple[float | None, float | None]  # (min, max); None = no bound


def chips(text: str) -> tuple[int, ...]:
    return tuple(int(c) for c in text.replace(" ", ""))


@dataclass(frozen=True, slots=True, kw_only=True)
class ModeSpec:
    name: str  # "S1", "T1", "C1", ...
    channel_hz: float  # nominal centre frequency
    chip_rate: float  # chips per second
    deviation_hz: float  # nominal peak deviation
    coding: Coding
    sync: tuple[int, ...]  # chips after the preamble, frame format A
    sync_b: tuple[int, ...] | None = None  # sync announcing frame format B (None: format A only)
    preamble_pairs: int = 19  # n x "01" sent by our TX
    postamble: tuple[int, ...] = ()
    gaussian_bt: float | None = None  # None = plain 2-FSK
    uplink: bool = True  # meter -> other station
    # receiver: relative chip-rate search range, preamble chips in the sync template (never more than
    # the shortest preamble the mode allows), normalised correlation needed to try a decode
    chip_rate_tolerance: float = 0.02
    rx_preamble_chips: int = 32
    sync_threshold: float = 0.6
    search_sync_chips: int = 0  # leading sync chips searched (0: all of format A's; see search_sync)
    # a low chip rate whose crystal error is a large part of the deviation (N, F, R2): the sync search
    # runs on the two-tone matched filter around the burst's spectral carrier (the discriminator's
    # candidates after its), and the carrier is measured on the known chips (preamble + sync) before
    # the chip decisions, where the lag-one estimate shrinks towards the channel centre at a low SNR
    carrier_from_chips: bool = False
    # conformance limits checked by dsp.measure.verdicts: metric -> (min, max)
    limits: tuple[tuple[str, Limit], ...] = ()
    duty_cycle_percent: float = 0.1  # of the sub-band the mode transmits in (phy.md §7, UNSURE)
    # modes another station answers with: the uplink mode answered, t_RO window, aimed turnaround
    answers: str | None = None
    response_window_s: tuple[float, float] | None = None
    turnaround_s: float | None = None
    fast_response: bool = False  # C2: ELL CC D bit (100 ms instead of 1000 ms)
    # the meter's own reply to the other station when its window differs from response_window_s
    # (R2, F2: phy.md §6.1); None: the same window both ways
    meter_response_window_s: tuple[float, float] | None = None
    # a bidirectional mode without a dialogue: the fact the spec digest lacks (said by `session`)
    dialogue_missing: str = ""
    # receive channel: the channeliser's two-sided passband and the channel sample rate it aims at;
    # modes with the same pair share one channeliser (one FFT for all their channels)
    rx_bandwidth_hz: float = 350e3
    rx_rate_hz: float = 400e3
    # every channel the mode may use (R2: ten); empty = just ``channel_hz`` (which TX uses by default)
    channels_hz: tuple[float, ...] = ()
    # heard without --modes (every mode whose channels lie in the captured band, issue #13); False would
    # leave a mode to be asked for by name
    rx_by_default: bool = True
    source: str = ""

    def __post_init__(self) -> None:
        if self.chip_rate <= 0 or self.deviation_hz <= 0 or self.channel_hz <= 0:
            raise ValueError(f"mode {self.name}: channel, chip rate and deviation must be positive")
        if not self.sync or any(c not in (0, 1) for c in self.sync + (self.sync_b or ())):
            raise ValueError(f"mode {self.name}: sync words are non-empty chip tuples of 0/1")
        n = self.search_sync_chips
        if n and any(w[:n] != self.sync[:n] for w in self.syncs.values()):
            raise ValueError(f"mode {self.name}: the searched sync chips must begin every format's sync word")
        if self.rx_bandwidth_hz <= 0 or self.rx_rate_hz < self.rx_bandwidth_hz:
            raise ValueError(f"mode {self.name}: the receive rate must hold the receive bandwidth")
        if any(f <= 0 for f in self.channels_hz):
            raise ValueError(f"mode {self.name}: channel frequencies must be positive")
        if (self.response_window_s is None) != (self.answers is None):
            raise ValueError(f"mode {self.name}: a response window goes with the mode it answers")
        if self.meter_response_window_s is not None and self.answers is None:
            raise ValueError(f"mode {self.name}: a meter's reply window needs the other station's window")

    @property
    def syncs(self) -> dict[str, tuple[int, ...]]:
        """Sync word per frame format."""
        return {"A": self.sync} if self.sync_b is None else {"A": self.sync, "B": self.sync_b}

    @property
    def formats(self) -> tuple[str, ...]:
        return tuple(self.syncs)

    @property
    def search_sync(self) -> tuple[int, ...]:
        """The sync chips the receiver searches for; the rest of each format's sync word tells the
        formats apart and is checked after the search."""
        return self.sync[: self.search_sync_chips] if self.search_sync_chips else self.sync

    @property
    def all_channels_hz(self) -> tuple[float, ...]:
        """Every channel the mode may use (the receiver plans those inside the band)."""
        return self.channels_hz or (self.channel_hz,)

    @property
    def rx_class(self) -> tuple[float, float]:
        """(channel sample rate aimed at, passband half-width): one channeliser per class."""
        return (self.rx_rate_hz, self.rx_bandwidth_hz / 2)

    @property
    def bit_rate(self) -> float:
        return self.chip_rate * self.coding.info_bits_per_chip

    @property
    def phy_key(self) -> tuple:
        """What a receiver tells modes apart by (preamble length and direction aside)."""
        return (self.channel_hz, self.chip_rate, self.coding.name, self.sync, self.sync_b)


S_SYNC = chips("000111011010010110")
T_SYNC = chips("0000111101")
C_SYNC_A = chips("0101010000111101 0101010011001101")  # 0x543D 0x54CD
C_SYNC_B = chips("0101010000111101 0101010000111101")  # 0x543D 0x543D

# phy.md §1.1 (SiLabs profile), §3 (ST S2-LP defaults), §4 (postamble); all UNSURE in the digest.
# postamble: S and T send 2 to 8 alternating chips (phy.md §4); the upper end differs by vendor (TI
# pads a T frame of an even byte count with a whole 0x55 byte), C sends none: only the minimum is checked
_S_LIMITS = (("deviation_hz", (40e3, 80e3)), ("chip_rate_error_ppm", (-20000, 20000)),
             ("carrier_error_ppm", (-25, 25)), ("preamble_chips", (558, None)), ("postamble_chips", (2, None)))
_T_LIMITS = (("deviation_hz", (40e3, 80e3)), ("chip_rate_error_ppm", (-120000, 120000)),
             ("carrier_error_ppm", (-60, 60)), ("preamble_chips", (38, None)), ("postamble_chips", (2, None)))
_C_LIMITS = (("deviation_hz", (33.75e3, 56.25e3)), ("chip_rate_error_ppm", (-100, 100)),
             ("carrier_error_ppm", (-25, 25)), ("preamble_chips", (32, None)))

_S = dict(channel_hz=868.30e6, chip_rate=32768.0, deviation_hz=50e3, coding=MANCHESTER, sync=S_SYNC,
          postamble=chips("01"), rx_preamble_chips=28, sync_threshold=0.5, duty_cycle_percent=1.0)
# C has no postamble in the standard; our TX still sends 8 alternating chips after the last CRC so
# that receivers which need a final transition (rtl_433's FSK slicer) get every data bit.
# The receiver searches 0x543D (common to both formats; B repeats it) and reads the next 16 chips.
_C = dict(coding=NRZ, sync=C_SYNC_A, sync_b=C_SYNC_B, preamble_pairs=16, postamble=chips("01010101"),
          search_sync_chips=16)

# N a-f (169 MHz), F2 (433.82 MHz): 16-bit sync words after the preamble; format A and B differ after
# the first 8 chips (0xF6), so the receiver searches the end of the preamble plus 0xF6 and reads on.
N_SYNC_A = chips("1111011010001101")  # 0xF68D
N_SYNC_B = chips("1111011001110010")  # 0xF672
# phy.md §1.2 (channel plan), §1 (rates); channel -> (submode letter, chip rate)
N_CHANNELS = {"a": (169.40625e6, 4800.0), "b": (169.41875e6, 4800.0), "c": (169.43125e6, 2400.0),
              "d": (169.44375e6, 2400.0), "e": (169.45625e6, 4800.0), "f": (169.46875e6, 4800.0)}
R2_CHANNELS_HZ = tuple(868.03e6 + n * 0.06e6 for n in range(10))  # phy.md §1: 868.03 + n x 0.06 MHz


def _n_limits(chip_rate: float) -> tuple[tuple[str, Limit], ...]:
    # phy.md §10 (EN 13757-4 N table via ADI AN-1285): deviation +-2.4 kHz +-30 %, carrier +-1.5 kHz at
    # 4.8 kbit/s and +-2.0 kHz at 2.4 kbit/s, data rate +-100 ppm, preamble 16 chips; no postamble (§4)
    carrier = 1.5e3 if chip_rate > 3e3 else 2.0e3
    return (("deviation_hz", (1.68e3, 3.12e3)), ("chip_rate_error_ppm", (-100, 100)),
            ("carrier_offset_hz", (-carrier, carrier)), ("preamble_chips", (16, None)))


# R: chip rate +-2 %, crystal 10 ppm (phy.md §1.1, SiLabs, UNSURE); deviation range not stated: the
# S-mode proportion (40-80 kHz of 50, i.e. 0.8-1.6 x nominal) is our assumption (UNSURE); preamble
# >= 78 chips (§3), postamble 2-8 chips (§4)
_R_LIMITS = (("deviation_hz", (4.8e3, 9.6e3)), ("chip_rate_error_ppm", (-20000, 20000)),
             ("carrier_error_ppm", (-10, 10)), ("preamble_chips", (78, None)), ("postamble_chips", (2, None)))
# F: crystal 16 ppm, chip rate crystal-derived (tool: 0), taken as +-100 ppm like N (UNSURE); deviation
# range not stated: +-30 % as N (UNSURE); preamble >= 78 chips (§3); no postamble (§4)
_F_LIMITS = (("deviation_hz", (3.85e3, 7.15e3)), ("chip_rate_error_ppm", (-100, 100)),
             ("carrier_error_ppm", (-16, 16)), ("preamble_chips", (78, None)))

# Narrow channels: N's passband holds +-(2.4 kHz deviation + half the chip rate + 2 kHz carrier
# tolerance) and rejects the next channel 12.5 kHz away (ST uses 8-10 kHz filters, phy.md §1);
# F and R2 are +-5.5 / +-6 kHz with up to ~7 / ~9 kHz of crystal error (ST: 20 kHz filters).
_N = dict(deviation_hz=2.4e3, coding=NRZ, sync=N_SYNC_A, sync_b=N_SYNC_B, preamble_pairs=8, gaussian_bt=0.5,
          chip_rate_tolerance=1e-4, rx_preamble_chips=16, search_sync_chips=8, duty_cycle_percent=10.0,
          rx_bandwidth_hz=11e3, rx_rate_hz=15e3, carrier_from_chips=True)

# phy.md §6.1: the digest has two vendors' readings of the N2 window and no meter reply window
_N2_WINDOW_CONFLICT = ("the N2 response window is a CONFLICT in the spec digest (phy.md §6.1): ST uses 99.5-100.5 ms "
                       "on every N channel, Silicon Labs 1099.5-1100.5 ms at 4.8 kcps and 2099.5-2100.5 ms at "
                       "2.4 kcps, and neither gives the meter's reply window; no N2 dialogue until the standard's "
                       "values are known")

_MODES: dict[str, ModeSpec] = {}
MODES = MappingProxyType(_MODES)  # name -> ModeSpec, read-only view of the registry


def register_mode(spec: ModeSpec) -> ModeSpec:
    """Add a link mode (its name must be new, or the very same object). Everything that plans
    channels, modulates, demodulates or checks limits finds it from then on."""
    old = _MODES.get(spec.name)
    if old is not None and old is not spec:
        raise ValueError(f"mode {spec.name!r} is already registered")
    if spec.answers is not None and spec.answers not in _MODES and spec.answers != spec.name:
        raise ValueError(f"mode {spec.name!r} answers unknown mode {spec.answers!r}")
    _MODES[spec.name] = spec
    return spec


def unregister_mode(name: str) -> None:
    """Remove a mode added at runtime (tests)."""
    _MODES.pop(name, None)


for _spec in (
    ModeSpec(name="S1", **_S, preamble_pairs=279,
             limits=_S_LIMITS, source="phy.md §1, §3: 868.30 MHz, 32.768 kcps Manchester, long preamble"),
    ModeSpec(name="S2", **_S, preamble_pairs=15, answers="S2", response_window_s=(3e-3, 50e-3), turnaround_s=5e-3,
             source="phy.md §3: S2 / S1-m short preamble (15 pairs); §6.1: t_RO 3-50 ms"),
    ModeSpec(name="T1", channel_hz=868.95e6, chip_rate=100e3, deviation_hz=50e3, coding=THREE_OF_SIX_CODING,
             sync=T_SYNC, preamble_pairs=19, postamble=chips("0101"), chip_rate_tolerance=0.125,
             limits=_T_LIMITS, source="phy.md §1, §3: 868.95 MHz, 100 kcps 3-of-6, T sync 0000111101; "
                                      "§1.1: chip rate +-12 % (RX searches +-12.5 %)"),
    # T2: the meter sends T1's PHY at 868.95, the other station answers 32.768 kcps Manchester at 868.30
    ModeSpec(name="T2", **{**_S, "preamble_pairs": 15}, uplink=False, answers="T1", response_window_s=(2e-3, 3e-3),
             turnaround_s=2.5e-3, source="phy.md §1: T2 other->meter, 32.768 kcps Manchester; §6.1: t_RO 2-3 ms"),
    ModeSpec(name="C1", channel_hz=868.95e6, chip_rate=100e3, deviation_hz=45e3, **_C, chip_rate_tolerance=0.005,
             limits=_C_LIMITS,
             source="phy.md §1, §3: 868.95 MHz, 100 kcps NRZ, sync 543D 54CD (A) / 543D 543D (B); "
                    "§1.1: chip rate crystal-derived"),
    # C2 fast response (D = 1): 100 ms +- 0.5 ms; the other station answers at 869.525 MHz GFSK
    ModeSpec(name="C2", channel_hz=869.525e6, chip_rate=50e3, deviation_hz=25e3, **_C, gaussian_bt=0.5,
             uplink=False, duty_cycle_percent=10.0, answers="C1", response_window_s=(99.5e-3, 100.5e-3),
             turnaround_s=100e-3, fast_response=True,
             source="phy.md §1: C2 other->meter, 869.525 MHz, 50 kcps GFSK BT 0.5; §6.1: t_RO 99.5-100.5 ms; "
                    "§7: 10 % sub-band"),
    *(ModeSpec(name=f"N{kind}{sub}", channel_hz=freq, chip_rate=rate, **_N, limits=_n_limits(rate),
               dialogue_missing="" if kind == "1" else _N2_WINDOW_CONFLICT,
               source=f"phy.md §1, §1.2: channel {sub} {freq / 1e6:.5f} MHz, {rate / 1e3:.1f} kcps 2-GFSK BT 0.5 "
                      "+-2.4 kHz NRZ; §3: 8 x 01 preamble, sync F68D (A) / F672 (B); §10: tolerances; "
                      "§7: duty cycle UNSURE" + ("" if kind == "1" else "; N2 dialogue windows CONFLICT (§6.1)"))
      for kind in "12" for sub, (freq, rate) in N_CHANNELS.items()),
    # F2 both ways at 433.82 MHz; the other station answers in the fast window (ELL CC D = 1, as C2), the
    # meter replies in 3 ms ... 4 s; one turnaround (100 ms) lies in both
    ModeSpec(name="F2", channel_hz=433.82e6, chip_rate=2400.0, deviation_hz=5.5e3, coding=NRZ, sync=N_SYNC_A,
             sync_b=N_SYNC_B, preamble_pairs=39, search_sync_chips=8, chip_rate_tolerance=1e-3,
             limits=_F_LIMITS, duty_cycle_percent=10.0, rx_bandwidth_hz=30e3, rx_rate_hz=38.4e3,
             answers="F2", response_window_s=(99.5e-3, 100.5e-3), turnaround_s=100e-3, fast_response=True,
             meter_response_window_s=(3e-3, 4.0), carrier_from_chips=True,
             source="phy.md §1: 433.82 MHz, 2-FSK +-5.5 kHz, 2.4 kcps NRZ; §3: >= 39 x 01, sync F68D (A) / "
                    "F672 (B); §1.1: 16 ppm crystal, chip rate and deviation tolerance not stated (UNSURE); "
                    "§6.1: other->meter fast 99.5-100.5 ms, meter reply 3 ms-4 s (ST S2-LP)"),
    ModeSpec(name="R2", channel_hz=868.33e6, channels_hz=R2_CHANNELS_HZ, chip_rate=4800.0, deviation_hz=6e3,
             coding=MANCHESTER, sync=S_SYNC, preamble_pairs=39, postamble=chips("0101"), rx_preamble_chips=28,
             sync_threshold=0.5, chip_rate_tolerance=0.02, limits=_R_LIMITS, duty_cycle_percent=1.0,
             rx_bandwidth_hz=30e3, rx_rate_hz=48e3, carrier_from_chips=True,
             answers="R2", response_window_s=(3e-3, 50e-3), turnaround_s=20e-3, meter_response_window_s=(10e-3, 10.0),
             source="phy.md §1: ten channels 868.03 + n x 0.06 MHz (TX default channel 5, 868.33), 2-FSK "
                    "+-6 kHz, 4.8 kcps Manchester; §3: >= 39 x 01, S sync; §1.1: +-2 % chip rate, 10 ppm; "
                    "§4: postamble 2-8 chips; deviation range UNSURE; §6.1: other->meter 3-50 ms, meter reply "
                    "10 ms-10 s (ST S2-LP, UNSURE); one turnaround (20 ms) lies in both"),
):
    register_mode(_spec)

# N2g (4-GFSK, 9.6 ksym/s at 169.4375 MHz): the digest's deviation (§1.3) and sync mapping are
# inferences marked UNSURE, and our modulator and demodulator are 2-level only: not supported yet.
UNSUPPORTED_MODES = {"N2G": "N2g (4-GFSK, 9.6 ksym/s, 169.4375 MHz) is not supported yet: its deviation and "
                            "sync-word mapping are UNSURE in the spec digest (phy.md §1.3)"}


def mode(name: str) -> ModeSpec:
    try:
        return _MODES[_canonical_name(name)]
    except KeyError:
        if name.upper() in UNSUPPORTED_MODES:
            raise ValueError(UNSUPPORTED_MODES[name.upper()]) from None
        raise ValueError(f"unknown mode {name!r}; known: {', '.join(_MODES)}") from None


def _canonical_name(name: str) -> str:
    """Registered spelling of a mode name typed in any case ('n1a' -> 'N1a')."""
    if name in _MODES:
        return name
    return next((k for k in _MODES if k.upper() == name.upper()), name.upper())


def rx_mode_for(spec: ModeSpec) -> ModeSpec:
    """The receivable mode that hears ``spec``: the first registered mode with the same PHY."""
    return next(m for m in _MODES.values() if m.phy_key == spec.phy_key)


def receivable_modes() -> tuple[ModeSpec, ...]:
    """Modes a receiver demodulates by name (one per PHY; the others are heard as it)."""
    return tuple(m for m in _MODES.values() if rx_mode_for(m) is m)


def default_rx_modes() -> tuple[str, ...]:
    """What a receiver listens for unless told otherwise: every receivable meter -> other mode."""
    return tuple(m.name for m in receivable_modes() if m.uplink and m.rx_by_default)


def shortest_preamble_pairs(spec: ModeSpec) -> int:
    """The shortest preamble among the modes heard as ``spec`` (the one a received frame may have)."""
    return min(m.preamble_pairs for m in _MODES.values() if m.phy_key == spec.phy_key)


def search_template_chips(spec: ModeSpec) -> tuple[int, ...]:
    """What the receiver correlates with: the end of the preamble, then the searched sync chips."""
    return (0, 1) * (spec.rx_preamble_chips // 2) + spec.search_sync


def shared_search(a: ModeSpec, b: ModeSpec) -> bool:
    """True when ``a``'s sync search serves ``b`` too: same channel, ``a``'s template is the end of
    ``b``'s preamble + searched sync, and ``a``'s chip-rate search range holds ``b``'s (so ``b`` needs
    no search of its own)."""
    if a.phy_key == b.phy_key or a.channel_hz != b.channel_hz:
        return False
    ta, tb = search_template_chips(a), (0, 1) * b.preamble_pairs + b.search_sync
    return (len(ta) <= len(tb) and tb[len(tb) - len(ta):] == ta
            and abs(b.chip_rate / a.chip_rate - 1) + b.chip_rate_tolerance <= a.chip_rate_tolerance)
