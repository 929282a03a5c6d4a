"""Frames stay true to time: absolute sample indices across gaps, wall-clock time from the sample
clock, and output that does not depend on how the input was cut into chunks (gaps included)."""

from __future__ import annotations

import socket
import struct
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dsp.channel import Burst, render
from dsp.modes import MODES
from flowgraphs.pipelines.receive import Receiver
from sdr.file import FileSource
from sdr.rtltcp import RtlTcpSource
from sdr.types import IQChunk, StreamInfo

REPO = Path(__file__).resolve().parent.parent
RECORDING = REPO / "recordings" / "example_868.625M_2M4.sigmf-meta"


def _samples(path=RECORDING):
    src = FileSource(str(path))
    return np.concatenate([c.samples for c in src]), src.info, src.annotations


def _feed(x, info, gaps, chunk=65536, time0_ns=None):
    """Receive ``x`` with the samples of every (start, length) gap missing; chunks of ``chunk``
    samples (or a list of cut points) between the gaps, each with its true absolute start."""
    cuts = sorted({0, len(x), *(g for g, _ in gaps), *(g + n for g, n in gaps)})
    holes = [(g, g + n) for g, n in gaps]
    rx = Receiver(info)
    frames = []
    for a, b in zip(cuts, cuts[1:], strict=False):
        if any(h0 <= a and b <= h1 for h0, h1 in holes):
            continue
        points = range(a, b, chunk) if isinstance(chunk, int) else sorted({a, *(c for c in chunk if a < c < b)})
        for p, q in zip(points, [*list(points)[1:], b], strict=False):
            t = None if time0_ns is None else time0_ns + int(round(q * 1e9 / info.sample_rate_hz))
            frames += rx.process(IQChunk(samples=x[p:q], info=info, start=p, time_ns=t))
    frames += rx.flush()
    return [f for f in frames if f.crc_ok], rx


@pytest.fixture(scope="module")
def recording():
    return _samples()


@pytest.fixture(scope="module")
def unbroken(recording):
    x, info, notes = recording
    frames, _ = _feed(x, info, [])
    assert len(frames) == len(notes) == 8
    return frames


GAP_SETS = [
    # sizes from one sample to a quarter of a second, between frames, right after one, just before one
    [(420_000, 1), (1_000_000, 40_000), (2_100_000, 7), (3_200_000, 300_000)],
    [(276_000, 5_000), (640_000, 20_000), (1_262_000, 12_345), (2_800_000, 61_441)],
    [(10_000, 100_000), (1_500_000, 1_000), (1_900_000, 2_400_000)],
    [(150_000, 50_000), (700_000, 3), (3_460_000, 4_000)],  # the S1, a T1 and a C1 frame are hit
]


@pytest.mark.parametrize("gaps", GAP_SETS, ids=[f"set{i}" for i in range(len(GAP_SETS))])
def test_frames_after_gaps_keep_their_true_sample_index(recording, unbroken, gaps):
    x, info, notes = recording
    frames, rx = _feed(x, info, gaps)
    assert rx.gaps == len([g for g in gaps if g[0] > 0]) and rx.samples_lost == sum(n for _, n in gaps)
    # a frame is expected unless a gap falls inside it (or within 5 ms before its start: the burst
    # finder needs a little noise to learn the floor after a restart)
    lead = int(0.005 * info.sample_rate_hz)
    expected = [f for f in unbroken
                if not any(g < f.end_sample and f.sample - lead < g + n for g, n in gaps)]
    hit = [f for f in unbroken if f not in expected]
    assert len(expected) >= 4
    got = {f.telegram: f for f in frames}
    for f in expected:
        assert f.telegram in got, f"frame at sample {f.sample} lost"
        g = got[f.telegram]
        # the index found without the gaps (within a quarter chip: the burst around it was cut anew),
        # and the annotated truth within a chip
        assert abs(g.sample - f.sample) <= 0.25 * info.sample_rate_hz / f.chip_rate_hz, (g.sample, f.sample)
        note = next(n for n in notes if bytes.fromhex(n["wmbus:telegram"]) == f.telegram)
        mode = MODES[note["wmbus:mode"]]
        # (the recording's transmitters run off their nominal chip rate: the preamble lasts at theirs)
        truth = note["core:sample_start"] + 2 * mode.preamble_pairs / g.chip_rate_hz * info.sample_rate_hz
        assert abs(g.sample - truth) < info.sample_rate_hz / mode.chip_rate
    for f in hit:  # a frame cut by a gap never comes out at a wrong place
        quarter_chip = 0.25 * info.sample_rate_hz / f.chip_rate_hz
        assert f.telegram not in got or abs(got[f.telegram].sample - f.sample) <= quarter_chip


def test_frame_time_is_the_anchor_plus_the_sample_clock(recording):
    x, info, _ = recording
    t0 = 1_796_154_900_000_000_000  # 2026-12-01T19:55:00Z
    frames, _ = _feed(x, info, [(1_000_000, 40_000)], time0_ns=t0)
    assert frames and all(f.time_ns == t0 + round(f.sample * 1e9 / info.sample_rate_hz) for f in frames)
    # a chunk that arrived late does not move the clock: the earliest arrival anchors it
    rx = Receiver(info)
    late = [IQChunk(samples=x[i:i + 65536], info=info, start=i,
                    time_ns=t0 + round((i + 65536) * 1e9 / info.sample_rate_hz) + (50_000_000 if i % 3 else 0))
            for i in range(0, 1_400_000, 65536)]
    out = [f for c in late for f in rx.process(c)] + list(rx.flush())
    assert [f.time_ns for f in out if f.crc_ok] == [f.time_ns for f in frames[:len([f for f in out if f.crc_ok])]]


def test_sigmf_datetime_gives_recordings_their_time(tmp_path, recording):
    x, info, notes = recording
    meta = RECORDING.read_text().replace('"core:frequency"', '"core:datetime": "2026-12-01T19:55:00.250Z", '
                                         '"core:frequency"', 1)
    (tmp_path / "r.sigmf-meta").write_text(meta)
    (tmp_path / "r.sigmf-data").symlink_to(RECORDING.with_suffix(".sigmf-data"))
    src = FileSource(str(tmp_path / "r.sigmf-meta"))
    rx = Receiver(src.info)
    frames = [f for c in src for f in rx.process(c) if f.crc_ok] + [f for f in rx.flush() if f.crc_ok]
    assert frames[0].time_ns == 1_796_154_900_250_000_000 + round(frames[0].sample * 1e9 / info.sample_rate_hz)
    bad = RECORDING.read_text().replace('"core:frequency"', '"core:datetime": "yesterday", "core:frequency"', 1)
    (tmp_path / "b.sigmf-meta").write_text(bad)
    (tmp_path / "b.sigmf-data").symlink_to(RECORDING.with_suffix(".sigmf-data"))
    with pytest.raises(ValueError, match="core:datetime"):
        FileSource(str(tmp_path / "b.sigmf-meta"))


def test_overlapping_chunks_are_a_clear_error(recording):
    x, info, _ = recording
    rx = Receiver(info)
    list(rx.process(IQChunk(samples=x[:10_000], info=info, start=0)))
    with pytest.raises(ValueError, match="overlaps"):
        list(rx.process(IQChunk(samples=x[5_000:20_000], info=info, start=5_000)))


# --- chunk invariance with gaps (property) ---------------------------------------------------------

_INFO = StreamInfo(sample_rate_hz=1.2e6, center_freq_hz=868.95e6, source="synthetic")
_BODY = bytes.fromhex("44931578563412330378") + bytes(range(0xA0, 0xC4))
TEL = bytes([len(_BODY)]) + _BODY


@pytest.fixture(scope="module")
def synthetic():
    rng = np.random.default_rng(11)
    bursts = [Burst(mode=MODES[m], telegram=TEL[:1] + bytes([k]) + TEL[2:], frame_format=f, start_s=0.004 + 0.03 * k,
                    amplitude=0.3)
              for k, (m, f) in enumerate([("T1", "A"), ("C1", "A"), ("C1", "B"), ("T1", "A")])]
    x, _ = render(bursts, sample_rate_hz=_INFO.sample_rate_hz, center_freq_hz=_INFO.center_freq_hz,
                  duration_s=0.13, rng=rng, noise_rms=0.02)
    frames, _ = _run(x, [], 16_384)
    assert len(frames) == 4
    return x


def _run(x, gaps, cuts):
    frames, rx = _feed(x, _INFO, gaps, chunk=cuts)
    return [(f.mode, f.frame_format, f.telegram, f.sample, f.end_sample, f.freq_offset_hz, f.chip_rate_hz)
            for f in frames], rx.samples_lost


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(gap_at=st.lists(st.integers(1_000, 150_000), min_size=1, max_size=3, unique=True),
       gap_len=st.lists(st.sampled_from([1, 2, 5, 63, 1024, 4_321, 20_000]), min_size=3, max_size=3),
       cuts=st.lists(st.integers(1, 155_999), max_size=12))
def test_chunk_invariance_with_gaps(synthetic, gap_at, gap_len, cuts):
    gaps, end = [], 0
    for g, n in zip(sorted(gap_at), gap_len, strict=False):
        if g >= end:
            gaps.append((g, min(n, len(synthetic) - g)))
            end = g + n
    ref = _run(synthetic, gaps, 16_384)
    assert _run(synthetic, gaps, cuts) == ref


# --- a live source over rtl_tcp that loses its connection for 3 s ---------------------------------

class PacedRtlTcp:
    """rtl_tcp stand-in with a sample clock that keeps running: sample k of ``payload`` (cu8) is on
    air at ``t0 + k / rate``; it is sent when due. After ``drop_at_s`` it closes the connection and the
    listening socket for ``down_s`` (clients cannot connect), then listens again on the same port and
    sends from wherever the clock is by then."""

    def __init__(self, payload: bytes, rate: float, *, drop_at_s: float, down_s: float):
        self.payload, self.rate, self.drop_at_s, self.down_s = payload, rate, drop_at_s, down_s
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.t0_mono: float | None = None
        self.t0_wall_ns: int | None = None
        self.dropped = threading.Event()
        self.done = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        sock = self.sock
        while not self.done.is_set():
            conn, _ = sock.accept()
            conn.sendall(b"RTL0" + struct.pack(">II", 5, 29))
            if self.t0_mono is None:
                self.t0_mono, self.t0_wall_ns = time.monotonic(), time.time_ns()
            self._sent = int((time.monotonic() - self.t0_mono) * self.rate)  # a new client gets "now" on
            try:
                while True:
                    now = time.monotonic() - self.t0_mono
                    if not self.dropped.is_set() and now >= self.drop_at_s:
                        break
                    k = min(int(now * self.rate), len(self.payload) // 2)
                    if k >= len(self.payload) // 2:
                        self.done.set()
                        return
                    if k > self._sent:
                        conn.sendall(self.payload[2 * self._sent:2 * k])
                        self._sent = k
                    time.sleep(0.005)
            except OSError:
                return
            finally:
                conn.close()
            sock.close()
            self.dropped.set()
            time.sleep(self.down_s)
            sock = socket.create_server(("127.0.0.1", self.port))

    def truth_ns(self, sample: int) -> int:
        return self.t0_wall_ns + int(round(sample * 1e9 / self.rate))


@pytest.fixture(scope="module")
def outage_capture():
    """9.4 s at 800 ksps on the T1 channel, a T1 frame every 0.25 s: (cu8 bytes, rate, centre, truth)
    where truth maps each telegram to the input sample of its sync word."""
    from sdr.formats import from_complex

    rate, center = 800_000.0, 868.95e6
    bursts = [Burst(mode=MODES["T1"], telegram=TEL[:1] + bytes([k]) + TEL[2:], start_s=0.1 + 0.25 * k, amplitude=0.3)
              for k in range(36)]
    x, placed = render(bursts, sample_rate_hz=rate, center_freq_hz=center, duration_s=9.4,
                       rng=np.random.default_rng(5), noise_rms=0.02)
    sync_offset = 2 * MODES["T1"].preamble_pairs / MODES["T1"].chip_rate * rate
    truth = {p.burst.telegram: p.placement.start + sync_offset for p in placed}
    return bytes(from_complex(x, "cu8")), rate, center, truth


def test_rx_over_rtltcp_keeps_time_across_a_3_s_outage(outage_capture):
    from flowgraphs.pipelines.live import ArrivalClock

    payload, rate, center, truth = outage_capture
    server = PacedRtlTcp(payload, rate, drop_at_s=3.0, down_s=3.0)
    src = RtlTcpSource(f"127.0.0.1:{server.port}", sample_rate_hz=rate, center_freq_hz=center, retries=8)
    info = src.info
    rx = Receiver(info, ["T1"])
    clock = ArrivalClock(rate)
    frames, latencies = [], []
    with src:
        for chunk in src:
            clock.mark(chunk.end, chunk.arrived)
            for f in rx.process(chunk):
                if f.crc_ok:
                    frames.append(f)
                    latencies.append(time.monotonic() - clock.on_air(f.end_sample))
            if server.done.is_set() or chunk.end >= 9.0 * rate:
                break
    server.done.set()
    assert src.reconnects == 1 and src.dropped > 2.5 * rate
    after = [f for f in frames if f.sample > 6.0 * rate]
    assert len(after) >= 8, len(after)
    for f in frames:
        err_ms = (f.time_ns - server.truth_ns(truth[f.telegram])) / 1e6
        assert abs(err_ms) < 10, (f.sample, truth[f.telegram], err_ms)
    assert float(np.median(latencies)) < 0.2


def test_rx_command_reports_true_times_across_a_3_s_outage(outage_capture):
    """The acceptance run: `wmbus-sdr rx` over rtl_tcp that goes away for 3 s; every frame's UTC time
    (JSON lines) within 10 ms of when the server sent its sync word, the summary's latency < 0.2 s."""
    import json
    import re
    import subprocess
    import sys

    from sdr.file import parse_utc

    payload, rate, _, truth = outage_capture
    server = PacedRtlTcp(payload, rate, drop_at_s=3.0, down_s=3.0)
    p = subprocess.run([sys.executable, "-m", "flowgraphs.cli", "rx", "--device", f"rtltcp://127.0.0.1:{server.port}",
                        "--rate", "8e5", "--center", "868.95e6", "--modes", "T1", "--output", "jsonl",
                        "--duration", "9.0", "--quiet"], capture_output=True, cwd=REPO, timeout=60)
    server.done.set()
    assert p.returncode == 0, p.stderr.decode()
    lines = [json.loads(line) for line in p.stdout.decode().splitlines()]
    late = [o for o in lines if o["sample"] > 6.5 * rate]
    assert len(late) >= 8
    for o in lines:
        sent_ns = server.truth_ns(truth[bytes.fromhex(o["telegram"])])
        err_ms = (parse_utc(o["time"], where="rx output") - sent_ns) / 1e6
        assert abs(err_ms) < 10, (o["sample"], err_ms)
    median = float(re.search(rb"latency median ([0-9.]+) s", p.stderr)[1])
    assert median < 0.2, p.stderr.decode()
