"""A live meter emulator: send a meter's frames on a schedule through a TX sink, listen in its
response window on any IQ source, answer requests — for testing gateways with a real radio.

The meter's frames and answers are the simulated session's (:class:`flowgraphs.stations.session.MeterLogic`):
an installation request (SND-IR) until a CNF-IR arrives, then readings (SND-NR) that offer access;
or access offers (ACC-NR) / access demands (ACC-DMD); RSP-UD to REQ-UD1/2, ACK to SND-UD.

Timing (phy.md §6) is kept in host time, as the live gateway keeps it: our frame's end is when its
last sample was handed to the sink plus nothing for the driver's buffer (unknown without device
time); a received frame's start and end come from :class:`flowgraphs.pipelines.live.ArrivalClock`. After
each of its frames the meter accepts a frame that starts inside [t_RO min, t_RO max] after it,
widened by phy.md's 200 us guard and ``slack_s`` for that host-time uncertainty; every received
frame is logged with its measured delay and whether that is inside the strict window. An answer
starts one turnaround after the received frame's end, or is logged MISSED when the chain was not
ready before the window closed. Frames from meters and frames for other meters are counted, not
answered.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from dsp.modes import MODES
from mbus.builder import kind_name
from sdr.types import IQChunk, StreamInfo

from ..pipelines.analyze import sync_factor
from ..pipelines.live import ArrivalClock
from ..pipelines.receive import Receiver
from .gateway_live import modulate_burst, send_in_window
from .session import WINDOW_GUARD_S, LinkProfile, MeterLogic, frame_end_estimate, frame_start_estimate

SENDS = ("SND-IR", "SND-NR", "ACC-NR", "ACC-DMD")


@dataclass(slots=True)
class MeterEvent:
    t_s: float  # since the emulator started
    action: str  # TX, RX, LATE (heard outside the window), MISSED (answer not ready in time)
    kind: str
    text: str = ""

    def line(self) -> str:
        return f"{self.t_s:9.3f} s  {self.action:<6} {self.kind:<8} {self.text}".rstrip()


class LiveMeter:
    """Send ``logic``'s frames through ``sink`` (a :class:`sdr.soapy_tx.SoapySink`, opened, on the
    uplink channel) and answer what arrives in ``chunks`` (tuned to hear the downlink)."""

    def __init__(self, info: StreamInfo, profile: LinkProfile, sink, logic: MeterLogic, *, send: str = "SND-IR",
                 interval_s: float = 10.0, count: int | None = None, turnaround_s: float | None = None,
                 slack_s: float = 5e-3, log: Callable[[str], None] = print):
        if send not in SENDS:
            raise ValueError(f"a meter sends one of {', '.join(SENDS)}, not {send}")
        if interval_s <= 0:
            raise ValueError(f"interval {interval_s} s: give a positive number of seconds")
        self.info = info
        self.profile = profile
        self.sink = sink
        self.logic = logic
        self.send_kind = send
        self.interval_s = interval_s
        self.count = count
        self.turnaround_s = profile.turnaround_s if turnaround_s is None else turnaround_s
        self.slack_s = slack_s
        self.log = log
        self.events: list[MeterEvent] = []
        self.counts = {"sent": 0, "answered": 0, "missed": 0, "late": 0, "other": 0}
        self.rx = Receiver(info, profile.rx_downlink)
        self._t0 = time.monotonic()
        self._last_end: float | None = None  # host time our last frame (or the frame we wait after) ended
        self._last_what = ""  # which frame that was, for the log
        self._next_tx = self._t0

    def _event(self, action: str, kind: str, text: str = "") -> None:
        ev = MeterEvent(time.monotonic() - self._t0, action, kind, text)
        self.events.append(ev)
        self.log(ev.line())

    def next_interval(self) -> float:
        """Seconds to the next scheduled frame: the interval, or with the synchronous bit the
        interval scaled by the next access number (phy.md §6.3, UNSURE)."""
        if self.logic.synchronous:
            return self.interval_s * sync_factor((self.logic.acc + 1) & 0xFF)
        return self.interval_s

    def _transmit(self, telegram: bytes, what: str) -> None:
        x = modulate_burst(self.profile.uplink, telegram, self.sink.sample_rate_hz, self.sink.center_freq_hz)
        start = time.monotonic()
        self.sink.send(x)
        end = start + len(x) / self.sink.sample_rate_hz
        self._last_end, self._last_what = end, f"our {kind_name(telegram)}"
        self._event("TX", kind_name(telegram), f"{self.profile.uplink} {len(telegram)} bytes{what}")

    def _scheduled(self) -> None:
        kind = self.send_kind
        if kind == "SND-IR" and self.logic.installed:
            kind = "SND-NR"  # installed: readings that offer access
        self._transmit(self.logic.frame(kind, with_data=kind != "ACC-DMD"), f", access number {self.logic.acc}")
        self.counts["sent"] += 1
        self._next_tx += self.next_interval()

    def _heard(self, f, clock: ArrivalClock) -> None:
        kind = kind_name(f.telegram)
        if not self.logic.for_me(f.telegram):
            self.counts["other"] += 1
            return
        rate = self.info.sample_rate_hz
        start, end = clock.on_air(frame_start_estimate(f, rate)), clock.on_air(frame_end_estimate(f, rate))
        lo, hi = self.profile.window_s
        if start is None or end is None or self._last_end is None:
            self.counts["late"] += 1
            self._event("LATE", kind, "the meter was not listening (no frame of its own open)")
            return
        delay = start - self._last_end
        inside = lo <= delay <= hi
        verdict = "inside" if inside else "OUTSIDE"
        if not (lo - WINDOW_GUARD_S - self.slack_s <= delay <= hi + WINDOW_GUARD_S + self.slack_s):
            self.counts["late"] += 1
            self._event("LATE", kind, f"started {delay * 1e3:.1f} ms after {self._last_what}, window "
                        f"{lo * 1e3:g}-{hi * 1e3:g} ms: the meter was not listening")
            return
        self._event("RX", kind, f"started {delay * 1e3:.1f} ms after {self._last_what} ({verdict} the window "
                    f"{lo * 1e3:g}-{hi * 1e3:g} ms), SNR {f.snr_db:.0f} dB")
        self._last_end, self._last_what = end, f"the {kind}"  # the dialogue's next frame times from here
        for r in send_in_window(self.sink, self.profile.uplink, self.logic.respond(f.telegram), end, hi,
                                self.turnaround_s):
            if r.started is None:
                self.counts["missed"] += 1
                self._event("MISSED", kind_name(r.telegram), f"ready {(r.ready - end) * 1e3:.1f} ms after the "
                            f"{kind}, window {lo * 1e3:g}-{hi * 1e3:g} ms")
                return
            self._last_end, self._last_what = r.end, f"our {kind_name(r.telegram)}"
            self.counts["answered"] += 1
            self._event("TX", kind_name(r.telegram),
                        f"answer started {(r.started - end) * 1e3:.1f} ms after the {kind}")
        if kind == "CNF-IR":
            self._event("DATA", kind, "installed: readings (SND-NR) from now on")
        if kind == "SND-NKE":
            self._last_end = None  # the gateway closed the dialogue: nothing more until our next frame

    def run(self, chunks: Iterable[IQChunk]) -> list[MeterEvent]:
        clock = ArrivalClock(self.info.sample_rate_hz)
        self._t0 = self._next_tx = time.monotonic()
        for chunk in chunks:
            clock.mark(chunk.end, chunk.arrived)
            for f in self.rx.process(chunk):
                if f.crc_ok:
                    self._heard(f, clock)
            due = self.count is None or self.counts["sent"] < self.count
            if due and time.monotonic() >= self._next_tx:
                self._scheduled()
        return self.events

    def summary(self) -> str:
        c = self.counts
        return (f"{c['sent']} frames sent, {c['answered']} answers, {c['missed']} missed, {c['late']} heard outside "
                f"the window, {c['other']} frames for others; installed: {'yes' if self.logic.installed else 'no'}")


def downlink_center(profile: LinkProfile) -> float:
    """A receive centre that hears the profile's downlink channel off DC (250 kHz below it)."""
    return MODES[profile.downlink].channel_hz - 250e3
