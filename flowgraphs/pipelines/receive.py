"""Receive flowgraph: IQ chunks -> impulse blanker -> channeliser -> burst finder per channel ->
demodulator -> link frames (RxFrame), counted per mode and per rejection reason."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from dsp.channelizer import Channelizer
from dsp.demod import Demodulator, FrameResult
from dsp.detect import BurstFinder
from dsp.frontend import ImpulseBlanker
from dsp.measure import carrier_fit
from dsp.modes import MODES, ModeSpec, default_rx_modes, receivable_modes
from sdr.types import IQChunk, StreamInfo

from .calibration import PpmCalibrator, PpmEstimate

DEFAULT_MODES = default_rx_modes()  # every receivable meter -> other mode (dsp.modes)
CHANNEL_HALF_WIDTH_HZ = 175e3  # a channel is planned when this much of it is inside the band's edge


def channel_name(freq_hz: float) -> str:
    """'868.30', '868.95', '869.525': MHz with at least two decimals, as many as the frequency needs."""
    for decimals in range(2, 7):
        text = f"{freq_hz / 1e6:.{decimals}f}"
        if abs(float(text) * 1e6 - freq_hz) < 0.5:
            return text
    return f"{freq_hz / 1e6:.6f}"


def channels(specs: Iterable[ModeSpec]) -> dict[str, tuple[float, tuple[str, ...]]]:
    """Modes grouped by channel frequency, in the order they come: name -> (frequency, modes)."""
    out: dict[str, tuple[float, tuple[str, ...]]] = {}
    for m in specs:
        name = channel_name(m.channel_hz)
        out[name] = (m.channel_hz, out.get(name, (0.0, ()))[1] + (m.name,))
    return out


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class BurstSnippet:
    """The channel-rate IQ a frame was decoded from (kept with ``keep_detail``, for the analyser)."""

    samples: np.ndarray  # complex64 at the channel rate
    sample_rate_hz: float  # the channel rate
    result: FrameResult  # the demodulator's view (positions in ``samples``)
    bin_error_hz: float  # the channel's realised centre minus the nominal channel


@dataclass(frozen=True, slots=True, kw_only=True)
class RxFrame:
    """One link frame as heard: bytes, where it sits in the sample stream and in time, and its signal.

    ``sample`` / ``end_sample`` are absolute indices into the input stream (true across gaps);
    ``time_ns`` is the UTC wall clock of ``sample`` from the stream's anchor (None when the source
    has no clock, e.g. a raw file without metadata). Frames compare and hash on everything but
    ``detail``."""

    mode: str
    frame_format: str | None
    telegram: bytes  # canonical (L first, no CRCs) when crc_ok
    crc_ok: bool
    reason: str
    sample: int  # absolute input sample index where the sync word starts
    end_sample: int  # absolute input sample index just after the last chip
    sample_rate_hz: float  # of the input stream
    time_ns: int | None = None  # UTC wall clock (ns since the epoch) of ``sample``
    rssi_dbfs: float
    noise_dbfs: float
    snr_db: float
    freq_offset_hz: float  # carrier offset from the nominal channel
    chip_rate_hz: float
    channel_hz: float
    violations: int
    detail: BurstSnippet | None = field(default=None, compare=False, hash=False)

    @property
    def t_s(self) -> float:
        """Seconds from the stream's sample 0 to the sync word."""
        return self.sample / self.sample_rate_hz


def plan_channels(info: StreamInfo, modes: Iterable[str]) -> dict[str, tuple[float, tuple[str, ...]]]:
    """The channels (with their wanted modes) that the capture band contains: the receivable modes
    (dsp.modes) grouped by channel frequency. A mode heard as another one (S2, T2 as S1) is known
    but plans nothing by itself."""
    wanted = {m.upper() for m in modes}
    known = receivable_modes()
    unknown = wanted - set(MODES)
    if unknown:
        raise ValueError(f"unknown mode(s) {', '.join(sorted(unknown))}; "
                         f"known: {', '.join(m.name for m in known)}")
    half = info.sample_rate_hz / 2 - CHANNEL_HALF_WIDTH_HZ
    return channels(m for m in known if m.name in wanted and abs(m.channel_hz - info.center_freq_hz) <= half)


class Receiver:
    """IQ chunks in, link frames out, true to time.

    Sample indices are absolute: a chunk whose ``start`` jumps past the previous chunk's end (samples
    dropped by the source, or a reconnect) ends the current *segment* — its bursts are flushed as at
    the end of a stream — and a new segment starts at the chunk's own index, its first channel sample
    on the absolute decimation grid. So a frame's ``sample`` is where it was on air whatever was lost
    before it, and the output depends on the input's absolute indices, never on its chunking.

    Wall-clock time comes from the chunks that carry one (``IQChunk.time_ns``, the arrival of their
    last sample): the earliest ``time_ns - end / rate`` (the least delayed arrival) anchors sample 0,
    and every frame's ``time_ns`` is that anchor plus its index at the nominal rate.
    """

    def __init__(self, info: StreamInfo, modes: Iterable[str] = DEFAULT_MODES, *, blank_impulses: bool = True,
                 keep_detail: bool = False, ppm: float = 0.0, device_ppm: float = 0.0, calibrate: bool = False,
                 calibrator: PpmCalibrator | None = None, batch_s: float = 0.0):
        self.info = info
        # chunks are gathered into runs of at least this many samples before they go down the chain:
        # every call costs the same Python overhead whatever its length (a live source hands over
        # ~20 ms chunks, which would double the CPU load); frames come out up to that much later
        self.batch_samples = int(batch_s * info.sample_rate_hz)
        self._held: list[np.ndarray] = []
        self._held_start = self._held_end = 0
        self.keep_detail = keep_detail
        self.plan = plan_channels(info, modes)
        if not self.plan:
            lo = (info.center_freq_hz - info.sample_rate_hz / 2) / 1e6
            hi = (info.center_freq_hz + info.sample_rate_hz / 2) / 1e6
            raise ValueError(f"no wanted channel inside the captured band {lo:.3f}-{hi:.3f} MHz; centre the "
                             "capture at 868.625 MHz (S, T, C at once) or 868.95 MHz (T1/C1) with >= 1.6 Msps")
        self.ppm = float(ppm)  # the tuner error corrected (rtl_sdr -p convention) ...
        self.device_ppm = float(device_ppm)  # ... of which the device corrects this much itself
        self._pending_ppm: float | None = None
        self.channelizer = self._channelizer()
        if calibrator is None and calibrate:
            calibrator = PpmCalibrator(info.center_freq_hz, applied_ppm=self.ppm)
        self.calibrator = calibrator  # learns the tuner error from the frames (calibrate=True)
        self.blanker = ImpulseBlanker() if blank_impulses else None
        self.finders = {name: BurstFinder(name) for name in self.plan}
        self.demods = {name: Demodulator(self.channelizer.out_rate, list(ms)) for name, (_, ms) in self.plan.items()}
        self.stats: Counter = Counter()
        self.samples_in = 0  # absolute index just after the last input sample
        self.samples_lost = 0  # samples missing between chunks (gaps)
        self._segment: int | None = None  # absolute input index of the current segment's channel sample 0
        self._clock0_ns: int | None = None  # UTC ns of absolute sample 0 (the sample clock's anchor)

    @property
    def tuner_center_hz(self) -> float:
        """Where the tuner really is: the nominal centre moved by the tuner error in force (``ppm``,
        the rtl_sdr -p convention: + = the tuner is high) less what the device corrects itself."""
        return self.info.center_freq_hz * (1 + (self.ppm - self.device_ppm) * 1e-6)

    def _channelizer(self) -> Channelizer:
        return Channelizer(self.info.sample_rate_hz, self.tuner_center_hz,
                           {name: f for name, (f, _) in self.plan.items()})

    def set_ppm(self, ppm: float) -> None:
        """Correct a tuner error of ``ppm`` (in all, the device's own correction included) from the
        next chunk on: the channels are re-planned at that chunk's first sample, as after a gap (a
        frame on air at that moment may be lost)."""
        self._pending_ppm = float(ppm)

    @property
    def correction_ppm(self) -> float:
        """The tuner error corrected, or about to be from the next chunk (set_ppm)."""
        return self._pending_ppm if self._pending_ppm is not None else self.ppm

    @property
    def ppm_estimate(self) -> PpmEstimate | None:
        """The tuner error learnt from the frames decoded so far (None without ``calibrate`` or
        before the first frame was fitted)."""
        return self.calibrator.estimate() if self.calibrator is not None else None

    @property
    def gaps(self) -> int:
        """Breaks in the sample stream so far (counted in ``stats`` as "gaps")."""
        return self.stats["gaps"]

    @property
    def modes(self) -> list[str]:
        return [m for _, ms in self.plan.values() for m in ms]

    def time_ns(self, sample: int) -> int | None:
        """UTC wall clock (ns) of an absolute sample index; None before any chunk carried a time."""
        if self._clock0_ns is None:
            return None
        return self._clock0_ns + int(round(sample * 1e9 / self.info.sample_rate_hz))

    @property
    def alignment(self) -> int:
        """Input samples between starts that put every block (blanker blocks, channeliser FFT
        blocks, burst-finder windows) on the grid of a stream started at sample 0: a run started at
        a multiple of this, early enough, gives the same frames as the whole stream (decode --jobs)."""
        grid = [self.channelizer.hop, self.channelizer.decimation]
        grid += [f.window * self.channelizer.decimation for f in self.finders.values()]
        if self.blanker is not None:
            grid.append(self.blanker.block)
        return math.lcm(*grid)

    def process(self, chunk: IQChunk) -> Iterator[RxFrame]:
        if chunk.time_ns is not None:
            # the earliest arrival relative to the sample clock is the least delayed one
            t0 = chunk.time_ns - int(round(chunk.end * 1e9 / self.info.sample_rate_hz))
            if self._clock0_ns is None or t0 < self._clock0_ns:
                self._clock0_ns = t0
        if self.batch_samples <= 0:
            yield from self._process(chunk.start, chunk.samples)
            return
        if self._held and (chunk.start != self._held_end or self._pending_ppm is not None):
            yield from self._release()  # a gap, an overlap or a new correction: what came before goes first
        if self._segment is not None and chunk.start < self.samples_in:
            yield from self._process(chunk.start, chunk.samples)  # the overlap error, at once
            return
        if not self._held:
            self._held_start = chunk.start
        self._held.append(chunk.samples)
        self._held_end = chunk.end
        if self._held_end - self._held_start >= self.batch_samples:
            yield from self._release()

    def _release(self) -> Iterator[RxFrame]:
        """The chunks held back for a batch, as one run."""
        if self._held:
            held, self._held = self._held, []
            x = held[0] if len(held) == 1 else np.concatenate(held)
            yield from self._process(self._held_start, x)

    def _process(self, start: int, x: np.ndarray) -> Iterator[RxFrame]:
        """Samples ``x`` from absolute index ``start`` down the chain."""
        end = start + len(x)
        if self._segment is None:
            x = self._begin_segment(start, x)
        elif self._pending_ppm is not None and start >= self.samples_in:
            yield from self._end_segment()
            self.ppm, self._pending_ppm = self._pending_ppm, None
            self.channelizer = self._channelizer()
            if self.calibrator is not None:
                self.calibrator.reapply(self.ppm)
            if start != self.samples_in:
                self.samples_lost += start - self.samples_in
                self.stats["gaps"] += 1
            x = self._begin_segment(start, x)
        elif start != self.samples_in:
            if start < self.samples_in:
                raise ValueError(f"{self.info.source}: chunk at sample {start} overlaps the previous one "
                                 f"(which ended at {self.samples_in}); sample indices must not go back")
            self.samples_lost += start - self.samples_in
            self.stats["gaps"] += 1
            yield from self._end_segment()
            x = self._begin_segment(start, x)
        self.samples_in = end
        if self.blanker is not None:
            x = self.blanker.process(x)
        yield from self._channels(self.channelizer.process(x))

    def flush(self) -> Iterator[RxFrame]:
        """End of stream: the bursts still open (and the chunks held for a batch) come out."""
        yield from self._release()
        if self._segment is not None:
            yield from self._end_segment()

    def _begin_segment(self, start: int, x: np.ndarray) -> np.ndarray:
        """Restart every block at absolute index ``start``. The segment begins on the decimation grid
        (zeros fill in before ``start``), so channel sample k is input sample segment + k * D as in
        an unbroken stream, and the channeliser's mixing phase is that of the absolute index."""
        dec = self.channelizer.decimation
        lead = start % dec
        self._segment = start - lead
        if self.blanker is not None:
            self.blanker.reset()
        self.channelizer.reset(self._segment)
        for finder in self.finders.values():
            finder.reset()
        if lead:
            x = np.concatenate((np.zeros(lead, dtype=np.complex64), np.asarray(x, dtype=np.complex64)))
        return x

    def _end_segment(self) -> Iterator[RxFrame]:
        rest = self.blanker.flush() if self.blanker is not None else np.zeros(0, np.complex64)
        pad = np.zeros(self.channelizer.n_fft, dtype=np.complex64)
        yield from self._channels(self.channelizer.process(np.concatenate((rest, pad))))
        for name, finder in self.finders.items():
            for burst in finder.flush():
                yield from self._burst(name, burst)

    def _channels(self, outputs: dict[str, np.ndarray]) -> Iterator[RxFrame]:
        # Bursts of all channels, in the order they closed (then channel order): every channel sees
        # the same span of time per call, so this order does not depend on the input chunking.
        bursts = [(b.start + len(b.samples), i, name, b) for i, (name, y) in enumerate(outputs.items())
                  for b in self.finders[name].process(y)]
        for _, _, name, burst in sorted(bursts, key=lambda z: z[:2]):
            yield from self._burst(name, burst)

    def _burst(self, name: str, burst) -> Iterator[RxFrame]:
        self.stats["bursts"] += 1
        freq, _ = self.plan[name]
        ch = next(c for c in self.channelizer.channels if c.name == name)
        bin_error = ch.offset_hz - (freq - self.tuner_center_hz)
        for r in self.demods[name].demodulate(burst.samples):
            frame = self._frame(r, burst, freq, bin_error)
            self.stats[f"frames {r.mode}" if r.crc_ok else f"rejected {r.reason}"] += 1
            if r.crc_ok and self.calibrator is not None:
                self._calibrate(frame, r, burst, bin_error)
            yield frame

    def _calibrate(self, frame: RxFrame, r: FrameResult, burst, bin_error: float) -> None:
        if not self.calibrator.wants(frame.telegram, frame.t_s):
            return
        fit = carrier_fit(burst.samples, self.channelizer.out_rate, mode=r.mode, canonical=r.telegram,
                          frame_format=r.frame_format, sync_start=r.sync_start, chip_rate_hz=r.chip_rate_hz)
        if fit is not None:
            self.calibrator.add(frame.telegram, frame.t_s, fit[0] + bin_error, sample=frame.sample)

    def _input_index(self, burst, position: float) -> int:
        """Absolute input sample index of a (fractional) position inside a burst."""
        dec = self.channelizer.decimation
        return int(round(self._segment + (burst.start + position) * dec - self.channelizer.delay))

    def _frame(self, r: FrameResult, burst, freq: float, bin_error: float) -> RxFrame:
        sync_at = r.sync_start  # the demodulator's sync word start, in channel samples
        sample = max(self._input_index(burst, sync_at), self._segment)
        end_sample = max(self._input_index(burst, r.end_position), sample)
        i0 = int(r.sync_position)
        i1 = max(i0 + 1, int(r.end_position))
        seg = burst.samples[i0:i1]
        p = float(np.mean(seg.real ** 2 + seg.imag ** 2)) if len(seg) else burst.power
        noise = max(burst.noise, 1e-20)
        return RxFrame(mode=r.mode, frame_format=r.frame_format, telegram=r.telegram, crc_ok=r.crc_ok,
                       reason=r.reason, sample=sample, end_sample=end_sample,
                       sample_rate_hz=self.info.sample_rate_hz, time_ns=self.time_ns(sample),
                       rssi_dbfs=10 * np.log10(max(p, 1e-20)), noise_dbfs=10 * np.log10(noise),
                       snr_db=10 * np.log10(max(p - noise, 1e-20) / noise), freq_offset_hz=r.freq_offset_hz + bin_error,
                       chip_rate_hz=r.chip_rate_hz, channel_hz=freq, violations=r.violations,
                       detail=BurstSnippet(samples=burst.samples, sample_rate_hz=self.channelizer.out_rate, result=r,
                                           bin_error_hz=bin_error) if self.keep_detail else None)


def receive(chunks: Iterable[IQChunk], info: StreamInfo, modes: Iterable[str] = DEFAULT_MODES,
            **kwargs) -> Iterator[RxFrame]:
    rx = Receiver(info, modes, **kwargs)
    for chunk in chunks:
        yield from rx.process(chunk)
    yield from rx.flush()
