"""Bidirectional sessions: a gateway and a meter emulator joined by a simulated radio channel.

Both stations modulate their frames with our TX (``dsp``) and decode what they hear with the full
receiver (``flowgraphs.pipelines.receive``): channeliser, burst finder, demodulator, CRCs and the OMS stack.
Only the channel is simulated: one sample-exact clock at 2.4 Msps centred 868.9125 MHz, so that
868.30 (S, T2 downlink), 868.95 (T1 / C1 uplink), 869.525 MHz (C2 downlink) and R2's ten channels
(868.03-868.57 MHz) are all in band; a mode outside it (F2 at 433.82 MHz) gets a narrow band of its
own (:func:`sim_band`). White noise, a propagation delay, half-duplex stations that do not hear themselves.

Timing rules (../shared/spec/phy.md §6): a meter that offers access listens after each of its
frames; the other station must *start* its reply inside [t_RO min, t_RO max] after the end of that
frame. Within a dialogue every frame starts inside that window after the end of the frame before
it, whoever sent it (a gateway ACK to an ACC-DMD may be followed by its request); where the digest
gives the meter's own reply a window of its own (R2: 10 ms-10 s, F2: 3 ms-4 s), the meter's frames
are judged against that one. A bidirectional mode whose window the digest lacks (N2: two vendors
disagree) has no dialogue, and asking for one says so (:func:`profile_for`). Each station
schedules its reply from its *own estimate* of the previous frame's end (exact for its own frames,
the receiver's ``end_sample`` for the other's), so the delays in the log are measured, not set.
The meter only syncs to frames whose preamble starts inside its window, like a real meter radio.

Dialogues (phy.md §6.4):
    installation   meter SND-IR -> gateway CNF-IR; meter then sends SND-NR (installed)
    access demand  meter ACC-DMD -> gateway ACK -> REQ-UD2 -> meter RSP-UD -> gateway SND-NKE
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import numpy as np

from dsp.channel import DEFAULT_BLOCK, Burst, NoiseStream, bit_rate, burst_frame, noise_power
from dsp.modes import MODES, ModeSpec, rx_mode_for, shortest_preamble_pairs
from dsp.modes import mode as mode_named
from dsp.modulate import FramePlacement
from mbus.builder import build, kind_name, kind_of
from mbus.errors import DecodeError
from mbus.keys import KeyStore
from mbus.telegram import decode
from sdr.types import IQChunk, StreamInfo

from ..pipelines.receive import WIDE_RATE_HZ, Receiver, RxFrame

SIM_RATE = 2.4e6
SIM_CENTER = 868.9125e6
NARROW_SIM_RATE = 250e3  # a dialogue outside the 868 MHz band (F2)
SETTLE_WINDOWS = 16  # burst-finder windows a narrow-channel receiver runs before it listens (Station)
WINDOW_GUARD_S = 200e-6  # a meter opens its receiver this much before t_RO min and after t_RO max


@dataclass(frozen=True, slots=True)
class LinkProfile:
    """One bidirectional mode: PHY per direction, receiver modes, response window."""

    name: str
    uplink: str  # MODES key the meter transmits with
    downlink: str  # MODES key the other station transmits with
    rx_uplink: tuple[str, ...]  # receiver modes that hear the uplink
    rx_downlink: tuple[str, ...]
    window_s: tuple[float, float]  # t_RO min, max
    turnaround_s: float  # when a station aims to start its reply (inside the window)
    fast_response: bool = False  # C2: ELL CC D bit (100 ms instead of 1000 ms)
    meter_window_s: tuple[float, float] | None = None  # the meter's reply, when not window_s (R2, F2)

    def window_for(self, meter_sends: bool) -> tuple[float, float]:
        """The window a frame must start in: the meter's reply window for the meter's frames."""
        return self.meter_window_s if meter_sends and self.meter_window_s is not None else self.window_s


def link_profile(answer: ModeSpec) -> LinkProfile:
    """The dialogue of a mode another station answers with (ModeSpec.answers / response_window_s):
    the meter sends ``answer.answers``, the other station replies with ``answer``; each side listens
    with the receivable mode that hears the other's PHY."""
    if answer.answers is None or answer.response_window_s is None or answer.turnaround_s is None:
        raise ValueError(f"mode {answer.name} is not answered with in a dialogue")
    up = MODES[answer.answers]
    return LinkProfile(answer.name, up.name, answer.name, (rx_mode_for(up).name,), (rx_mode_for(answer).name,),
                       answer.response_window_s, answer.turnaround_s, fast_response=answer.fast_response,
                       meter_window_s=answer.meter_response_window_s)


# T2: meter sends T1 PHY at 868.95, the other station answers 32.768 kcps Manchester at 868.30;
# S2: both directions 868.30; C2 fast response (D = 1): 100 ms +- 0.5 ms, the answer at 869.525 MHz GFSK;
# R2 both directions on channel 5 (868.33), answer 3-50 ms, meter reply 10 ms-10 s; F2 both directions
# at 433.82 MHz, answer fast 99.5-100.5 ms, meter reply 3 ms-4 s. Tightest window first.
PROFILES: dict[str, LinkProfile] = {
    p.name: p for p in sorted((link_profile(m) for m in MODES.values() if m.answers is not None),
                              key=lambda p: p.window_s[1])}


def profile_for(name: str) -> LinkProfile:
    """The dialogue of a mode by name (any case); ValueError naming what is missing otherwise: a
    unidirectional mode, or a bidirectional one whose window the spec digest does not give."""
    spec = mode_named(name)  # ValueError for an unknown mode (N2g: not supported, and why)
    if spec.name in PROFILES:
        return PROFILES[spec.name]
    if spec.dialogue_missing:
        raise ValueError(f"no {spec.name} dialogue: {spec.dialogue_missing}")
    raise ValueError(f"no {spec.name} dialogue: dialogues are named by the mode the other station answers "
                     f"with: {', '.join(PROFILES)}")


def sim_band(p: LinkProfile) -> tuple[float, float]:
    """(sample rate, centre) of the simulated channel for a dialogue: the 868 MHz band when both
    directions' channels lie inside it, else NARROW_SIM_RATE with the channels an eighth of the band
    off the centre (F2)."""
    specs = (MODES[p.uplink], MODES[p.downlink])
    half = max(m.rx_bandwidth_hz for m in specs) / 2
    if all(abs(m.channel_hz - SIM_CENTER) + half <= 0.45 * SIM_RATE for m in specs):
        return SIM_RATE, SIM_CENTER
    lo, hi = min(m.channel_hz for m in specs) - half, max(m.channel_hz for m in specs) + half
    rate = NARROW_SIM_RATE
    if hi - lo + rate / 4 > 0.9 * rate:
        raise ValueError(f"{p.name}: the two directions' channels are too far apart for one simulated band")
    return rate, (lo + hi) / 2 + rate / 8


def station_offset_hz(spec: ModeSpec, nominal_hz: float) -> float:
    """A station's carrier error: ``nominal_hz`` (the 868 MHz stations' +8 / -5 kHz), or 80 % of the
    mode's carrier tolerance where that is smaller (R2 10 ppm, F2 16 ppm)."""
    lim = dict(spec.limits)
    if "carrier_offset_hz" in lim:
        tol = lim["carrier_offset_hz"][1]
    elif "carrier_error_ppm" in lim:
        tol = lim["carrier_error_ppm"][1] * 1e-6 * spec.channel_hz
    else:
        return nominal_hz
    return float(np.sign(nominal_hz) * min(abs(nominal_hz), 0.8 * tol))


def reachable_windows(turnaround_s: float) -> dict[str, bool]:
    """Which modes' response windows a station with this measured turnaround (end of a received
    frame -> first sample on air) can meet: a live gateway says this up front."""
    return {name: turnaround_s <= p.window_s[1] for name, p in PROFILES.items()}


def reachable_statement(turnaround_s: float) -> str:
    """The line a live gateway or meter prints up front: its measured turnaround and the windows
    it can meet."""
    can = reachable_windows(turnaround_s)
    ok = [m for m, v in can.items() if v]
    no = [m for m, v in can.items() if not v]
    return (f"measured turnaround {turnaround_s * 1e3:.1f} ms: windows reachable for {', '.join(ok) or 'no mode'}"
            + (f"; not for {', '.join(no)}" if no else ""))


@dataclass(frozen=True, slots=True)
class Transmission:
    station: str
    mode: str
    telegram: bytes
    samples: np.ndarray  # baseband at the channel offset, amplitude applied
    placement: FramePlacement  # start, preamble, sync word, data, postamble, end (at the transmitter)

    @property
    def start(self) -> int:
        """Sample index of the first sample on the channel clock (at the transmitter)."""
        return self.placement.start

    @property
    def end(self) -> int:
        return self.placement.end


class SimChannel:
    """A shared medium with a sample-exact clock: transmissions are stored, listeners render the
    sum of what others sent in any interval, plus noise, delayed by the propagation time."""

    def __init__(self, *, sample_rate_hz: float = SIM_RATE, center_freq_hz: float = SIM_CENTER,
                 ebn0_db: float = 20.0, ref_bit_rate: float = 100e3, distance_m: float = 1000.0, seed: int = 1,
                 amplitude: float = 0.3):
        self.info = StreamInfo(sample_rate_hz=sample_rate_hz, center_freq_hz=center_freq_hz, source="simulated")
        self.rng = np.random.default_rng(seed)
        self.amplitude = amplitude
        self.delay = int(round(distance_m / 299_792_458.0 * sample_rate_hz))
        # one noise level for the channel: ebn0_db holds for the fastest bit rate of the session (the
        # hardest direction); slower directions get proportionally more energy per bit
        self.noise_rms = float(np.sqrt(noise_power(amplitude ** 2, ebn0_db, ref_bit_rate, sample_rate_hz)))
        self.log: list[Transmission] = []

    def transmit(self, station: str, mode: ModeSpec, telegram: bytes, start: int,
                 freq_offset_hz: float = 0.0) -> Transmission:
        frame = burst_frame(Burst(mode=mode, telegram=telegram, freq_offset_hz=freq_offset_hz),
                            sample_rate_hz=self.info.sample_rate_hz, center_freq_hz=self.info.center_freq_hz,
                            start=start, phase_rad=float(self.rng.uniform(0, 2 * np.pi)))
        tx = Transmission(station, mode.name, telegram, (self.amplitude * frame.samples).astype(np.complex64),
                          frame.placement)
        self.log.append(tx)
        return tx

    def capture(self, listener: str, start: int, stop: int) -> np.ndarray:
        return np.concatenate([*self.capture_blocks(listener, start, stop), np.zeros(0, np.complex64)])

    def capture_blocks(self, listener: str, start: int, stop: int,
                       block_samples: int = DEFAULT_BLOCK) -> Iterator[np.ndarray]:
        """:meth:`capture` in blocks (the same samples whatever their size); the noise generator
        ends where :meth:`capture` leaves it once all are taken."""
        n = stop - start
        noise = NoiseStream(self.rng, n)
        for a in range(start, stop, block_samples):
            b = min(a + block_samples, stop)
            out = (self.noise_rms / np.sqrt(2) * noise.take(b - a)).astype(np.complex64)
            for tx in self.log:
                if tx.station == listener:
                    continue  # half duplex: a station does not receive while it sends, nor itself
                ta, tb = tx.start + self.delay, tx.end + self.delay
                lo, hi = max(ta, a), min(tb, b)
                if lo < hi:
                    out[lo - a:hi - a] += tx.samples[lo - ta:hi - ta]
            yield out

    def true_start(self, telegram: bytes, station: str) -> int | None:
        """Ground truth for the log: when (at the receiver) a frame's first chip arrived."""
        for tx in reversed(self.log):
            if tx.telegram == telegram and tx.station == station:
                return tx.start + self.delay
        return None


@dataclass(slots=True)
class Event:
    t_s: float
    station: str
    action: str  # "TX" | "RX" | "LOST" | "DATA" (a record the gateway decoded)
    kind: str
    telegram: bytes = b""
    delay_ms: float | None = None  # measured by the station that received it
    true_delay_ms: float | None = None  # from the channel's ground truth
    window_ms: tuple[float, float] | None = None
    text: str = ""

    @property
    def in_window(self) -> bool | None:
        if self.delay_ms is None or self.window_ms is None:
            return None
        return self.window_ms[0] <= self.delay_ms <= self.window_ms[1]

    def line(self) -> str:
        out = f"{self.t_s * 1e3:10.3f} ms  {self.station:<7} {self.action:<4} {self.kind:<8}"
        if self.delay_ms is not None:
            verdict = "inside" if self.in_window else "OUTSIDE"
            out += (f" response delay {self.delay_ms:.3f} ms (true {self.true_delay_ms:.3f}), window "
                    f"{self.window_ms[0]:g}-{self.window_ms[1]:g} ms: {verdict}")
        if self.text:
            out += f"  {self.text}"
        return out


@dataclass
class SessionLog:
    profile: str
    dialogue: str
    events: list[Event] = field(default_factory=list)
    completed: bool = False

    def add(self, ev: Event) -> None:
        self.events.append(ev)

    def kinds(self, action: str = "TX") -> list[str]:
        return [e.kind for e in self.events if e.action == action]

    def delays(self) -> list[Event]:
        return [e for e in self.events if e.delay_ms is not None]

    def text(self) -> str:
        head = f"{self.profile} {self.dialogue}: {'complete' if self.completed else 'INCOMPLETE'}"
        return "\n".join([head, *(e.line() for e in self.events)])


class Station:
    """Half-duplex radio: transmits one PHY, receives with the full receiver chain."""

    def __init__(self, name: str, channel: SimChannel, tx_mode: str, rx_modes: tuple[str, ...],
                 keys: KeyStore | None = None, freq_offset_hz: float = 0.0):
        self.name = name
        self.channel = channel
        self.tx_mode = MODES[tx_mode]
        self.rx_modes = rx_modes
        self.keys = keys
        self.freq_offset_hz = freq_offset_hz
        # a narrow channel's burst finder learns the noise floor over its first windows (64 channel
        # samples, ~1.7 ms at F2's 38.4 ksps): the receiver runs SETTLE_WINDOWS of them before the
        # time it listens for (what it hears there before its window is not taken, see run_dialogue)
        rate = min(MODES[m].rx_rate_hz for m in rx_modes)
        self.settle = int(SETTLE_WINDOWS * 64 / rate * channel.info.sample_rate_hz) if rate < WIDE_RATE_HZ else 0

    def send(self, telegram: bytes, start: int) -> Transmission:
        return self.channel.transmit(self.name, self.tx_mode, telegram, start, self.freq_offset_hz)

    def listen(self, start: int, stop: int) -> list[RxFrame]:
        """Frames (CRC good) heard in [start, stop), with absolute sample positions."""
        x = self.channel.capture(self.name, start, stop)
        rx = Receiver(self.channel.info, self.rx_modes)
        chunk = IQChunk(samples=x, info=self.channel.info, start=0)
        frames = [*rx.process(chunk), *rx.flush()]
        out = []
        for f in frames:
            if f.crc_ok:
                out.append(_shift(f, start))
        return sorted(out, key=lambda f: f.sample)


def _shift(f: RxFrame, by: int) -> RxFrame:
    return replace(f, sample=f.sample + by, end_sample=f.end_sample + by)


def frame_end_estimate(f: RxFrame, sample_rate_hz: float) -> float:
    """Sample where the transmission ended: after the last data chip comes the postamble our TX
    sends for the mode (S / T: 2-4 chips per EN 13757-4; C: 8 chips, see dsp.modes)."""
    m = MODES[f.mode]
    return f.end_sample + len(m.postamble) / f.chip_rate_hz * sample_rate_hz


def frame_start_estimate(f: RxFrame, sample_rate_hz: float) -> float:
    """Sample where the transmission began: the sync word start minus the mode's preamble (the
    short one for Manchester: S2 / T2 downlink, nominal length)."""
    pairs = shortest_preamble_pairs(MODES[f.mode])
    return f.sample - 2 * pairs / f.chip_rate_hz * sample_rate_hz


# ----------------------------------------------------------------------------------------------
# the two roles


class MeterLogic:
    """What a meter sends and answers, radio aside: its frames (installation request, access demand,
    readings with the access bits set) and the answer to a frame it hears — RSP-UD to a request,
    ACK to a command, nothing to an ACK, CNF-IR (installed) or SND-NKE. Frames for other meters,
    and frames from meters, get no answer."""

    def __init__(self, profile: LinkProfile, *, manufacturer: str = "ELS", id: str = "12345678",
                 device_type: int = 7, version: int = 1, key: bytes | None = None, volume_l: int = 12345678,
                 synchronous: bool = False):
        self.profile = profile
        self.address = {"manufacturer": manufacturer, "id": id, "version": version, "device_type": device_type}
        self.key = key
        self.acc = 0
        self.volume_l = volume_l
        self.synchronous = synchronous
        self.installed = False

    def frame(self, kind: str, with_data: bool = True) -> bytes:
        self.acc = (self.acc + 1) & 0xFF
        spec = dict(self.address, kind=kind, acc=self.acc, access="limited", synchronous=self.synchronous)
        if with_data:  # volume in litres, 8 BCD digits LSB first
            spec["data"] = "0C13" + bytes.fromhex(f"{self.volume_l % 10**8:08d}")[::-1].hex()
        if self.key:
            spec["security"] = 5
        if self.profile.fast_response:  # C2: the ELL CC carries B, A and D (fast response)
            spec["ell"] = {"ci": 0x8C, "acc": self.acc}
            spec["fast_response"] = True
        return build(spec, self.key).telegram

    def for_me(self, telegram: bytes) -> bool:
        """A frame from the other station addressed to this meter."""
        kind = kind_of(telegram[1]) if len(telegram) > 1 else None
        if kind is None or kind.from_meter:
            return False
        try:
            addr = decode(telegram, records=False).link.address
        except DecodeError:
            return False
        return (addr.manufacturer_code, addr.id) == (self.address["manufacturer"], self.address["id"])

    def respond(self, telegram: bytes) -> list[bytes]:
        """The frames the meter answers with (an ACK or CNF-IR needs none; after an ACK the meter
        keeps listening, as run_dialogue does for every frame it receives)."""
        if not self.for_me(telegram):
            return []
        name = kind_name(telegram)
        if name in ("REQ-UD1", "REQ-UD2"):
            return [self.frame("RSP-UD")]
        if name in ("SND-UD", "SND-UD2"):
            return [self.frame("ACK", with_data=False)]
        if name == "CNF-IR":
            self.installed = True
        return []  # ACK, CNF-IR, SND-NKE


class MeterEmulator(Station):
    """A station on the simulated channel that sends and answers with :class:`MeterLogic`."""

    def __init__(self, channel: SimChannel, profile: LinkProfile, *, key: bytes | None = None, **address):
        super().__init__("meter", channel, profile.uplink, profile.rx_downlink,
                         KeyStore(default=key) if key else None,
                         freq_offset_hz=station_offset_hz(MODES[profile.uplink], 8e3))
        self.profile = profile
        self.logic = MeterLogic(profile, key=key, **address)
        self.frame = self.logic.frame
        self.respond = self.logic.respond

    @property
    def installed(self) -> bool:
        return self.logic.installed


class GatewayLogic:
    """What a gateway answers, radio aside: CNF-IR to SND-IR, ACK (+ a queued request) to ACC-DMD,
    queued requests to an SND-NR / ACC-NR offering access, the next request or SND-NKE after a
    meter's RSP-UD / ACK. Decoded readings are kept for the log."""

    def __init__(self, keys: KeyStore | None = None):
        self.keys = keys
        self.queue: deque[str] = deque()  # requests for the next access: "REQ-UD2", "SND-NKE", ...
        self.readings: list[str] = []

    @staticmethod
    def _to_meter(kind: str, meter_link: bytes) -> bytes:
        addr = decode(meter_link, records=False).link.address
        spec = {"kind": kind, "manufacturer": addr.manufacturer_code, "id": addr.id, "version": addr.version,
                "device_type": addr.device_type}
        return build(spec).telegram

    def respond(self, telegram: bytes) -> list[bytes]:
        t = decode(telegram, keys=self.keys)
        kind = kind_of(t.link.c_field)
        name = kind.name if kind else "?"
        how = "decrypted, " if t.decryption == "ok" else ""
        self.readings += [f"{t.link.address.id}: {how}{r.describe()}" for r in t.records]
        if name == "SND-IR":
            return [self._to_meter("CNF-IR", telegram)]
        if name == "ACC-DMD":
            out = [self._to_meter("ACK", telegram)]
            if self.queue:
                out.append(self._to_meter(self.queue.popleft(), telegram))
            return out
        if name in ("RSP-UD", "ACK"):  # inside an access: next request, or close it
            return [self._to_meter(self.queue.popleft() if self.queue else "SND-NKE", telegram)]
        offers = t.tpl is not None and t.tpl.config is not None and t.tpl.config.flags().get("bidirectional")
        if name in ("SND-NR", "ACC-NR") and offers and self.queue:
            return [self._to_meter(self.queue.popleft(), telegram)]
        return []


class Gateway(Station):
    """A station on the simulated channel that answers with :class:`GatewayLogic`."""

    def __init__(self, channel: SimChannel, profile: LinkProfile, *, keys: KeyStore | None = None):
        super().__init__("gateway", channel, profile.downlink, profile.rx_uplink, keys,
                         freq_offset_hz=station_offset_hz(MODES[profile.downlink], -5e3))
        self.profile = profile
        self.logic = GatewayLogic(keys)
        self.queue = self.logic.queue
        self.readings = self.logic.readings
        self.respond = self.logic.respond


# ----------------------------------------------------------------------------------------------
# running a dialogue



def run_dialogue(meter: MeterEmulator, gateway: Gateway, first: bytes, log: SessionLog, *, t0: int = 0,
                 max_frames: int = 12) -> None:
    """Meter sends ``first`` at sample t0; frames go back and forth, each answer started one
    turnaround after the sender's estimate of the previous frame's end. Every step is logged."""
    ch = meter.channel
    fs = ch.info.sample_rate_hz
    w_lo, w_hi = meter.profile.window_s  # where the meter listens after each frame
    pending: deque[tuple[Station, bytes]] = deque([(meter, first)])
    next_start = t0
    prev: Transmission | None = None
    end_estimate: dict[str, float] = {}  # per station: where it believes the previous frame ended
    for _ in range(max_frames):
        if not pending:
            break
        sender, telegram = pending.popleft()
        tx = sender.send(telegram, next_start)
        log.add(Event(tx.start / fs, sender.name, "TX", kind_name(telegram), telegram,
                      text=f"{tx.mode} {len(telegram)} bytes, {len(tx.samples) / fs * 1e3:.2f} ms on air"))
        listener: Station = gateway if sender is meter else meter
        lo = hi = None
        if listener is meter and prev is not None:  # a meter listens only in its window
            lo = end_estimate["meter"] + (w_lo - WINDOW_GUARD_S) * fs
            hi = end_estimate["meter"] + (w_hi + WINDOW_GUARD_S) * fs
            span = (int(lo) - listener.settle, int(hi) + len(tx.samples) + ch.delay + int(2e-3 * fs))
        else:  # the gateway listens all the time; capture around the frame
            span = (max(0, tx.start - int(5e-3 * fs) - listener.settle), tx.end + ch.delay + int(5e-3 * fs))
        heard = [f for f in listener.listen(*span) if f.telegram == telegram]
        if lo is not None:
            heard = [f for f in heard if lo <= frame_start_estimate(f, fs) <= hi]
        if not heard:
            log.add(Event(tx.start / fs, listener.name, "LOST", kind_name(telegram),
                          text="no frame started inside the window" if lo is not None else "not received"))
            return
        f = heard[0]
        ev = Event(f.sample / fs, listener.name, "RX", kind_name(telegram), telegram,
                   text=f"{f.mode} SNR {f.snr_db:.0f} dB, offset {f.freq_offset_hz / 1e3:+.1f} kHz")
        if prev is not None:
            ev.delay_ms = (frame_start_estimate(f, fs) - end_estimate[listener.name]) / fs * 1e3
            prev_end_at_listener = prev.end + (ch.delay if prev.station != listener.name else 0)
            ev.true_delay_ms = (tx.start + ch.delay - prev_end_at_listener) / fs * 1e3
            w = meter.profile.window_for(sender is meter)
            ev.window_ms = (w[0] * 1e3, w[1] * 1e3)
        log.add(ev)
        end_estimate[sender.name] = tx.end
        end_estimate[listener.name] = frame_end_estimate(f, fs)
        if listener is gateway:
            seen = len(gateway.readings)
            pending.extend((gateway, a) for a in gateway.respond(telegram))
            for reading in gateway.readings[seen:]:
                log.add(Event(frame_end_estimate(f, fs) / fs, "gateway", "DATA", kind_name(telegram), text=reading))
        else:
            pending.extend((meter, a) for a in meter.respond(telegram))
        prev = tx
        if pending:
            next_start = int(round(end_estimate[pending[0][0].name] + meter.profile.turnaround_s * fs))
    log.completed = not pending and all(e.action != "LOST" for e in log.events)


def _setup(profile: str, ebn0_db: float, key: bytes | None, seed: int, turnaround_s: float | None):
    p = profile_for(profile)
    if turnaround_s is not None:
        p = replace(p, turnaround_s=turnaround_s)
    ref = max(bit_rate(MODES[p.uplink]), bit_rate(MODES[p.downlink]))
    rate, center = sim_band(p)
    ch = SimChannel(sample_rate_hz=rate, center_freq_hz=center, ebn0_db=ebn0_db, ref_bit_rate=ref, seed=seed)
    return p, ch, MeterEmulator(ch, p, key=key), Gateway(ch, p, keys=KeyStore(default=key) if key else None)


def _first_start(ch: SimChannel, gateway: Gateway) -> int:
    """The meter's first frame: 2 ms into the channel, after the gateway's receiver has settled."""
    return int(2e-3 * ch.info.sample_rate_hz) + gateway.settle


def installation(profile: str = "T2", *, ebn0_db: float = 20.0, key: bytes | None = None, seed: int = 1,
                 turnaround_s: float | None = None) -> tuple[SessionLog, SimChannel]:
    """SND-IR -> CNF-IR, then the installed meter's SND-NR reaches the gateway."""
    p, ch, meter, gateway = _setup(profile, ebn0_db, key, seed, turnaround_s)
    log = SessionLog(p.name, "installation")
    run_dialogue(meter, gateway, meter.frame("SND-IR"), log, t0=_first_start(ch, gateway))
    if not (log.completed and meter.installed):
        log.completed = False
        return log, ch
    nr = SessionLog(profile, "installation")
    start = max(tx.end for tx in ch.log) + int(0.05 * ch.info.sample_rate_hz)
    run_dialogue(meter, gateway, meter.frame("SND-NR"), nr, t0=start)
    log.events += nr.events
    log.completed = nr.completed and "SND-NR" in [e.kind for e in nr.events if e.action == "RX"]
    return log, ch


def access_demand(profile: str = "T2", *, ebn0_db: float = 20.0, key: bytes | None = None, seed: int = 1,
                  turnaround_s: float | None = None) -> tuple[SessionLog, SimChannel]:
    """ACC-DMD -> ACK -> REQ-UD2 -> RSP-UD -> SND-NKE."""
    p, ch, meter, gateway = _setup(profile, ebn0_db, key, seed, turnaround_s)
    gateway.queue.append("REQ-UD2")
    log = SessionLog(p.name, "access demand")
    run_dialogue(meter, gateway, meter.frame("ACC-DMD", with_data=False), log, t0=_first_start(ch, gateway))
    return log, ch


DIALOGUES = {"installation": installation, "access": access_demand}


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionRecording:
    """The whole session as one capture (what a third receiver in the middle would record): its
    length, the blocks to write (once), and a SigMF annotation per transmission from its placement."""

    n_samples: int
    blocks: Iterator[np.ndarray]
    annotations: list[dict]


def channel_recording(ch: SimChannel, block_samples: int = DEFAULT_BLOCK) -> SessionRecording:
    end = max(tx.end for tx in ch.log) + ch.delay + int(2e-3 * ch.info.sample_rate_hz)
    notes = [{"core:sample_start": tx.placement.start + ch.delay, "core:sample_count": tx.placement.sample_count,
              "core:label": f"{tx.station} {tx.mode} {kind_name(tx.telegram)}", "wmbus:mode": tx.mode,
              "wmbus:telegram": tx.telegram.hex(),
              "core:freq_lower_edge": MODES[tx.mode].channel_hz - min(150e3, MODES[tx.mode].rx_bandwidth_hz / 2),
              "core:freq_upper_edge": MODES[tx.mode].channel_hz + min(150e3, MODES[tx.mode].rx_bandwidth_hz / 2)}
             for tx in ch.log]
    return SessionRecording(n_samples=end, blocks=ch.capture_blocks("observer", 0, end, block_samples),
                            annotations=notes)
