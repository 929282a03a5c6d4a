"""A long recording decoded on several cores (``decode --jobs N``), with the frames of one run.

The file is cut into segments on the receiver's block grid (:attr:`Receiver.alignment`). A worker
receives its segment plus ``warmup_s`` before it and ``tail_s`` after it: every block of the receiver
has finite memory (blanker blocks, FFT overlap, the DC span, the noise floor's window, the longest
burst), so after the warm-up its state is the one a single run has there, and a frame whose sync word
lies in the segment comes out bit-identical. A frame belongs to the segment its ``sample`` is in.

The single run emits frames in the order their bursts close, which near a boundary can put a frame
of the next segment before the last frames of this one; a worker sees those frames in its tail, so
the merge follows each worker's own order there and drops the copies. The tuner-error estimate is
replayed in the parent in frame order from the carrier fits the workers made, so it is the one of a
single run too.
"""

from __future__ import annotations

import math
import multiprocessing
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

from .calibration import PpmCalibrator, PpmEstimate
from .receive import Receiver, RxFrame

WARMUP_S = 1.5  # > longest burst (max_windows at the channel rate, 0.66 s) + noise floor (0.17 s) + DC span
TAIL_S = 1.0  # a frame starting just before a segment's end is whole by then
MIN_SEGMENT_S = 20.0  # shorter segments spend too much on warm-up (env WMBUS_SDR_MIN_SEGMENT_S: tests)


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceSpec:
    """How a worker opens the recording again (a FileSource is not sent between processes)."""

    path: str
    fmt: str | None
    sample_rate_hz: float | None
    center_freq_hz: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Segment:
    index: int
    start: int  # first sample owned
    stop: int  # first sample not owned
    run_from: int  # the worker starts here (on the alignment grid, warm-up before ``start``)
    run_to: int  # and stops here (tail after ``stop``)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReceiverSettings:
    modes: tuple[str, ...]
    blank_impulses: bool = True
    ppm: float = 0.0
    gate: bool = True


@dataclass(slots=True, kw_only=True)
class SegmentResult:
    segment: Segment
    frames: list[RxFrame]  # every frame the worker emitted with sample >= segment.start, in its order
    fits: dict[tuple[int, bytes], float]  # (sample, telegram) -> carrier offset (Hz) of CRC-valid frames
    stats: Counter = field(default_factory=Counter)  # of the frames owned
    bad_samples: int = 0  # non-finite samples in the owned range


class _FitRecorder(PpmCalibrator):
    """A calibrator that fits every CRC-valid frame and only writes the fits down."""

    def __init__(self, center_freq_hz: float):
        super().__init__(center_freq_hz)
        self.fits: dict[tuple[int, bytes], float] = {}

    def wants(self, telegram: bytes, t_s: float) -> bool:
        return len(telegram) >= 10

    def add(self, telegram: bytes, t_s: float, carrier_offset_hz: float, *, sample: int = 0) -> None:
        self.fits[(sample, bytes(telegram))] = carrier_offset_hz


def plan_segments(n_samples: int, sample_rate_hz: float, alignment: int, jobs: int, *,
                  warmup_s: float = WARMUP_S, tail_s: float = TAIL_S,
                  min_segment_s: float = MIN_SEGMENT_S) -> list[Segment]:
    """Two segments per job (so a slow one does not hold the rest back), none shorter than
    ``min_segment_s``; boundaries and warm-up starts on the alignment grid."""
    if n_samples <= 0:
        return []
    count = max(1, min(2 * jobs, int(n_samples / (min_segment_s * sample_rate_hz))))
    warm = math.ceil(warmup_s * sample_rate_hz / alignment) * alignment
    tail = int(tail_s * sample_rate_hz)
    cuts = [0] + [round(n_samples * k / count / alignment) * alignment for k in range(1, count)] + [n_samples]
    cuts = sorted(set(cuts))
    return [Segment(index=i, start=a, stop=b, run_from=max(0, a - warm), run_to=min(n_samples, b + tail))
            for i, (a, b) in enumerate(zip(cuts[:-1], cuts[1:], strict=True))]


def _run_segment(spec: SourceSpec, settings: ReceiverSettings, seg: Segment) -> SegmentResult:
    from sdr.file import FileSource

    source = FileSource(spec.path, fmt=spec.fmt, sample_rate_hz=spec.sample_rate_hz,
                        center_freq_hz=spec.center_freq_hz, lazy=True, chunk_samples=1 << 20)
    recorder = _FitRecorder(source.info.center_freq_hz)
    rx = Receiver(source.info, settings.modes, blank_impulses=settings.blank_impulses, ppm=settings.ppm,
                  calibrator=recorder, gate=settings.gate)
    out: list[RxFrame] = []
    stats: Counter = Counter()
    bad = 0

    def take(frames: Iterable[RxFrame]) -> None:
        for f in frames:
            if f.sample >= seg.start:
                out.append(f)
                if f.sample < seg.stop:
                    stats[f"frames {f.mode}" if f.crc_ok else f"rejected {f.reason}"] += 1

    for a, b in ((seg.run_from, seg.start), (seg.start, seg.stop), (seg.stop, seg.run_to)):
        before = source.bad_samples
        for chunk in source.read_range(a, b):
            take(rx.process(chunk))
        if (a, b) == (seg.start, seg.stop):
            bad = source.bad_samples - before
    take(rx.flush())
    stats["bursts"] = rx.stats["bursts"]
    return SegmentResult(segment=seg, frames=out, fits=recorder.fits, stats=stats, bad_samples=bad)


def merge(results: Iterable[SegmentResult]) -> Iterator[RxFrame]:
    """The frames of consecutive segments in the order one run gives them (see the module text)."""
    emitted_ahead: list[RxFrame] = []  # frames of later segments already given, in order
    for res in results:
        seg = res.segment
        frames = list(res.frames)
        # the copies of frames given with the previous segment come first in this worker's list
        for f in emitted_ahead:
            if f in frames:
                frames.remove(f)
        emitted_ahead = []
        owned_left = sum(1 for f in frames if f.sample < seg.stop)
        for f in frames:
            if owned_left == 0:
                break
            if f.sample < seg.stop:
                owned_left -= 1
            else:
                emitted_ahead.append(f)
            yield f


class ParallelReceiver:
    """``decode --jobs N``: the recording in segments on N worker processes; frames come out in
    order as segments finish. ``stats``, ``samples_in``, ``bursts``, ``ppm_estimate`` and
    ``bad_samples`` are filled as they do."""

    def __init__(self, spec: SourceSpec, info, n_samples: int, settings: ReceiverSettings, jobs: int, *,
                 min_segment_s: float | None = None):
        self.spec = spec
        self.info = info
        self.settings = settings
        self.jobs = jobs
        probe = Receiver(info, settings.modes, blank_impulses=settings.blank_impulses, ppm=settings.ppm,
                         gate=settings.gate)
        self.plan = probe.plan
        if min_segment_s is None:
            min_segment_s = float(os.environ.get("WMBUS_SDR_MIN_SEGMENT_S", MIN_SEGMENT_S))
        self.segments = plan_segments(n_samples, info.sample_rate_hz, probe.alignment, jobs,
                                      warmup_s=max(WARMUP_S, probe.warmup_s), min_segment_s=min_segment_s)
        self.calibrator = PpmCalibrator(info.center_freq_hz, applied_ppm=settings.ppm)
        self.stats: Counter = Counter()
        self.samples_in = 0  # end of the last segment finished
        self.bad_samples = 0
        self.segments_done = 0

    @property
    def modes(self) -> list[str]:
        return [m for _, ms in self.plan.values() for m in ms]

    @property
    def ppm_estimate(self) -> PpmEstimate | None:
        return self.calibrator.estimate()

    def frames(self) -> Iterator[RxFrame]:
        ctx = multiprocessing.get_context("spawn")  # no fork of a process with BLAS/FFT threads
        with ProcessPoolExecutor(max_workers=self.jobs, mp_context=ctx) as pool:
            futures = [pool.submit(_run_segment, self.spec, self.settings, seg) for seg in self.segments]
            fits: dict[tuple[int, bytes], float] = {}

            def done() -> Iterator[SegmentResult]:
                for fut in futures:
                    res = fut.result()
                    fits.update(res.fits)
                    self.stats.update(res.stats)
                    self.bad_samples += res.bad_samples
                    yield res
                    self.samples_in = res.segment.stop
                    self.segments_done += 1

            for f in merge(done()):
                if f.crc_ok and self.calibrator.wants(f.telegram, f.t_s):
                    fit = fits.pop((f.sample, f.telegram), None)
                    if fit is not None:
                        self.calibrator.add(f.telegram, f.t_s, fit)
                yield f
