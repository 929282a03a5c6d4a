"""Live meter emulator: frames sent on a schedule through a TX sink, answers to a gateway heard on
a real-time IQ stream. The stream here is a stand-in for the air with a gateway on it: it watches
what the meter writes to its sink, decodes it with our receiver, answers with the gateway logic a
chosen delay after the meter's frame, and hands its chunks over on the air's own clock, which is
the meter's clock too (tests/air.py), so the meter's timing is judged on the air's samples, not on
how busy the machine is."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from dsp.channel import Burst, burst_samples
from dsp.modes import MODES
from flowgraphs.pipelines.receive import receive
from flowgraphs.stations.meter_live import LiveMeter, downlink_center
from flowgraphs.stations.session import PROFILES, GatewayLogic, MeterLogic
from mbus.builder import build, kind_name
from mbus.telegram import decode
from sdr.types import IQChunk, StreamInfo

from .air import AirClock, paced_chunks, use_air_clock
from .test_soapy_tx import _bursts

TX_RATE = 1.2e6


class RecordingSink:
    """What LiveMeter needs of a SoapySink: rate, centre and send(); remembers when each burst began."""

    def __init__(self, profile, clock=time):
        self.clock = clock
        self.sample_rate_hz = TX_RATE
        self.center_freq_hz = MODES[profile.uplink].channel_hz
        self.bursts: list[tuple[float, np.ndarray]] = []
        self.lock = threading.Lock()

    def send(self, x: np.ndarray, at_ns=None) -> None:
        with self.lock:
            self.bursts.append((self.clock.monotonic(), np.asarray(x, np.complex64)))


def decode_burst(x: np.ndarray, mode: str, center: float, rate: float = TX_RATE) -> list[bytes]:
    info = StreamInfo(sample_rate_hz=rate, center_freq_hz=center)
    pad = np.zeros(4000, np.complex64)
    chunk = IQChunk(samples=np.concatenate((pad, x, pad)), info=info, start=0)
    return [f.telegram for f in receive([chunk], info, [mode]) if f.crc_ok]


class AirWithGateway:
    """IQ chunks at the meter's downlink on ``sink.clock`` (an :class:`AirClock`); a gateway answers
    each meter frame it decodes from the sink ``delay_s`` after that frame's end (and each of its
    own follow-ups ``delay_s`` after the previous one), with GatewayLogic and its queue."""

    def __init__(self, profile, sink: RecordingSink, *, delay_s: float, duration_s: float, queue=(),
                 extra: list[tuple[float, bytes]] = (), rate: float = 1.6e6, chunk: int = 8192):
        self.profile, self.sink, self.delay_s, self.duration_s = profile, sink, delay_s, duration_s
        self.info = StreamInfo(sample_rate_hz=rate, center_freq_hz=downlink_center(profile))
        self.chunk = chunk
        self.logic = GatewayLogic()
        self.logic.queue.extend(queue)
        self.heard: list[bytes] = []  # meter frames the gateway decoded
        self.sent: list[bytes] = []
        self.extra = list(extra)  # (seconds after stream start, telegram) sent regardless
        self.rng = np.random.default_rng(3)
        self._scheduled: list[tuple[int, np.ndarray]] = []
        self._seen = 0

    def _schedule(self, start_sample: int, telegram: bytes) -> int:
        sig = burst_samples(Burst(mode=MODES[self.profile.downlink], telegram=telegram),
                            sample_rate_hz=self.info.sample_rate_hz, center_freq_hz=self.info.center_freq_hz,
                            start=start_sample, rng=self.rng)
        self._scheduled.append((start_sample, 0.3 * sig.astype(np.complex64)))
        self.sent.append(telegram)
        return start_sample + len(sig)

    def _watch_sink(self) -> None:
        rate = self.info.sample_rate_hz
        with self.sink.lock:
            new = self.sink.bursts[self._seen:]
            self._seen = len(self.sink.bursts)
        for began, x in new:
            end = began + len(x) / self.sink.sample_rate_hz  # the meter's own idea of its frame's end
            for tel in decode_burst(x, self.profile.rx_uplink[0], self.sink.center_freq_hz):
                self.heard.append(tel)
                at = int(round((end + self.delay_s) * rate))
                for answer in self.logic.respond(tel):
                    stop = self._schedule(at, answer)
                    at = stop + int(round(self.delay_s * rate))

    def __iter__(self):
        with self.sink.clock.stand_in_work():
            for t, tel in self.extra:
                self._schedule(int(t * self.info.sample_rate_hz), tel)
        yield from paced_chunks(self.info, self.sink.clock, self.duration_s, self._scheduled, self._watch_sink,
                                self.rng, 0.005, self.chunk)


def _run(monkeypatch, profile_name, *, send, delay_s, duration_s, queue=(), interval_s=10.0, extra=(), count=None):
    profile = PROFILES[profile_name]
    clock = AirClock()
    use_air_clock(clock, monkeypatch.setattr)  # the meter keeps the air's time (tests/air.py)
    sink = RecordingSink(profile, clock)
    air = AirWithGateway(profile, sink, delay_s=delay_s, duration_s=duration_s, queue=queue, extra=extra)
    lines: list[str] = []
    meter = LiveMeter(air.info, profile, sink, MeterLogic(profile), send=send, interval_s=interval_s, count=count,
                      log=lines.append)
    meter.run(air)
    return meter, air, sink, lines


def test_s2_access_demand_dialogue(monkeypatch):
    """ACC-DMD -> gateway ACK, REQ-UD2 -> meter RSP-UD -> gateway SND-NKE, every gateway frame heard
    inside the meter's 3-50 ms window and the RSP-UD carrying the meter's reading."""
    meter, air, sink, lines = _run(monkeypatch, "S2", send="ACC-DMD", delay_s=0.02, duration_s=0.6, queue=["REQ-UD2"],
                                   count=1)
    seq = [(e.action, e.kind) for e in meter.events if e.action in ("TX", "RX")]
    assert seq == [("TX", "ACC-DMD"), ("RX", "ACK"), ("RX", "REQ-UD2"), ("TX", "RSP-UD"), ("RX", "SND-NKE")], lines
    for e in meter.events:
        if e.action == "RX":
            delay = float(e.text.split("started ")[1].split(" ms")[0])
            assert abs(delay - 20) < 1, e.line()  # the gateway answered 20 ms after each frame, on the air's clock
            assert "inside the window" in e.text
    assert [kind_name(t) for t in air.heard] == ["ACC-DMD", "RSP-UD"]
    rsp = decode(air.heard[1])
    assert rsp.link.address.id == "12345678" and "12345.678 m3" in " ".join(r.describe() for r in rsp.records)
    assert meter.counts == {"sent": 1, "answered": 1, "missed": 0, "late": 0, "other": 0}


def test_c2_installation_then_readings(monkeypatch):
    """SND-IR -> CNF-IR 100 ms later (C2 fast response window 99.5-100.5 ms); installed, the next
    scheduled frame is a reading (SND-NR)."""
    meter, air, sink, lines = _run(monkeypatch, "C2", send="SND-IR", delay_s=0.1, duration_s=0.75, interval_s=0.45,
                                   count=2)
    seq = [(e.action, e.kind) for e in meter.events if e.action in ("TX", "RX", "DATA")]
    assert seq == [("TX", "SND-IR"), ("RX", "CNF-IR"), ("DATA", "CNF-IR"), ("TX", "SND-NR")], lines
    rx = next(e for e in meter.events if e.action == "RX")
    delay = float(rx.text.split("started ")[1].split(" ms")[0])
    assert 99.5 <= delay <= 100.5, rx.line()  # on the air's clock: inside the window itself
    assert meter.logic.installed
    assert [kind_name(t) for t in air.heard] == ["SND-IR", "SND-NR"]


def test_frames_for_other_meters_and_outside_the_window_are_not_answered(monkeypatch):
    profile = PROFILES["S2"]
    other = build({"kind": "REQ-UD2", "manufacturer": "ELS", "id": "87654321"}).telegram
    mine = build({"kind": "REQ-UD2", "manufacturer": "ELS", "id": "12345678", "version": 1,
                  "device_type": 7}).telegram
    # the meter sends at once; these arrive 150 and 250 ms into the stream, long after its window
    meter, air, sink, lines = _run(monkeypatch, "S2", send="ACC-NR", delay_s=0.02, duration_s=0.4, count=1,
                                   extra=[(0.15, other), (0.25, mine)])
    assert meter.counts["other"] == 1 and meter.counts["late"] == 1 and meter.counts["answered"] == 0, lines
    assert any(e.action == "LATE" and e.kind == "REQ-UD2" for e in meter.events)
    assert [kind_name(t) for _, x in sink.bursts for t in decode_burst(x, "S1", sink.center_freq_hz)] == ["ACC-NR"]
    del profile


def test_synchronous_schedule_follows_the_access_number():
    profile = PROFILES["C2"]
    logic = MeterLogic(profile, synchronous=True)
    meter = LiveMeter(StreamInfo(sample_rate_hz=1.6e6, center_freq_hz=869.3e6), profile, RecordingSink(profile),
                      logic, interval_s=100.0)
    # access number of the next frame 1: |1 - 128| - 64 = 63 -> 1 + 63 / 2048
    assert meter.next_interval() == pytest.approx(100.0 * (1 + 63 / 2048))
    logic.acc = 127  # next 128: 1 - 64 / 2048
    assert meter.next_interval() == pytest.approx(100.0 * (1 - 64 / 2048))
    frame = decode(logic.frame("SND-NR"))
    assert frame.tpl.config.flags().get("synchronous")
    with pytest.raises(ValueError, match="a meter sends one of"):
        LiveMeter(meter.info, profile, RecordingSink(profile), logic, send="CNF-IR")


def test_meter_cli_over_rtltcp_with_a_tx_stand_in(monkeypatch, capsys, tmp_path):
    """The command end to end: a quiet downlink served over rtl_tcp, the meter's scheduled ACC-NR
    frames written to the SoapySDR stand-in on 868.95 MHz (T2's uplink), decodable as T1."""
    from .test_gateway_live import run_over_rtltcp

    info = StreamInfo(sample_rate_hz=1.6e6, center_freq_hz=868.05e6)
    rng = np.random.default_rng(4)
    x = (0.01 * (rng.standard_normal(960_000) + 1j * rng.standard_normal(960_000))).astype(np.complex64)
    rc, log = run_over_rtltcp(monkeypatch, tmp_path, x, [], "quiet_868.05M_1600k.cu8", info,
                              ["meter", "--mode", "T2", "--send", "ACC-NR", "--interval", "0.2", "--duration", "0.55",
                               "--id", "11223344"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert err.startswith("measured turnaround") and "T2" in err
    assert log["settings"]["freq"] == MODES["T1"].channel_hz
    bursts = _bursts(log)
    assert len(bursts) >= 2, out
    tels = [t for b in bursts for t in decode_burst(b, "T1", MODES["T1"].channel_hz)]
    assert len(tels) == len(bursts) and all(kind_name(t) == "ACC-NR" for t in tels)
    assert [decode(t).link.address.id for t in tels] == ["11223344"] * len(tels)
    assert [decode(t).access_number for t in tels] == list(range(1, len(tels) + 1))
    assert "TX     ACC-NR" in out and f"{len(bursts)} frames sent" in err


def test_meter_cli_refusals(capsys):
    from flowgraphs.cli import main

    assert main(["meter", "--device", "rtlsdr:0", "--tx", "hackrf", "--mode", "C2"]) == 2
    assert "SoapySDR device" in capsys.readouterr().err
    assert main(["meter", "--device", "rtlsdr:0", "--tx", "soapy:driver=x", "--send", "CNF-IR"]) == 2
    assert "--send" in capsys.readouterr().err
    assert main(["meter", "--device", "rtlsdr:0", "--tx", "soapy:driver=x", "--id", "12AB"]) == 2
    assert "--id" in capsys.readouterr().err


def test_air_clock_charges_the_station_thread_only():
    """The air clock is the station thread's CPU time: another thread of the process working (here
    0.3 s of CPU while the station waits for it) does not move the station's air, as a GIL hand-off
    to a server thread once moved a meter's frame by 8 ms."""
    clock = AirClock()

    def work():
        t_end = time.thread_time() + 0.3
        while time.thread_time() < t_end:
            pass

    t0 = clock.monotonic()
    other = threading.Thread(target=work)
    other.start()
    other.join()
    assert clock.monotonic() - t0 < 0.1
    clock.sleep(0.25)  # its own sleeps still cost exactly what they say
    assert 0.25 <= clock.monotonic() - t0 < 0.35
