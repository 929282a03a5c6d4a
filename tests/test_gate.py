"""The activity gate (dsp.gate): the receiver channelises only where something is on air.

Regions must not depend on the chunking, must hold every burst with the noise before it, must be
the input's own samples, and must leave most of a quiet stream out; the gated receiver must hear
what the whole stream gives, also at low SNR, with impulses, and across gaps."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dsp.channel import Burst, Impulses, amplitude_for, render
from dsp.gate import ActivityGate, Close, Piece
from dsp.modes import MODES
from flowgraphs.pipelines.receive import REGION_MARGIN_S, REGION_QUIET_S, Receiver
from sdr.formats import from_complex, to_complex
from sdr.types import IQChunk, RawIQ, StreamInfo

RATE, CENTER = 1.6e6, 868.625e6
CHANNELS = {"868.30": (-325e3, 175e3, 0.025), "868.95": (325e3, 175e3, 0.025)}
NOISE = 0.02
INFO = StreamInfo(sample_rate_hz=RATE, center_freq_hz=CENTER, source="test")


def _telegram(rng) -> bytes:
    return bytes([0x32, 0x44]) + rng.integers(0, 256, 49, dtype=np.uint8).tobytes()


def _stream(seed: int, *, seconds: float = 4.0, ebn0: tuple[float, float] = (11.0, 13.0), first_s: float = 1.2,
            every_s: float = 0.45, impulses: Impulses | None = None):
    """Noise with a DC offset and frames of S1, T1, C1-A, C1-B in turn from ``first_s`` on (after
    the gate has learnt its floor), carrier offsets within +-20 kHz."""
    rng = np.random.default_rng(seed)
    plan = [("S1", "A"), ("T1", "A"), ("C1", "A"), ("C1", "B")]
    bursts, t, k = [], first_s, 0
    while t < seconds - 0.12:
        name, fmt = plan[k % 4]
        mode = MODES[name]
        amp = amplitude_for(mode, float(rng.uniform(*ebn0)), noise_rms=NOISE, sample_rate_hz=RATE)
        bursts.append(Burst(mode=mode, telegram=_telegram(rng), frame_format=fmt, start_s=t, amplitude=amp,
                            freq_offset_hz=float(rng.uniform(-20e3, 20e3))))
        t += every_s
        k += 1
    x, placed = render(bursts, sample_rate_hz=RATE, center_freq_hz=CENTER, duration_s=seconds, rng=rng,
                       noise_rms=NOISE, dc_offset=0.01 + 0.005j, impulses=impulses)
    return x, placed


@pytest.fixture(scope="module")
def stream():
    return _stream(3)


def _gate_events(x: np.ndarray, cuts: list[int]) -> tuple[list[tuple[int, int]], ActivityGate, list]:
    """Regions (start, end) of the gate fed ``x`` cut at ``cuts``, checking that each region's
    pieces follow each other and are the input's samples."""
    gate = ActivityGate(RATE, CHANNELS, grid=32)
    events = []
    points = sorted({0, len(x), *cuts})
    for a, b in zip(points, points[1:], strict=False):
        events += [(e.start, e.samples.copy()) if isinstance(e, Piece) else e for e in gate.feed(x[a:b])]
    events += [(e.start, e.samples.copy()) if isinstance(e, Piece) else e for e in gate.flush()]
    regions, cur = [], None
    for e in events:
        if isinstance(e, Close):
            assert cur is not None and cur[1] == e.end
            regions.append(tuple(cur))
            cur = None
            continue
        start, samples = e
        assert np.array_equal(samples, x[start:start + len(samples)])
        if cur is None:
            assert not regions or start > regions[-1][1]
            cur = [start, start + len(samples)]
        else:
            assert start == cur[1]
            cur[1] = start + len(samples)
    assert cur is None
    return regions, gate, events


def test_regions_hold_every_burst_with_the_noise_before_it(stream):
    x, placed = stream
    regions, gate, _ = _gate_events(x, list(range(0, len(x), 262144)))
    quiet = int((REGION_QUIET_S - REGION_MARGIN_S) * RATE)
    for p in placed:
        a, b = p.placement.preamble_start, p.placement.end
        assert any(s <= a - quiet and b <= e for s, e in regions), (p.burst.mode.name, a / RATE, regions)
    # the frames take ~1 % of the air; the gate gives its learning second and ~60 ms around each
    after = [(max(s, int(RATE)), e) for s, e in regions if e > RATE]
    passed = sum(e - s for s, e in after) / (len(x) - RATE)
    assert passed < 0.25, passed
    assert gate.samples_passed == sum(e - s for s, e in regions)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                HealthCheck.too_slow])
@given(st.lists(st.integers(1, 4_000_000), min_size=1, max_size=40))
def test_regions_do_not_depend_on_the_chunking(stream, cuts):
    x, _ = stream
    whole, _, _ = _gate_events(x, [])
    assert _gate_events(x, cuts)[0] == whole


def test_a_stream_starts_open_until_the_floor_is_known():
    rng = np.random.default_rng(5)
    x = (rng.normal(0, NOISE, 400_000) + 1j * rng.normal(0, NOISE, 400_000)).astype(np.complex64)
    regions, _, _ = _gate_events(x, [])
    assert regions == [(0, len(x))]  # 0.25 s: every sample goes through, as without a gate


def test_noise_alone_is_left_out():
    rng = np.random.default_rng(6)
    n = int(6 * RATE)
    x = (rng.normal(0, NOISE, n) + 1j * rng.normal(0, NOISE, n)).astype(np.complex64) + (0.01 + 0.005j)
    regions, _, _ = _gate_events(x, list(range(0, n, 100_003)))
    late = sum(min(e, n) - max(s, int(1.5 * RATE)) for s, e in regions if e > 1.5 * RATE)
    assert late < 0.02 * (n - 1.5 * RATE), regions


def _receive(x, *, gate: bool, chunk: int = 262144, gaps: tuple[tuple[int, int], ...] = ()):
    rx = Receiver(INFO, ["S1", "T1", "C1"], gate=gate)
    frames = []
    holes = [(g, g + n) for g, n in gaps]
    for a in range(0, len(x), chunk):
        b = min(a + chunk, len(x))
        keep = [(a, b)]
        for h0, h1 in holes:
            keep = [piece for lo, hi in keep for piece in ((lo, min(hi, h0)), (max(lo, h1), hi)) if piece[0] < piece[1]]
        for lo, hi in keep:
            frames += rx.process(IQChunk(samples=x[lo:hi], info=INFO, start=lo))
    frames += rx.flush()
    return [f for f in frames if f.crc_ok], rx


def test_gated_receiver_hears_what_the_whole_stream_gives(stream):
    x, placed = stream
    gated, rx = _receive(x, gate=True)
    whole, _ = _receive(x, gate=False)
    sent = {p.burst.telegram for p in placed}
    assert {f.telegram for f in whole} == sent  # 11-13 dB: every frame
    assert [f.telegram for f in gated] == [f.telegram for f in whole]
    # the same place on the sample clock (a region's own DC level moves the channel a hair)
    assert all(abs(g.sample - w.sample) <= 2 for g, w in zip(gated, whole, strict=True))
    assert rx.gate is not None and rx.gate.samples_passed < 0.5 * len(x)


def test_gated_receiver_near_the_threshold_loses_nothing_the_whole_stream_hears():
    # 9.5-10.5 dB: the ungated receiver misses some; the gate must not miss more
    x, placed = _stream(11, seconds=5.0, ebn0=(9.5, 10.5))
    gated = {f.telegram for f in _receive(x, gate=True)[0]}
    whole = {f.telegram for f in _receive(x, gate=False)[0]}
    assert len(whole) >= 0.7 * len(placed)
    assert whole <= gated, (len(whole), len(gated))


def test_gated_receiver_with_impulses():
    x, placed = _stream(7, seconds=3.0, impulses=Impulses(period_s=125e-6, amplitude=0.3, length=(1, 8)))
    gated, rx = _receive(x, gate=True)
    assert {f.telegram for f in gated} == {p.burst.telegram for p in placed}


def test_gated_receiver_is_chunk_invariant_across_gaps(stream):
    x, _ = stream
    gaps = ((int(1.9 * RATE), 30_000), (int(2.6 * RATE), 111))
    ref, rx = _receive(x, gate=True, gaps=gaps)
    assert rx.gaps == 2
    for chunk in (65536, 100_003):
        got, _ = _receive(x, gate=True, chunk=chunk, gaps=gaps)
        assert [(f.telegram, f.sample, f.rssi_dbfs, f.freq_offset_hz) for f in got] == \
            [(f.telegram, f.sample, f.rssi_dbfs, f.freq_offset_hz) for f in ref]


@pytest.mark.parametrize("fmt", ["cu8", "cs16"])
def test_raw_samples_give_what_their_conversion_gives(stream, fmt):
    # a lazy file source's chunks (sdr.types.RawIQ: the bytes as read, converted where read) through
    # the gate and the receiver, cut anywhere and across gaps: the same regions, the same frames
    # as the converted samples
    x, placed = stream
    raw = np.frombuffer(from_complex(x, fmt), dtype=np.uint8)
    bps = len(raw) // len(x)
    xq = to_complex(raw, fmt)
    cuts = [0, 77_777, 200_000, 1_000_003, 2_222_221, len(x)]
    gate_raw, gate_x = ActivityGate(RATE, CHANNELS, grid=32), ActivityGate(RATE, CHANNELS, grid=32)
    for a, b in zip(cuts, cuts[1:], strict=False):
        ev_raw = gate_raw.feed(RawIQ(raw[a * bps:b * bps], fmt))
        ev_x = gate_x.feed(xq[a:b])
        assert [(type(e), getattr(e, "start", None), getattr(e, "end", None)) for e in ev_raw] == \
            [(type(e), getattr(e, "start", None), getattr(e, "end", None)) for e in ev_x]
        for e, f in zip(ev_raw, ev_x, strict=True):
            if isinstance(e, Piece):
                assert e.samples.dtype == np.complex64
                np.testing.assert_array_equal(e.samples, f.samples)
    gaps = ((int(1.9 * RATE), 30_000),)

    def chunks(source):
        return [(lo, source(lo, hi)) for lo, hi in [(0, 300_001), (300_001, int(1.9 * RATE)),
                                                    (int(1.9 * RATE) + gaps[0][1], 3_500_000), (3_500_000, len(x))]]

    def frames(pieces):
        rx = Receiver(INFO, ["S1", "T1", "C1"])
        out = [f for lo, s in pieces for f in rx.process(IQChunk(samples=s, info=INFO, start=lo))] + list(rx.flush())
        assert rx.gaps == 1
        return [(f.telegram, f.sample, f.rssi_dbfs, f.freq_offset_hz, f.crc_ok) for f in out]

    got = frames(chunks(lambda lo, hi: RawIQ(raw[lo * bps:hi * bps], fmt)))
    assert got == frames(chunks(lambda lo, hi: xq[lo:hi]))
    assert len([f for f in got if f[4]]) >= len(placed) - 2


def test_clicks_do_not_hold_the_gate_open():
    # RTL-SDR clicks every 125 us lift every bin of a probe: seen as clicks, not as activity
    rng = np.random.default_rng(8)
    x, _ = render([], sample_rate_hz=RATE, center_freq_hz=CENTER, duration_s=5.0, rng=rng, noise_rms=NOISE,
                  impulses=Impulses(period_s=125e-6, amplitude=0.3, length=(1, 8)))
    regions, gate, _ = _gate_events(x, list(range(0, len(x), 262144)))
    late = sum(e - max(s, int(1.5 * RATE)) for s, e in regions if e > 1.5 * RATE)
    assert gate.probes_clicked > 1000
    assert late < 0.1 * (len(x) - 1.5 * RATE), regions  # (the clean stream: 1-2 %)


def test_another_transmitter_away_from_the_channels_hides_no_frame():
    # a strong carrier at +800 kHz (869.425 MHz, the high-power SRD band), 30 ms on, 30 ms off,
    # over every frame: it lifts a few bins away from the channels, not all of them as a click does
    x, placed = _stream(9, seconds=3.5, ebn0=(11.0, 12.0))
    t = np.arange(len(x)) / RATE
    keyed = (np.floor(t / 0.03) % 2 == 0) & (t > 0.2)
    x = x + (keyed * 0.3 * np.exp(2j * np.pi * 800e3 * t)).astype(np.complex64)
    gated, rx = _receive(x, gate=True)
    assert {f.telegram for f in gated} == {p.burst.telegram for p in placed}
    assert rx.gate.samples_passed < 0.6 * len(x)


def test_the_real_rtl_sdr_recording_looped_through_the_gate():
    # the shared RTL-SDR capture (clicks every ~125 us, the first frame clipped) played six times
    # over: after the gate's learning second, its regions hold both frames of every loop and leave
    # the clicks between them out
    from sdr.file import FileSource

    from .conftest import load_jsonl, shared_path

    expected = {row["telegram"] for row in load_jsonl("recordings", "expected.jsonl")}
    src = FileSource(str(shared_path("recordings", "rtlsdr_868.950M_1M6_samples2.cu8")))
    x = np.concatenate([c.samples for c in src])
    loops = 6
    looped = np.tile(x, loops)
    rx = Receiver(src.info, ["T1"])
    frames = [f for a in range(0, len(looped), 100_000)
              for f in rx.process(IQChunk(samples=looped[a:a + 100_000], info=src.info, start=a))]
    frames += rx.flush()
    good = [f for f in frames if f.crc_ok]
    assert {f.telegram.hex() for f in good} == expected
    assert len(good) == 2 * loops
    assert rx.samples_channelised < 0.8 * len(looped)
