"""A live gateway: receive meter frames from any IQ source, answer through a TX sink in the window.

The answer logic is the simulated session's (:class:`flowgraphs.stations.session.GatewayLogic`). Timing:
a frame's end is placed in host time by the same :class:`flowgraphs.pipelines.live.ArrivalClock` that
measures ``rx`` latency, and the reply starts one turnaround later. Without hardware
timestamps on both streams the reply can only be as early as the chain allows — the chunk still
filling after the frame, demodulation, modulation of the reply, the write — so before it starts
the gateway measures that turnaround on a generated frame at the stream's rate and chunk size and
says which modes' windows it can meet (phy.md §6). A reply that would start after the window is
not sent: it is logged as missed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from dsp.channel import Burst, render
from dsp.modes import MODES
from dsp.modulate import modulate_frame
from mbus.builder import build, kind_name
from sdr.types import IQChunk, StreamInfo

from ..pipelines.live import ArrivalClock
from ..pipelines.receive import Receiver
from .session import GatewayLogic, LinkProfile, MeterLogic, frame_end_estimate


@dataclass(slots=True)
class ReplyEvent:
    meter_frame: str  # kind of the meter's frame
    reply: str  # kind of the reply
    latency_ms: float  # from the end of the meter frame to when the reply could start
    start_ms: float | None  # when it started, after the meter frame's end (None: not sent)
    window_ms: tuple[float, float]

    @property
    def sent(self) -> bool:
        return self.start_ms is not None

    def line(self) -> str:
        lo, hi = self.window_ms
        if not self.sent:
            return (f"{self.meter_frame} -> {self.reply}: MISSED, ready {self.latency_ms:.1f} ms after the frame, "
                    f"window {lo:g}-{hi:g} ms")
        return (f"{self.meter_frame} -> {self.reply}: started {self.start_ms:.1f} ms after the frame "
                f"(ready after {self.latency_ms:.1f} ms), window {lo:g}-{hi:g} ms")


REPLY_TAIL_S = 1e-4  # silence after a reply, so the sink's last buffer carries the whole frame


def modulate_burst(mode: str, telegram: bytes, sample_rate_hz: float, center_freq_hz: float) -> np.ndarray:
    """One frame in mode ``mode`` (a MODES key) at its channel, as samples for a TX sink: the
    modulator alone (carrier phase 0, nothing random), then ``REPLY_TAIL_S`` of silence."""
    frame = modulate_frame(telegram, MODES[mode], sample_rate_hz=sample_rate_hz, center_freq_hz=center_freq_hz,
                           amplitude=0.7)
    return np.concatenate((frame.samples, np.zeros(int(REPLY_TAIL_S * sample_rate_hz), np.complex64)))


def measure_turnaround(info: StreamInfo, profile: LinkProfile, chunk_samples: int, tx_rate_hz: float,
                       repeats: int = 3, role: str = "gateway") -> float:
    """Seconds from the end of a received frame to a modulated reply, on this machine: the time the
    chunk holding the frame's end still needs to fill, plus receiving it, plus building and
    modulating the answer. The median of ``repeats`` generated frames. ``role`` "gateway" hears a
    meter's SND-IR and answers CNF-IR; "meter" hears a REQ-UD2 and answers RSP-UD."""
    return float(np.median(turnarounds(info, profile, chunk_samples, tx_rate_hz, repeats, role)))


def turnarounds(info: StreamInfo, profile: LinkProfile, chunk_samples: int, tx_rate_hz: float,
                repeats: int, role: str = "gateway") -> list[float]:
    """Each of the ``repeats`` measurements of :func:`measure_turnaround` (frames at other sample
    phases and noise draws)."""
    fs = info.sample_rate_hz
    if role == "gateway":
        hear, rx_modes, answer_mode = profile.uplink, profile.rx_uplink, profile.downlink
        heard = build({"kind": "SND-IR", "manufacturer": "ELS", "id": "12345678", "data": "0C1312345678"}).telegram
        respond = GatewayLogic().respond
    else:
        hear, rx_modes, answer_mode = profile.downlink, profile.rx_downlink, profile.uplink
        meter = MeterLogic(profile)
        heard = build({"kind": "REQ-UD2", **meter.address}).telegram
        respond = meter.respond
    out = []
    for r in range(repeats):
        start = 0.004 + 0.0013 * r
        x, placed = render([Burst(mode=MODES[hear], telegram=heard, start_s=start)], sample_rate_hz=fs,
                           center_freq_hz=info.center_freq_hz, duration_s=start + 0.05, rng=np.random.default_rng(r),
                           noise_rms=0.01)
        end = placed[0].placement.end
        rx = Receiver(info, rx_modes)
        latency = float("inf")
        for i in range(0, len(x), chunk_samples):
            t0 = time.perf_counter()
            frames = [f for f in rx.process(IQChunk(samples=x[i:i + chunk_samples], info=info, start=i)) if f.crc_ok]
            if not frames:
                continue
            for f in frames:
                for tel in respond(f.telegram):
                    modulate_burst(answer_mode, tel, tx_rate_hz, MODES[answer_mode].channel_hz)
            waited = (min(i + chunk_samples, len(x)) - end) / fs  # stream time from frame end to this chunk
            latency = max(waited, 0.0) + time.perf_counter() - t0
            break
        out.append(latency)
    return out


@dataclass(frozen=True, slots=True)
class TimedReply:
    telegram: bytes
    after: float | None  # monotonic end of the frame this reply is timed from (None: unknown)
    ready: float  # when it was modulated
    started: float | None  # when it went to the sink (None: missed the window, not sent)
    end: float | None  # when its last sample is on air (a follow-up times from here)


def send_in_window(sink, mode: str, telegrams: Iterable[bytes], after: float | None, window_hi_s: float,
                   turnaround_s: float) -> Iterator[TimedReply]:
    """Answer a frame that ended at monotonic time ``after``: each telegram is modulated in ``mode``
    and sent ``turnaround_s`` after the end of the frame before it (the heard one, then the
    previous answer). One that is ready only after the window closes (``window_hi_s``), or whose
    reference end is unknown, is not sent: it comes out with ``started`` None and ends the answer."""
    for tel in telegrams:
        x = modulate_burst(mode, tel, sink.sample_rate_hz, sink.center_freq_hz)
        ready = time.monotonic()
        if after is None or ready > after + window_hi_s:
            yield TimedReply(tel, after, ready, None, None)
            return
        time.sleep(max(0.0, after + turnaround_s - time.monotonic()))
        started = time.monotonic()
        sink.send(x)
        end = started + len(x) / sink.sample_rate_hz
        yield TimedReply(tel, after, ready, started, end)
        after = end


class LiveGateway:
    """Answers meters heard in ``chunks`` through ``sink`` (a :class:`sdr.soapy_tx.SoapySink`, opened)."""

    def __init__(self, info: StreamInfo, profile: LinkProfile, sink, *, logic: GatewayLogic | None = None,
                 turnaround_s: float | None = None, log: Callable[[str], None] = print):
        self.info = info
        self.profile = profile
        self.sink = sink
        self.logic = logic or GatewayLogic()
        self.turnaround_s = profile.turnaround_s if turnaround_s is None else turnaround_s
        self.log = log
        self.events: list[ReplyEvent] = []
        self.rx = Receiver(info, profile.rx_uplink)

    def run(self, chunks: Iterable[IQChunk]) -> list[ReplyEvent]:
        lo, hi = self.profile.window_s
        clock = ArrivalClock(self.info.sample_rate_hz)
        for chunk in chunks:
            clock.mark(chunk.end, chunk.arrived)
            for f in self.rx.process(chunk):
                if not f.crc_ok:
                    continue
                end = clock.on_air(frame_end_estimate(f, self.info.sample_rate_hz))  # monotonic s, after the postamble
                for r in send_in_window(self.sink, self.profile.downlink, self.logic.respond(f.telegram), end, hi,
                                        self.turnaround_s):
                    ev = ReplyEvent(kind_name(f.telegram), kind_name(r.telegram),
                                    (r.ready - r.after) * 1e3 if r.after is not None else float("inf"),
                                    (r.started - r.after) * 1e3 if r.started is not None else None,
                                    (lo * 1e3, hi * 1e3))
                    self.log(ev.line())  # a MISSED one: the meter has stopped listening
                    self.events.append(ev)
        return self.events

