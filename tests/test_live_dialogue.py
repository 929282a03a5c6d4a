"""The live gateway and the live meter talking to each other, each in its own process with its own
receiver and TX sink (as on two machines), over a stand-in for the air: what one station hands to
its sink is heard by the other — resampled to its receiver's rate and shifted to its centre — from
the moment it was sent. Both stations keep the air's clock (tests/air.py): their work costs them
the CPU time it takes, waiting for a CPU costs nothing, so a busy machine cannot make them late.
The two airs go in lock-step: neither hands over a chunk until the other station can no longer
send anything that starts inside it. Ground truth comes from the send times, so the delays both
stations log are checked against what really happened on the air."""

from __future__ import annotations

import multiprocessing as mp
import time

import numpy as np
import pytest
from scipy.signal import resample_poly

from .air import AirClock, paced_chunks, use_air_clock

TX_RATE = 1.2e6
RX_RATE = 1.6e6
WAIT_S = 120.0  # host seconds a station's air waits for the other station before giving up (a hang)


def _stream(info, clock: AirClock, inbox, mine, partner, duration_s: float, seed: int, chunk: int = 8192,
            latency_s: float = 0.008):
    """Chunks of what the other station sent (read from ``inbox``), plus a little noise, each
    handed over ``latency_s`` after its last sample was on air (as a radio's USB transfer adds a
    latency) and stamped with the on-air time, as a live source's reader thread stamps arrival.

    ``mine`` / ``partner`` are the two stations' shared [time before which it sends nothing more,
    bursts sent]: before a chunk, this station promises the time it will resume at, then waits
    until the other has promised the chunk's end and takes every burst it sent so far."""
    bursts: list[tuple[int, np.ndarray]] = []
    got = 0

    def before(end_s: float, resume_s: float) -> None:
        nonlocal got
        with mine.get_lock():
            mine[0] = resume_s
        give_up = time.monotonic() + WAIT_S
        while True:
            with partner.get_lock():
                promised, sent = partner[0], int(partner[1])
            if promised >= end_s:
                break
            if time.monotonic() > give_up:
                raise TimeoutError(f"the other station did not reach {end_s:.4f} s on the air")
            time.sleep(2e-4)
        while got < sent:
            t, center, x = inbox.get(timeout=WAIT_S)
            got += 1
            y = resample_poly(x, 4, 3)  # 1.2 -> 1.6 Msps
            y = y * np.exp(2j * np.pi * (center - info.center_freq_hz) * np.arange(len(y)) / info.sample_rate_hz)
            bursts.append((int(round(t * info.sample_rate_hz)), (0.3 * y).astype(np.complex64)))

    yield from paced_chunks(info, clock, duration_s, bursts, lambda: None, np.random.default_rng(seed), 0.003, chunk,
                            latency_s, before=before)


class _Sink:
    """The part of SoapySink the live stations use; bursts go to the other station with their send
    time on the air's clock, counted in ``mine[1]`` once they are in the queue."""

    def __init__(self, clock: AirClock, outbox, mine, center_freq_hz: float, sent: list):
        self.clock, self.outbox, self.mine, self.sent = clock, outbox, mine, sent
        self.sample_rate_hz = TX_RATE
        self.center_freq_hz = center_freq_hz

    def send(self, x, at_ns=None) -> None:
        t = self.clock.monotonic()
        self.outbox.put((t, self.center_freq_hz, np.asarray(x, np.complex64)))
        with self.mine.get_lock():
            self.mine[1] += 1
        self.sent.append((t, len(x) / TX_RATE))


def station(role: str, mode: str, send: str, requests: list, duration_s: float, inbox, outbox, mine, partner, ready,
            go, results) -> None:
    from dsp.modes import MODES
    from flowgraphs.stations.gateway_live import LiveGateway, measure_turnaround
    from flowgraphs.stations.meter_live import LiveMeter, downlink_center
    from flowgraphs.stations.session import PROFILES, GatewayLogic, MeterLogic
    from sdr.types import StreamInfo

    try:
        profile = PROFILES[mode]
        lines: list[str] = []
        sent: list = []
        clock = AirClock()
        if role == "gateway":
            info = StreamInfo(sample_rate_hz=RX_RATE, center_freq_hz=868.625e6)
            logic = GatewayLogic()
            logic.queue.extend(requests)
            sink = _Sink(clock, outbox, mine, MODES[profile.downlink].channel_hz, sent)
            node = LiveGateway(info, profile, sink, logic=logic, log=lines.append)
        else:
            info = StreamInfo(sample_rate_hz=RX_RATE, center_freq_hz=downlink_center(profile))
            sink = _Sink(clock, outbox, mine, MODES[profile.uplink].channel_hz, sent)
            node = LiveMeter(info, profile, sink, MeterLogic(profile), send=send, count=1, log=lines.append)
        measure_turnaround(info, profile, 8192, TX_RATE, role=role)  # as the commands do: also warms every cache
        ready.put(role)
        go.wait()
        use_air_clock(clock)  # from here on the station keeps the air's time
        clock.restart(0.0)
        node.run(_stream(info, clock, inbox, mine, partner, duration_s, seed=1 if role == "gateway" else 2))
    finally:
        with mine.get_lock():
            mine[0] = float("inf")  # nothing more from this station: the other need not wait for it
    if role == "gateway":
        events = [(e.meter_frame, e.reply, e.sent, e.start_ms) for e in node.events]
        extra = logic.readings
    else:
        events = [(e.action, e.kind, e.text) for e in node.events]
        extra = node.logic.installed
    results.put((role, events, lines, sent, extra))


def _dialogue(mode: str, send: str, requests: list[str], duration_s: float) -> dict:
    ctx = mp.get_context("spawn")
    to_meter, to_gateway, ready, results = ctx.Queue(), ctx.Queue(), ctx.Queue(), ctx.Queue()
    go = ctx.Event()
    g_state, m_state = ctx.Array("d", 2), ctx.Array("d", 2)
    procs = [ctx.Process(target=station, args=("gateway", mode, send, requests, duration_s, to_gateway, to_meter,
                                               g_state, m_state, ready, go, results)),
             ctx.Process(target=station, args=("meter", mode, send, requests, duration_s, to_meter, to_gateway,
                                               m_state, g_state, ready, go, results))]
    for p in procs:
        p.start()
    try:
        for _ in procs:
            ready.get(timeout=300)  # start-up on a busy machine: a guard against a hang, not a measure
        go.set()
        out = {}
        for _ in procs:
            role, events, lines, sent, extra = results.get(timeout=2 * WAIT_S + 60)
            out[role] = {"events": events, "lines": lines, "sent": sent, "extra": extra}
    finally:
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
    return out


def _delay(text: str) -> float:
    return float(text.split("started ")[1].split(" ms")[0])


def _gaps(a: list, b: list) -> list[float]:
    """ms from the end of each burst in ``a`` to the start of the first burst in ``b`` after it."""
    out = []
    for t, dur in a:
        later = [s for s, _ in b if s > t + dur]
        if later:
            out.append((min(later) - (t + dur)) * 1e3)
    return out


def _log(out: dict) -> str:
    return "\n".join(out["meter"]["lines"] + ["--"] + out["gateway"]["lines"])


@pytest.mark.parametrize("mode", ["S2", "C2"])
def test_access_demand_between_live_gateway_and_live_meter(mode):
    """ACC-DMD -> ACK, REQ-UD2 -> RSP-UD -> SND-NKE; the meter hears every gateway frame inside its
    window (S2 3-50 ms; C2 99.5-100.5 ms) on the air's clock and measures the gateway's delays
    within 2 ms of the truth."""
    out = _dialogue(mode, "ACC-DMD", ["REQ-UD2"], 1.2 if mode == "C2" else 0.8)
    log = _log(out)
    meter = out["meter"]["events"]
    seq = [(a, k) for a, k, _ in meter if a in ("TX", "RX")]
    assert seq == [("TX", "ACC-DMD"), ("RX", "ACK"), ("RX", "REQ-UD2"), ("TX", "RSP-UD"), ("RX", "SND-NKE")], log
    assert [(m, r, s) for m, r, s, _ in out["gateway"]["events"]] == [
        ("ACC-DMD", "ACK", True), ("ACC-DMD", "REQ-UD2", True), ("RSP-UD", "SND-NKE", True)], log
    assert any("12345.678 m3" in r for r in out["gateway"]["extra"]), log
    # truth from the send times: gateway frame i starts after the end of whichever frame precedes it
    m_sent, g_sent = out["meter"]["sent"], out["gateway"]["sent"]
    bursts = sorted([(t, d, "m") for t, d in m_sent] + [(t, d, "g") for t, d in g_sent])
    truth = [(b[0] - (a[0] + a[1])) * 1e3 for a, b in zip(bursts, bursts[1:], strict=False) if b[2] == "g"]
    measured = [_delay(text) for a, _, text in meter if a == "RX"]
    lo, hi = {"S2": (3, 50), "C2": (99.5, 100.5)}[mode]
    for t, m in zip(truth, measured, strict=True):
        assert lo <= t <= hi, (truth, log)  # on the air's clock: inside the window itself
        assert abs(m - t) < 2.0, (truth, measured, log)


def test_c2_installation_between_live_gateway_and_live_meter():
    out = _dialogue("C2", "SND-IR", [], 0.5)
    log = _log(out)
    rx = [(k, text) for a, k, text in out["meter"]["events"] if a == "RX"]
    assert [k for k, _ in rx] == ["CNF-IR"], log
    assert out["meter"]["extra"] is True  # installed
    truth = _gaps(out["meter"]["sent"], out["gateway"]["sent"])[0]
    assert 99.5 <= truth <= 100.5 and abs(_delay(rx[0][1]) - truth) < 2.0, (truth, log)
