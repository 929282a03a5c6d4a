"""Live gateway: meter frames from an IQ stream answered through a TX sink (the SoapySDR stand-in),
inside the window when the chain is fast enough, logged as missed when it is not. The stream and
the gateway keep the air's clock (tests/air.py): the chain's work costs its CPU time, a busy
machine costs nothing."""

from __future__ import annotations

import sys

import numpy as np

from dsp.channel import Burst, render
from dsp.modes import MODES
from flowgraphs.pipelines.receive import receive
from flowgraphs.stations.gateway_live import LiveGateway, measure_turnaround
from flowgraphs.stations.session import PROFILES, reachable_statement
from mbus.builder import build
from sdr.soapy_tx import SoapySink
from sdr.types import IQChunk, StreamInfo

from .air import AirClock, use_air_clock
from .test_soapy_tx import _bursts, fake_soapy

INFO = StreamInfo(sample_rate_hz=1.6e6, center_freq_hz=868.625e6)
METER = {"kind": "SND-IR", "manufacturer": "ELS", "id": "12345678", "version": 1, "device_type": 7,
         "data": "0C1378563412"}


def _air(mode: str, clock: AirClock, chunk: int = 16384):
    """A meter's SND-IR in ``mode`` on the air, handed over in chunks on ``clock`` as each one's last
    sample is on air; and the sample where the burst ends."""
    tel = build(METER).telegram
    x, notes = render([Burst(mode=MODES[mode], telegram=tel, start_s=0.01)], sample_rate_hz=INFO.sample_rate_hz,
                      center_freq_hz=INFO.center_freq_hz, duration_s=0.06, rng=np.random.default_rng(1),
                      noise_rms=0.01)

    def chunks():
        for i in range(0, len(x), chunk):
            end_s = min(i + chunk, len(x)) / INFO.sample_rate_hz
            clock.wait_until(end_s)
            yield IQChunk(samples=x[i:i + chunk], info=INFO, start=i, arrived=end_s)

    return chunks(), notes[0].placement.end


def _sink(monkeypatch, profile, clock: AirClock):
    """The SoapySDR stand-in, opened; ``sent_at`` gets the air's time of each burst handed to it."""
    mod = fake_soapy()
    monkeypatch.setitem(sys.modules, "SoapySDR", mod)
    use_air_clock(clock, monkeypatch.setattr)
    sink = SoapySink("driver=fake", sample_rate_hz=1.2e6, center_freq_hz=MODES[profile.downlink].channel_hz)
    send, mod.sent_at = sink.send, []

    def timed_send(x, at_ns=None):
        mod.sent_at.append(clock.monotonic())
        send(x, at_ns)

    monkeypatch.setattr(sink, "send", timed_send)
    return mod, sink.open()


def test_c2_installation_answered_inside_the_window(monkeypatch):
    profile = PROFILES["C2"]
    clock = AirClock()
    mod, sink = _sink(monkeypatch, profile, clock)
    lines = []
    chunks, frame_end = _air("C1", clock)
    events = LiveGateway(INFO, profile, sink, log=lines.append).run(chunks)
    sink.close()
    assert [(e.meter_frame, e.reply, e.sent) for e in events] == [("SND-IR", "CNF-IR", True)], lines
    ev = events[0]
    assert ev.latency_ms < 99.5  # the chain was ready before the window opened ...
    assert 99.5 <= ev.start_ms <= 100.5  # ... and waited for it
    truth_ms = (mod.sent_at[0] - frame_end / INFO.sample_rate_hz) * 1e3
    assert 99.5 <= truth_ms <= 100.5, (truth_ms, lines)  # on the air: the reply started inside the window
    bursts = _bursts(mod.log)
    assert len(bursts) == 1
    out = StreamInfo(sample_rate_hz=1.2e6, center_freq_hz=MODES["C2"].channel_hz)
    x = np.concatenate((np.zeros(3000, np.complex64), bursts[0], np.zeros(3000, np.complex64)))
    frames = [f for f in receive([IQChunk(samples=x, info=out, start=0)], out, ["C2"]) if f.crc_ok]
    want = build({k: v for k, v in METER.items() if k != "data"} | {"kind": "CNF-IR"}).telegram
    assert [f.telegram for f in frames] == [want]


def test_t2_window_is_too_short_for_a_host_chain(monkeypatch):
    profile = PROFILES["T2"]
    clock = AirClock()
    mod, sink = _sink(monkeypatch, profile, clock)
    lines = []
    events = LiveGateway(INFO, profile, sink, log=lines.append).run(_air("T1", clock)[0])
    assert [(e.reply, e.sent) for e in events] == [("CNF-IR", False)]
    assert "MISSED" in lines[0] and not mod.log["writes"]


def test_measured_turnaround_says_which_windows_are_reachable(monkeypatch):
    use_air_clock(AirClock(), monkeypatch.setattr)  # the chain's work in CPU time, not time spent descheduled
    t = measure_turnaround(INFO, PROFILES["C2"], 16384, 1.2e6)
    assert 0.003 < t < 0.0995  # slower than T2's window, fast enough for C2's 100 ms
    text = reachable_statement(t)
    assert "reachable for" in text and "C2" in text.split(";")[0] and "not for T2" in text


def run_over_rtltcp(monkeypatch, tmp_path, x, notes, name: str, info: StreamInfo, argv: list[str]):
    """``wmbus-sdr ARGV --device rtltcp://...`` with ``x`` served by our rtl_tcp server and the TX
    going to the SoapySDR stand-in; (exit code, the stand-in's call log)."""
    from flowgraphs.cli import main
    from flowgraphs.pipelines.transmit import write_recording
    from sdr.rtltcp import RtlTcpServer

    path = write_recording(str(tmp_path / name), x, notes, sample_rate_hz=info.sample_rate_hz,
                           center_freq_hz=info.center_freq_hz)
    mod = fake_soapy()
    monkeypatch.setitem(sys.modules, "SoapySDR", mod)
    server = RtlTcpServer(path, port=0)
    server.start()
    try:
        rc = main([argv[0], "--device", f"rtltcp://127.0.0.1:{server.port}", "--tx", "soapy:driver=fake", *argv[1:]])
    finally:
        server.stop()
    return rc, mod.log


def test_gateway_cli_over_rtltcp_with_a_tx_stand_in(monkeypatch, capsys, tmp_path):
    """The command end to end: a recording with a C1 installation request served over rtl_tcp, the
    reply written to the SoapySDR stand-in; the measured turnaround is stated first."""
    x, _ = render([Burst(mode=MODES["C1"], telegram=build(METER).telegram, start_s=0.3)],
                      sample_rate_hz=INFO.sample_rate_hz, center_freq_hz=INFO.center_freq_hz, duration_s=0.6,
                      rng=np.random.default_rng(2), noise_rms=0.01)
    rc, log = run_over_rtltcp(monkeypatch, tmp_path, x, [], "ir_868.625M_1600k.cu8", INFO,
                              ["gateway", "--mode", "C2", "--duration", "0.55"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert err.startswith("measured turnaround") and "not for T2" in err
    assert "SND-IR -> CNF-IR: started" in out and "1 replies sent, 0 missed" in err
    assert len(_bursts(log)) == 1


def test_gateway_cli_refusals(monkeypatch, capsys):
    from flowgraphs.cli import main

    assert main(["gateway", "--device", "rtlsdr:0", "--tx", "hackrf", "--mode", "C2"]) == 2
    assert "SoapySDR device" in capsys.readouterr().err
    assert main(["gateway", "--device", "rtlsdr:0", "--tx", "soapy:driver=x", "--request", "SND-IR"]) == 2
    assert "request to a meter" in capsys.readouterr().err
