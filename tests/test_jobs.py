"""``decode --jobs N`` (issue #12 scope 4): a recording cut into segments on several processes gives the
frames of one run — none lost or doubled at a boundary — with frames placed across every boundary."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dsp.channel import Burst, Capture, adc_8bit
from dsp.modes import MODES
from flowgraphs.pipelines.parallel import ParallelReceiver, ReceiverSettings, SourceSpec, merge, plan_segments
from flowgraphs.pipelines.receive import Receiver
from sdr.file import FileSource
from sdr.formats import from_complex
from sdr.types import StreamInfo

ROOT = Path(__file__).resolve().parent.parent
FS, FC = 1.6e6, 868.625e6
MODES3 = ("S1", "T1", "C1")
JOBS, MIN_SEG_S, SECONDS = 3, 1.2, 8.0
INFO = StreamInfo(sample_rate_hz=FS, center_freq_hz=FC, source="test")


def _telegram(rng) -> bytes:
    return bytes([0x32, 0x44]) + rng.integers(0, 256, 49, dtype=np.uint8).tobytes()


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    """An 8 s cu8 recording with frames across every boundary the planner will cut at: each cut has
    a frame whose sync word lies just before it (ending after it), one starting on it and one just
    after, in turn S1, T1, C1, plus frames in between."""
    n = int(SECONDS * FS)
    probe = Receiver(INFO, MODES3)
    cuts = [s.start for s in plan_segments(n, FS, probe.alignment, JOBS, min_segment_s=MIN_SEG_S)][1:]
    assert len(cuts) >= 4
    rng = np.random.default_rng(12)
    bursts = []
    for k, cut in enumerate(cuts):
        t = cut / FS
        for j, (lead_s, mode) in enumerate(((-0.004, "S1"), (-0.0006, "T1"), (-0.0002, "C1"), (0.0, "T1"),
                                            (0.002, "C1"), (0.2, "S1"), (-0.3, "T1"))):
            bursts.append(Burst(mode=MODES[mode], telegram=_telegram(rng), start_s=t + lead_s - 0.1 * (j == 0),
                                amplitude=0.2, freq_offset_hz=float(rng.uniform(-20e3, 20e3)),
                                frame_format="B" if (k + j) % 3 == 0 and mode == "C1" else "A"))
    bursts.sort(key=lambda b: b.start_s)
    # keep bursts on a channel apart: a later one starts after an earlier one of that channel ends
    kept, busy_until = [], {}
    for b in bursts:
        if b.start_s >= busy_until.get(b.mode.channel_hz, -1.0):
            kept.append(b)
            busy_until[b.mode.channel_hz] = b.start_s + 0.25
    cap = Capture(kept, sample_rate_hz=FS, center_freq_hz=FC, duration_s=SECONDS, rng=rng, noise_rms=0.02,
                  dc_offset=0.01 + 0.004j)
    path = tmp_path_factory.mktemp("jobs") / "capture.cu8"
    with path.open("wb") as f:
        for block in cap.blocks():
            f.write(from_complex(adc_8bit(block), "cu8"))
    return path, kept, cuts


def _single(path: Path):
    src = FileSource(str(path), fmt="cu8", sample_rate_hz=FS, center_freq_hz=FC)
    rx = Receiver(src.info, MODES3, calibrate=True)
    frames = [f for chunk in src for f in rx.process(chunk)] + list(rx.flush())
    return rx, frames


def test_segments_cover_the_file_on_the_block_grid():
    probe = Receiver(INFO, MODES3)
    n = int(600 * FS) + 12345
    segs = plan_segments(n, FS, probe.alignment, 2)
    assert len(segs) == 4 and segs[0].start == 0 and segs[-1].stop == n
    assert all(a.stop == b.start for a, b in zip(segs, segs[1:], strict=False))
    assert all(s.start % probe.alignment == 0 and s.run_from % probe.alignment == 0 for s in segs)
    assert all(s.start - s.run_from >= 1.5 * FS or s.run_from == 0 for s in segs)
    assert plan_segments(int(30 * FS), FS, probe.alignment, 4) == plan_segments(int(30 * FS), FS, probe.alignment, 1)
    assert plan_segments(0, FS, probe.alignment, 2) == []


def test_parallel_frames_are_the_single_run_frames_across_every_boundary(capture):
    path, sent, cuts = capture
    rx, single = _single(path)
    good = [f for f in single if f.crc_ok]
    assert {f.telegram for f in good} == {b.telegram for b in sent}  # every frame, also those across a cut
    assert any(f.sample < c < f.end_sample for c in cuts for f in good)  # some straddle a cut
    spec = SourceSpec(path=str(path), fmt="cu8", sample_rate_hz=FS, center_freq_hz=FC)
    par = ParallelReceiver(spec, INFO, int(SECONDS * FS), ReceiverSettings(modes=MODES3), JOBS,
                           min_segment_s=MIN_SEG_S)
    assert [s.start for s in par.segments][1:] == cuts
    got = list(par.frames())
    assert got == single  # the same frames, bit for bit, in the same order
    assert par.ppm_estimate == rx.ppm_estimate
    assert par.stats["frames T1"] == rx.stats["frames T1"] and par.samples_in == int(SECONDS * FS)


def test_merge_drops_the_copies_a_tail_already_gave():
    from flowgraphs.pipelines.parallel import Segment, SegmentResult
    from flowgraphs.pipelines.receive import RxFrame

    def frame(sample):
        return RxFrame(mode="T1", frame_format="A", telegram=bytes([sample % 256]), crc_ok=True, reason="",
                       sample=sample, end_sample=sample + 10, sample_rate_hz=FS, rssi_dbfs=-20.0,
                       noise_dbfs=-40.0, snr_db=20.0, freq_offset_hz=0.0, chip_rate_hz=1e5, channel_hz=868.95e6,
                       violations=0)
    a = Segment(index=0, start=0, stop=100, run_from=0, run_to=150)
    b = Segment(index=1, start=100, stop=200, run_from=50, run_to=200)
    # a frame of segment b (105) closes before the last frame of a (95): a's worker saw it first
    ra = SegmentResult(segment=a, frames=[frame(10), frame(105), frame(95), frame(120)], fits={})
    rb = SegmentResult(segment=b, frames=[frame(105), frame(120), frame(150)], fits={})
    assert [f.sample for f in merge([ra, rb])] == [10, 105, 95, 120, 150]


def test_cli_jobs_prints_the_same_frames(capture, tmp_path):
    path, _, _ = capture
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "WMBUS_SDR_MIN_SEGMENT_S": str(MIN_SEG_S)}
    base = [sys.executable, "-m", "flowgraphs.cli", "decode", str(path), "--format", "cu8", "--rate", str(FS),
            "--center", str(FC), "--output", "jsonl", "--show-bad"]
    one = subprocess.run(base, capture_output=True, text=True, env=env, timeout=600, check=True)
    two = subprocess.run([*base, "--jobs", "2"], capture_output=True, text=True, env=env, timeout=600, check=True)
    assert one.stdout and two.stdout == one.stdout
    bad = subprocess.run([sys.executable, "-m", "flowgraphs.cli", "decode", "-", "--format", "cu8", "--rate",
                          str(FS), "--center", str(FC), "--jobs", "2"], input="", capture_output=True, text=True,
                         env=env, timeout=120)
    assert bad.returncode == 2 and "--jobs needs a file" in bad.stderr
