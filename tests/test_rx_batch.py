"""Receiver(batch_s=...): chunks gathered into batches (as `rx` does with a device's small chunks)
give the very frames of the unbatched chain, across gaps, and overlaps are still an error at once."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dsp.channel import Burst, render
from dsp.modes import MODES
from flowgraphs.pipelines.receive import Receiver
from sdr.types import IQChunk, StreamInfo

INFO = StreamInfo(sample_rate_hz=1.2e6, center_freq_hz=868.95e6, source="synthetic")
BODY = bytes.fromhex("44931578563412330378") + bytes(range(0xA0, 0xC4))
TEL = bytes([len(BODY)]) + BODY


@pytest.fixture(scope="module")
def capture():
    rng = np.random.default_rng(12)
    bursts = [Burst(mode=MODES[m], telegram=TEL[:1] + bytes([k]) + TEL[2:], frame_format=f,
                    start_s=0.004 + 0.03 * k, amplitude=0.3)
              for k, (m, f) in enumerate([("T1", "A"), ("C1", "A"), ("C1", "B"), ("T1", "A")])]
    x, _ = render(bursts, sample_rate_hz=INFO.sample_rate_hz, center_freq_hz=INFO.center_freq_hz,
                  duration_s=0.13, rng=rng, noise_rms=0.02)
    return x


def run(x, cuts, gap, batch_s):
    """Frames (and their order) from ``x`` cut at ``cuts``, with samples [gap[0], gap[1]) missing."""
    rx = Receiver(INFO, batch_s=batch_s)
    points = sorted({0, len(x), *gap, *cuts})
    out = []
    for a, b in zip(points, points[1:], strict=False):
        if gap[0] <= a and b <= gap[1]:
            continue
        out += rx.process(IQChunk(samples=x[a:b], info=INFO, start=a))
    out += rx.flush()
    return [(f.mode, f.frame_format, f.telegram, f.crc_ok, f.sample, f.end_sample, f.freq_offset_hz)
            for f in out], rx.samples_lost, rx.gaps


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cuts=st.lists(st.integers(1, 155_999), max_size=40),
       gap_at=st.integers(1_000, 150_000), gap_len=st.sampled_from([0, 1, 63, 4_321, 20_000]),
       batch_s=st.sampled_from([0.001, 0.01, 0.04, 0.2]))
def test_batches_give_the_frames_of_the_unbatched_chain(capture, cuts, gap_at, gap_len, batch_s):
    gap = (gap_at, min(gap_at + gap_len, len(capture)))
    want = run(capture, cuts, gap, 0.0)
    if gap_len == 0:
        assert sum(f[3] for f in want[0]) == 4
    assert run(capture, cuts, gap, batch_s) == want


def test_batched_overlap_is_still_an_error(capture):
    rx = Receiver(INFO, batch_s=0.05)
    list(rx.process(IQChunk(samples=capture[:10_000], info=INFO, start=0)))
    with pytest.raises(ValueError, match="overlaps"):
        list(rx.process(IQChunk(samples=capture[5_000:20_000], info=INFO, start=5_000)))


def test_batches_hold_frames_back_only_until_full(capture):
    """Until a batch is full nothing goes down the chain; a full one goes at once."""
    rx = Receiver(INFO, batch_s=0.1)  # 120 000 samples
    assert list(rx.process(IQChunk(samples=capture[:100_000], info=INFO, start=0))) == []
    assert rx.samples_in == 0
    frames = list(rx.process(IQChunk(samples=capture[100_000:130_000], info=INFO, start=100_000)))
    assert rx.samples_in == 130_000
    frames += rx.flush()
    assert sum(f.crc_ok for f in frames) == 4


@pytest.mark.parametrize("chunk_s", [0.004, 0.1, 1.0])
def test_live_duration_is_exact_whatever_the_chunks(capture, chunk_s):
    """run_live(stop_after_s=...) (rx --duration) hears exactly that much signal: the chunk that
    crosses the end is cut there, so 0.1 s blocks from a device (or any other size) give the frames
    of the first 0.06 s — the two that end before it, not the third, which starts at 0.064 s."""
    from flowgraphs.pipelines.live import run_live

    n = int(chunk_s * INFO.sample_rate_hz)
    chunks = (IQChunk(samples=capture[a:a + n], info=INFO, start=a) for a in range(0, len(capture), n))
    frames = []
    rx = Receiver(INFO, batch_s=0.1)
    result = run_live(chunks, rx, [lambda f, t: frames.append(f)], stop_after_s=0.06)
    assert [(f.mode, f.telegram[1]) for f in frames] == [("T1", 0), ("C1", 1)], frames
    assert result["frames"] == 2 and rx.samples_in == int(0.06 * INFO.sample_rate_hz)
