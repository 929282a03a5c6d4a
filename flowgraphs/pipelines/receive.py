"""Receive flowgraph: IQ chunks -> activity gate (the stretches around something on air) -> impulse
blanker -> channeliser -> burst finder per channel -> demodulator -> link frames (RxFrame), counted
per mode and per rejection reason."""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace

import numpy as np

from dsp.channelizer import Channelizer, RateClass, shared_decimation
from dsp.demod import Demodulator, FrameResult
from dsp.detect import BurstFinder
from dsp.frontend import ImpulseBlanker
from dsp.gate import ActivityGate, Close
from dsp.measure import carrier_fit
from dsp.modes import MODES, ModeSpec, default_rx_modes, receivable_modes, rx_mode_for
from dsp.modes import mode as mode_named
from sdr.types import IQChunk, RawIQ, StreamInfo, as_complex

from .calibration import PpmCalibrator, PpmEstimate

DEFAULT_MODES = default_rx_modes()  # every receivable meter -> other mode (dsp.modes)
WIDE_RATE_HZ = 200e3  # channels cut at this rate or more keep the burst finder's defaults
NARROW_MAX_BURST_S = 1.5  # longest burst on a narrow channel (N / R2 / F2 frames last up to ~1 s)
NARROW_FLOOR_S = 0.5  # noise-floor memory on a narrow channel
DUPLICATE_CHIPS = 4  # the same bytes this close to a frame already out are that frame (Receiver._seen_before)
UNKNOWN_MIN_SNR_DB = 6.0  # a burst without a frame is reported (on_unknown) from this far over the floor


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


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class UnknownBurst:
    """A burst that carried energy but gave no valid frame (``Receiver.on_unknown``): its channel-rate
    IQ, where it was, what the channel is planned for and why nothing came out."""

    channel: str
    channel_hz: float  # the channel's nominal frequency (the snippet's centre)
    modes: tuple[str, ...]  # the modes planned on the channel: the best guess of what it was
    reason: str  # "no sync word" or the rejection reason of the best attempt (crc, truncated, ...)
    sample: int  # absolute input index of the burst's first sample
    time_ns: int | None
    samples: np.ndarray  # complex64 at the channel rate, centred on the channel
    sample_rate_hz: float  # the channel rate
    snr_db: float  # the burst's power over the noise floor


def parse_channel(text: str) -> tuple[float, str]:
    """'434.475M:T1' (also k / G suffixes or plain Hz) -> (434.475e6, 'T1'): a mode on a channel of
    the user's choosing (``--channel``)."""
    freq, sep, name = text.partition(":")
    if not sep or not freq.strip() or not name.strip():
        raise ValueError(f"--channel {text!r}: give FREQUENCY:MODE, e.g. 434.475M:T1")
    freq = freq.strip()
    scale = {"k": 1e3, "m": 1e6, "g": 1e9}.get(freq[-1].lower(), 1.0)
    try:
        hz = float(freq[:-1] if scale != 1.0 else freq) * scale
    except ValueError:
        raise ValueError(f"--channel {text!r}: {freq!r} is no frequency (e.g. 434.475M or 434475000)") from None
    if hz <= 0:
        raise ValueError(f"--channel {text!r}: the frequency must be positive")
    return hz, mode_named(name.strip()).name


def channel_entry(freq_hz: float, mode_name: str) -> str:
    """The ``modes`` entry for a mode on a channel of the user's choosing (``parse_channel`` reads it)."""
    return f"{freq_hz / 1e6:.6f}".rstrip("0").rstrip(".") + "M:" + mode_name


@dataclass(frozen=True, slots=True, kw_only=True)
class PlannedChannel:
    """One receive channel: its frequency, the modes demodulated on it (specs, their channel set to
    this one), and the channeliser class (channel rate aimed at, passband half-width) it is cut by."""

    name: str
    freq_hz: float
    modes: tuple[ModeSpec, ...]
    rx_class: tuple[float, float]
    explicit: bool = False  # from a FREQUENCY:MODE entry (``--channel``)


def plan_receive(info: StreamInfo, modes: Iterable[str]) -> dict[str, PlannedChannel]:
    """The receive channels the capture band contains. Entries of ``modes`` are mode names (every
    channel of the receivable mode that lies inside the band: R2 has ten) or FREQUENCY:MODE (that
    mode on that channel; outside the band it is an error). A channel lies inside the band when its
    receive passband (``ModeSpec.rx_bandwidth_hz``) does. A mode heard as another one (S2, T2 as S1;
    N2x as N1x) is known but plans nothing by itself."""
    wanted: set[str] = set()
    explicit: list[tuple[float, ModeSpec]] = []
    unknown = []
    for entry in modes:
        if ":" in entry:
            freq, name = parse_channel(entry)
            explicit.append((freq, rx_mode_for(MODES[name])))
            continue
        try:
            wanted.add(mode_named(entry).name)
        except ValueError:
            unknown.append(entry.upper())
    known = receivable_modes()
    if unknown:
        raise ValueError(f"unknown mode(s) {', '.join(sorted(unknown))}; "
                         f"known: {', '.join(m.name for m in known)}")

    def inside(freq: float, spec: ModeSpec) -> bool:
        return abs(freq - info.center_freq_hz) <= info.sample_rate_hz / 2 - spec.rx_bandwidth_hz / 2

    lo = (info.center_freq_hz - info.sample_rate_hz / 2) / 1e6
    hi = (info.center_freq_hz + info.sample_rate_hz / 2) / 1e6
    found: list[tuple[float, ModeSpec, bool]] = [(f, m, False) for m in known if m.name in wanted
                                                 for f in m.all_channels_hz if inside(f, m)]
    for freq, spec in explicit:
        if not inside(freq, spec):
            raise ValueError(f"channel {channel_name(freq)} MHz ({spec.name}) lies outside the captured band "
                             f"{lo:.3f}-{hi:.3f} MHz (its {spec.rx_bandwidth_hz / 1e3:g} kHz passband included)")
        found.append((freq, spec, True))
    out: dict[str, PlannedChannel] = {}
    for freq, spec, own in found:
        if spec.channel_hz != freq or spec.channels_hz:
            spec = replace(spec, channel_hz=freq, channels_hz=())
        name = channel_name(freq)
        while name in out and out[name].rx_class != spec.rx_class:
            name += "'"  # the same frequency in another channel class (a wide and a narrow mode)
        ch = out.get(name)
        if ch is None:
            out[name] = PlannedChannel(name=name, freq_hz=freq, modes=(spec,), rx_class=spec.rx_class, explicit=own)
        elif all(m.phy_key != spec.phy_key for m in ch.modes):
            out[name] = replace(ch, modes=ch.modes + (spec,), explicit=ch.explicit or own)
    return out


def plan_channels(info: StreamInfo, modes: Iterable[str]) -> dict[str, tuple[float, tuple[str, ...]]]:
    """The channels (with their wanted modes) that the capture band contains: the receivable modes
    (dsp.modes) grouped by channel frequency (see :func:`plan_receive`)."""
    return {name: (ch.freq_hz, tuple(m.name for m in ch.modes)) for name, ch in plan_receive(info, modes).items()}


def channel_groups(plan: dict[str, PlannedChannel]) -> dict[tuple[float, float], tuple[str, ...]]:
    """Channels per channeliser class, in plan order: one channeliser (one FFT) serves each group."""
    groups: dict[tuple[float, float], tuple[str, ...]] = {}
    for name, ch in plan.items():
        groups[ch.rx_class] = groups.get(ch.rx_class, ()) + (name,)
    return groups


# a region of the activity gate (dsp.gate) begins with this much noise before the burst that opened
# it (a wide channel's, a narrow channel's), on which the burst finders learn their floor before
# they may open a burst; all but the last REGION_MARGIN_S of it
REGION_QUIET_S = 0.025
NARROW_QUIET_S = 0.25
REGION_MARGIN_S = 0.005


class Receiver:
    """IQ chunks in, link frames out, true to time.

    Sample indices are absolute: a chunk whose ``start`` jumps past the previous chunk's end (samples
    dropped by the source, or a reconnect) ends the current *segment* — its bursts are flushed as at
    the end of a stream — and a new segment starts at the chunk's own index, its first channel sample
    on the absolute decimation grid. So a frame's ``sample`` is where it was on air whatever was lost
    before it, and the output depends on the input's absolute indices, never on its chunking.

    An activity gate (dsp.gate) chooses the stretches of the stream that go down the chain; each
    such region restarts the blanker, channelisers and burst finders like a segment (without being
    counted as a gap), and a frame's indices stay absolute (``gate=False``: every sample).

    Wall-clock time comes from the chunks that carry one (``IQChunk.time_ns``, the arrival of their
    last sample): the earliest ``time_ns - end / rate`` (the least delayed arrival) anchors sample 0,
    and every frame's ``time_ns`` is that anchor plus its index at the nominal rate.
    """

    def __init__(self, info: StreamInfo, modes: Iterable[str] = DEFAULT_MODES, *, blank_impulses: bool = True,
                 keep_detail: bool = False, ppm: float = 0.0, device_ppm: float = 0.0, calibrate: bool = False,
                 calibrator: PpmCalibrator | None = None, batch_s: float = 0.0, gate: bool = True):
        self.info = info
        # chunks are gathered into runs of at least this many samples before they go down the chain:
        # every call costs the same Python overhead whatever its length (a live source hands over
        # ~20 ms chunks, which would double the CPU load); frames come out up to that much later
        self.batch_samples = int(batch_s * info.sample_rate_hz)
        self._held: list[np.ndarray] = []
        self._held_start = self._held_end = 0
        self.keep_detail = keep_detail
        self.channel_plan = plan_receive(info, modes)
        self.plan = {name: (ch.freq_hz, tuple(m.name for m in ch.modes)) for name, ch in self.channel_plan.items()}
        if not self.plan:
            lo = (info.center_freq_hz - info.sample_rate_hz / 2) / 1e6
            hi = (info.center_freq_hz + info.sample_rate_hz / 2) / 1e6
            raise ValueError(f"no wanted channel inside the captured band {lo:.3f}-{hi:.3f} MHz; centre the "
                             "capture at 868.625 MHz (S, T, C, R2 at once) or 868.95 MHz (T1/C1) with >= 1.6 Msps, "
                             "at 169.4375 MHz (N a-f) with >= 240 ksps, or give --channel FREQUENCY:MODE")
        self.ppm = float(ppm)  # the tuner error corrected (rtl_sdr -p convention) ...
        self.device_ppm = float(device_ppm)  # ... of which the device corrects this much itself
        self._pending_ppm: float | None = None
        self.groups = channel_groups(self.channel_plan)  # channeliser class -> its channel names
        self.channelizers = self._channelizers()
        if calibrator is None and calibrate:
            calibrator = PpmCalibrator(info.center_freq_hz, applied_ppm=self.ppm)
        self.calibrator = calibrator  # learns the tuner error from the frames (calibrate=True)
        self.blanker = ImpulseBlanker() if blank_impulses else None
        self.finders = {name: self._finder(name, cz) for cz, names in self.channelizers for name in names}
        self.gate_wanted = gate
        self.gate = self._gate()
        self._in_region = False
        self.demods = {name: Demodulator(self._cz(name).out_rate, list(ch.modes))
                       for name, ch in self.channel_plan.items()}
        self.stats: Counter = Counter()
        # called with an UnknownBurst for every burst with energy (UNKNOWN_MIN_SNR_DB over the floor)
        # that gave no valid frame (rx / decode --save-unknown)
        self.on_unknown = None
        self.samples_in = 0  # absolute index just after the last input sample
        self.samples_lost = 0  # samples missing between chunks (gaps)
        self.samples_channelised = 0  # samples the activity gate let through (all of them without one)
        self._segment: int | None = None  # absolute input index of the current segment's channel sample 0
        self._clock0_ns: int | None = None  # UTC ns of absolute sample 0 (the sample clock's anchor)

    @property
    def tuner_center_hz(self) -> float:
        """Where the tuner really is: the nominal centre moved by the tuner error in force (``ppm``,
        the rtl_sdr -p convention: + = the tuner is high) less what the device corrects itself."""
        return self.info.center_freq_hz * (1 + (self.ppm - self.device_ppm) * 1e-6)

    def _channelizers(self) -> list[tuple[Channelizer | RateClass, tuple[str, ...]]]:
        """One channeliser per channel class (wide S/T/C, narrow N, ...), each cutting its channels
        at the class's rate and passband (dsp.modes: rx_rate_hz, rx_bandwidth_hz). A narrow class
        beside a wide one (R2 in an 868 MHz capture) is cut from the wide channeliser's spectra when
        its decimation divides the FFT size: listed as that channeliser's RateClass, not a second
        full-rate FFT."""
        fs = self.info.sample_rate_hz
        groups = list(self.groups.items())

        def target(rate: float) -> float:
            return rate if rate >= WIDE_RATE_HZ else fs / _fft_friendly(fs / rate)

        (rate0, _), _ = groups[0]
        n_fft = Channelizer.block_size(fs, target(rate0))
        shared = [g for g in groups[1:] if rate0 >= WIDE_RATE_HZ > g[0][0] and shared_decimation(n_fft, fs, g[0][0])]
        own = [g for g in groups[1:] if g not in shared]

        def chans(names: tuple[str, ...]) -> dict[str, float]:
            return {name: self.channel_plan[name].freq_hz for name in names}

        (rate0, passband0), names0 = groups[0]
        first = Channelizer(fs, self.tuner_center_hz, chans(names0), out_rate_target=target(rate0),
                            passband_hz=passband0,
                            shared=tuple((chans(names), rate, passband) for (rate, passband), names in shared))
        out: list[tuple[Channelizer | RateClass, tuple[str, ...]]] = [(first, names0)]
        out += [(cls, names) for cls, (_, names) in zip(first.classes[1:], shared, strict=True)]
        out += [(Channelizer(fs, self.tuner_center_hz, chans(names), out_rate_target=target(rate),
                             passband_hz=passband), names) for (rate, passband), names in own]
        return out

    @property
    def channelizer(self) -> Channelizer:
        """The first channeliser (the only one when every planned mode is of one class)."""
        return self.channelizers[0][0]

    def _gate(self) -> ActivityGate | None:
        """The activity gate over every planned channel (dsp.gate), when asked for and when every
        channel comes from the first channeliser's spectra (another full-rate channeliser has a
        block grid of its own, which regions would break)."""
        if not self.gate_wanted or any(isinstance(cz, Channelizer) for cz, _ in self.channelizers[1:]):
            return None
        chans = {}
        for cz, names in self.channelizers:
            half = max(ch.rx_class[1] for name in names for ch in self.channel_plan[name].modes)
            quiet = REGION_QUIET_S if cz.out_rate >= WIDE_RATE_HZ else NARROW_QUIET_S
            chans.update((c.name, (c.offset_hz, half, quiet)) for c in cz.channels)
        return ActivityGate(self.info.sample_rate_hz, chans, grid=self.channelizers[0][0].grid_decimation)

    def _cz(self, name: str) -> Channelizer | RateClass:
        """The channeliser (or the rate class of one) that cuts channel ``name``."""
        return next(cz for cz, names in self.channelizers if name in names)

    @staticmethod
    def _finder(name: str, cz: Channelizer) -> BurstFinder:
        """A burst finder for one channel. Narrow channels (a few ksps) keep the wide channels'
        window of 64 samples (the same power statistics) but bound a burst and the noise-floor
        memory in time rather than in windows: NARROW_MAX_BURST_S holds the longest N / R2 / F2
        frame (290 bytes at 2.4 kbit/s, about 1 s), NARROW_FLOOR_S the floor's memory."""
        if cz.out_rate >= WIDE_RATE_HZ:
            return BurstFinder(name)
        per_s = cz.out_rate / 64
        return BurstFinder(name, window=64, max_windows=math.ceil(NARROW_MAX_BURST_S * per_s),
                           floor_windows=math.ceil(NARROW_FLOOR_S * per_s))

    @property
    def warmup_s(self) -> float:
        """How far before its first owned sample a run must start to give the frames of the whole
        stream (decode --jobs): the longest burst, the noise floor's memory, the narrow channels'
        block grid, the channeliser's DC span and the activity gate's memory."""
        need = 0.0
        for cz, names in self.channelizers:
            for n in names:
                f = self.finders[n]
                need = max(need, (f.max_windows + f.floor_windows + f.floor_span) * f.window / cz.out_rate)
        grid = max((self._grid(cz, names) for cz, names in self.channelizers[1:] if isinstance(cz, Channelizer)),
                   default=0)
        gate = self.gate.memory_s if self.gate is not None else 0.0  # its floor and the region around
        return need + grid / self.info.sample_rate_hz + gate + 0.05

    def _grid(self, cz: Channelizer | RateClass, names: tuple[str, ...]) -> int:
        """Input samples between starts that put a channeliser's blocks and its burst finders'
        windows where they are in a stream started at sample 0."""
        return math.lcm(cz.hop, cz.decimation, *(self.finders[n].window * cz.decimation for n in names))

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
        return list(dict.fromkeys(channel_entry(ch.freq_hz, m.name) if ch.explicit else m.name
                                  for ch in self.channel_plan.values() for m in ch.modes))

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
        # the first channeliser starts with the segment; the others wait for their own grid (_begin_segment)
        first = self.channelizers[0][0]
        grid = [self._grid(cz, names) for cz, names in self.channelizers
                if cz is first or (isinstance(cz, RateClass) and cz.owner is first)]
        if self.blanker is not None:
            grid.append(self.blanker.block)
        return math.lcm(*grid)

    def process(self, chunk: IQChunk) -> Iterator[RxFrame]:
        """The frames that ended by this chunk. The chunk's samples are kept, not copied, while
        they may still be needed (a batch, the activity gate's preroll): do not change the array."""
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
        self._held.append(as_complex(chunk.samples))
        self._held_end = chunk.end
        if self._held_end - self._held_start >= self.batch_samples:
            yield from self._release()

    def _apply_pending_ppm(self) -> None:
        """Put a correction asked for with set_ppm in force (between segments)."""
        if self._pending_ppm is None:
            return
        self.ppm, self._pending_ppm = self._pending_ppm, None
        self.channelizers = self._channelizers()
        self.gate = self._gate()
        if self.calibrator is not None:
            self.calibrator.reapply(self.ppm)

    def _release(self) -> Iterator[RxFrame]:
        """The chunks held back for a batch, as one run."""
        if self._held:
            held, self._held = self._held, []
            x = held[0] if len(held) == 1 else np.concatenate(held)
            yield from self._process(self._held_start, x)

    def _process(self, start: int, x: np.ndarray | RawIQ) -> Iterator[RxFrame]:
        """Samples ``x`` from absolute index ``start`` down the chain (a RawIQ is converted where
        it is read: by the activity gate, the probes' samples and the regions')."""
        end = start + len(x)
        if self._segment is None:
            self._apply_pending_ppm()
            x = self._begin_segment(start, x)
        elif start != self.samples_in or self._pending_ppm is not None:
            # a gap, or a new tuner correction: the segment ends here and a new one starts at ``start``
            if start < self.samples_in:
                raise ValueError(f"{self.info.source}: chunk at sample {start} overlaps the previous one "
                                 f"(which ended at {self.samples_in}); sample indices must not go back")
            if start > self.samples_in:
                self.samples_lost += start - self.samples_in
                self.stats["gaps"] += 1
            yield from self._end_segment()
            self._apply_pending_ppm()
            x = self._begin_segment(start, x)
        self.samples_in = end
        if self.gate is not None:
            yield from self._gated(self.gate.feed([x]))
            return
        self.samples_channelised += len(x)
        yield from self._channels(self._split(self._blanked(as_complex(x))))

    def _blanked(self, x: np.ndarray) -> list[np.ndarray]:
        """``x`` through the impulse blanker, as consecutive pieces (no copy of ``x``)."""
        return self.blanker.process_parts(x) if self.blanker is not None else [x]

    def _drained(self) -> list[tuple[Channelizer, dict[str, np.ndarray]]]:
        """The channelisers' last outputs: the blanker's held samples, then zeros that push them out."""
        rest = self.blanker.flush() if self.blanker is not None else np.zeros(0, np.complex64)
        pad = np.zeros(max(cz.n_fft for cz, _ in self.channelizers), dtype=np.complex64)
        return self._split([rest, pad])

    def _gated(self, events: list) -> Iterator[RxFrame]:
        """The activity gate's regions down the chain: each region restarts the impulse blanker,
        channelisers and burst finders at its first sample (as a segment does, without counting a
        gap) and ends as a segment does, its open bursts flushed. The gate itself sees through
        impulses (dsp.gate), so the blanker works on the regions only."""
        for ev in events:
            if isinstance(ev, Close):
                yield from self._close_region(ev.end)
                continue
            if not self._in_region:
                self._in_region = True
                if ev.start != self._x_at or self._region_count:
                    # the region's quiet start is noise before the burst that opened it: the
                    # channelisers take the tuner's DC level from it and the burst finders learn
                    # their floor on it before they may open a burst
                    quiet_s = ev.quiet / self.info.sample_rate_hz - REGION_MARGIN_S
                    self._restart(ev.start, quiet=max(int(quiet_s * self.info.sample_rate_hz), 0))
                    for name, finder in self.finders.items():
                        finder.mute(max(int(quiet_s * self._cz(name).out_rate / finder.window), 0))
                if self.blanker is not None:
                    self.blanker.reset()
                self._region_count += 1
            self.samples_channelised += len(ev.samples)
            yield from self._channels(self._split(self._blanked(ev.samples)))

    def _close_region(self, end: int) -> Iterator[RxFrame]:
        """The region's last channel samples (zeros after its end push them out of the
        channelisers); the burst finders get those of its own samples only, not the filters'
        fading into the zeros."""
        self._in_region = False
        outputs = []
        for cz, out in self._drained():
            for name, y in out.items():
                keep = (end - self._origin[name]) // self._cz(name).decimation - self._fed[name]
                out[name] = y[:max(keep, 0)]
            outputs.append((cz, out))
        yield from self._channels(outputs, final=True)

    def flush(self) -> Iterator[RxFrame]:
        """End of stream: the bursts still open (and the chunks held for a batch) come out."""
        yield from self._release()
        if self._segment is not None:
            yield from self._end_segment()

    def _begin_segment(self, start: int, x: np.ndarray | RawIQ) -> np.ndarray | RawIQ:
        """Restart every block at absolute index ``start``. The segment begins on the decimation grid
        (zeros fill in before ``start``), so channel sample k is input sample segment + k * D as in
        an unbroken stream, and the channeliser's mixing phase is that of the absolute index."""
        lead = start % self.channelizers[0][0].grid_decimation
        if self.blanker is not None:
            self.blanker.reset()
        self._restart(start - lead)
        if self.gate is not None:
            self.gate.reset(self._segment)
        self._in_region = False
        self._region_count = 0
        if lead:
            x = np.concatenate((np.zeros(lead, dtype=np.complex64), np.asarray(as_complex(x), dtype=np.complex64)))
        return x

    def _restart(self, start: int, *, quiet: int = 0) -> None:
        """Channelisers and burst finders start afresh at absolute index ``start`` (on the
        decimation grid); the first ``quiet`` samples are known to hold noise only."""
        self._segment = start
        # the first channeliser starts with the segment; another one (a narrow class) at the next
        # point of its own block grid on the absolute clock, so its blocks are those of a stream
        # started at 0 whatever the segment's start (the samples before it are not heard there)
        self._origin: dict[str, int] = {}
        self._owner_names: dict[int, str] = {}  # a channeliser -> one of its own channels
        self._x_at = self._segment  # absolute index of the next blanked sample
        for i, (cz, names) in enumerate(self.channelizers):
            if isinstance(cz, RateClass):  # cut from its owner's spectra, on its owner's blocks
                self._origin.update(dict.fromkeys(names, self._origin[self._owner_names[id(cz.owner)]]))
                continue
            g = self._grid(cz, names)
            begin = self._segment if i == 0 else -(-self._segment // g) * g
            cz.reset(begin, dc_quiet_blocks=max((quiet - cz.overlap) // cz.hop, 0))
            self._origin.update(dict.fromkeys(names, begin))
            self._owner_names[id(cz)] = names[0]
        for finder in self.finders.values():
            finder.reset()
        self._fed = dict.fromkeys(self.finders, 0)  # channel samples given to each burst finder
        self._waiting: list = []  # closed bursts waiting until no channel can close an earlier one
        self._carry: dict[str, tuple[int, np.ndarray]] = {}  # see _keep_carry
        self._recent: dict[str, deque] = {}  # see _seen_before

    def _end_segment(self) -> Iterator[RxFrame]:
        if self.gate is not None:
            yield from self._gated(self.gate.flush())
            return
        yield from self._channels(self._drained(), final=True)

    def _split(self, parts: list[np.ndarray]) -> list[tuple[Channelizer, dict[str, np.ndarray]]]:
        """Blanked input (consecutive pieces, from absolute index ``_x_at`` on) through every
        channeliser, each from its own start."""
        at = self._x_at
        self._x_at += sum(len(p) for p in parts)
        out = []
        for cz, names in self.channelizers:
            if isinstance(cz, RateClass):
                continue  # its channels come out of its owner's process
            skip = self._origin[names[0]] - at
            out.append((cz, cz.process(_drop(parts, skip) if skip > 0 else parts)))
        return out

    def _channels(self, outputs: list[tuple[Channelizer, dict[str, np.ndarray]]], *,
                  final: bool = False) -> Iterator[RxFrame]:
        # Bursts of all channels in the order they end on the input clock (then channel order). The
        # channelisers of different classes are at different points of the input after a call, so a
        # closed burst waits until every burst finder has passed its end (a burst still to close on
        # another channel ends after the point that finder has reached): the order does not depend on
        # the input chunking.
        order = {name: i for i, name in enumerate(self.finders)}
        frontier = None
        for _, out in outputs:
            names = list(out)
            closed = BurstFinder.read_many([self.finders[name] for name in names], [out[name] for name in names])
            for name, bursts in zip(names, closed, strict=True):
                y = out[name]
                finder = self.finders[name]
                decimation = self._cz(name).decimation
                self._fed[name] += len(y)
                for b in bursts:
                    self._waiting.append((self._origin[name] + (b.start + len(b.samples)) * decimation,
                                       order[name], name, b))
                if final:
                    for b in finder.flush():
                        self._waiting.append((self._origin[name] + (b.start + len(b.samples)) * decimation,
                                           order[name], name, b))
                reached = self._origin[name] + self._fed[name] // finder.window * finder.window * decimation
                frontier = reached if frontier is None else min(frontier, reached)
        self._waiting.sort(key=lambda z: z[:2])
        n = len(self._waiting) if final else sum(1 for z in self._waiting if z[0] <= frontier)
        ready, self._waiting = self._waiting[:n], self._waiting[n:]
        for _, _, name, burst in ready:
            yield from self._burst(name, burst)

    def _burst(self, name: str, burst) -> Iterator[RxFrame]:
        self.stats["bursts"] += 1
        freq, _ = self.plan[name]
        ch = next(c for c in self._cz(name).channels if c.name == name)
        bin_error = ch.offset_hz - (freq - self.tuner_center_hz)
        finder = self.finders[name]
        cut = len(burst.samples) >= finder.max_windows * finder.window  # ended by the length limit
        burst = self._join_carry(name, burst)
        raw = burst
        if self._cz(name).out_rate < WIDE_RATE_HZ:
            burst, shift = _centre_burst(burst, self._cz(name).out_rate)
            bin_error += shift  # the burst is now centred as if the channel were this much higher
        results = self.demods[name].demodulate(burst.samples)
        if cut:
            self._keep_carry(name, raw, results)
        for r in results:
            frame = self._frame(r, burst, freq, bin_error, self._cz(name))
            if r.crc_ok and self._seen_before(name, frame):
                self.stats["duplicates"] += 1
                continue
            self.stats[f"frames {r.mode}" if r.crc_ok else f"rejected {r.reason}"] += 1
            if r.crc_ok and self.calibrator is not None:
                self._calibrate(frame, r, burst, bin_error, self._cz(name).out_rate)
            yield frame
        if self.on_unknown is not None and not any(r.crc_ok for r in results):
            self._unknown(name, burst, results)

    def _keep_carry(self, name: str, burst, results: list[FrameResult]) -> None:
        """A burst cut by the burst finder's length limit (frames back to back with gaps shorter than
        the finder's hang time merge into one long burst) may end inside a frame: the demodulator
        calls it truncated. Its samples from that frame's preamble on are kept and put in front of
        the channel's next burst (which starts where this one was cut), so the frame is decoded
        whole there."""
        lost = [r.sync_position for r in results if r.reason == "truncated"]
        if not lost:
            return
        keep = max(0, int(min(lost)) - self.finders[name].window)
        self._carry[name] = (burst.start + keep, burst.samples[keep:])  # frames decoded again: _seen_before

    def _join_carry(self, name: str, burst):
        """The burst with the samples kept from the cut burst before it in front."""
        kept = self._carry.pop(name, None)
        if kept is None:
            return burst
        start, samples = kept
        if not start < burst.start <= start + len(samples):
            return burst  # not the continuation of the cut burst
        return replace(burst, start=start, samples=np.concatenate((samples[:burst.start - start], burst.samples)))

    def _seen_before(self, name: str, frame: RxFrame) -> bool:
        """The same frame already came out of this channel: the same bytes with the sync word within
        DUPLICATE_CHIPS (bursts overlap: a kept tail, the burst finder's margin). No two frames start
        that close, so this drops nothing that was sent twice."""
        recent = self._recent.setdefault(name, deque(maxlen=32))
        near = DUPLICATE_CHIPS * self.info.sample_rate_hz / frame.chip_rate_hz
        if any(t == frame.telegram and abs(s - frame.sample) <= near for t, s in recent):
            return True
        recent.append((frame.telegram, frame.sample))
        return False

    def _unknown(self, name: str, burst, results: list[FrameResult]) -> None:
        snr = 10 * np.log10(max(burst.power - burst.noise, 1e-20) / max(burst.noise, 1e-20))
        if snr < UNKNOWN_MIN_SNR_DB:
            return
        cz = self._cz(name)
        start = int(round(self._origin[name] + burst.start * cz.decimation - cz.delay))
        ch = self.channel_plan[name]
        best = max(results, key=lambda r: r.snr_db, default=None)
        self.on_unknown(UnknownBurst(channel=name, channel_hz=ch.freq_hz, modes=tuple(m.name for m in ch.modes),
                                     reason="no sync word" if best is None else best.reason, sample=start,
                                     time_ns=self.time_ns(start), samples=burst.samples, sample_rate_hz=cz.out_rate,
                                     snr_db=float(snr)))

    def _calibrate(self, frame: RxFrame, r: FrameResult, burst, bin_error: float, out_rate: float) -> None:
        if not self.calibrator.wants(frame.telegram, frame.t_s):
            return
        fit = carrier_fit(burst.samples, out_rate, mode=r.mode, canonical=r.telegram,
                          frame_format=r.frame_format, sync_start=r.sync_start, chip_rate_hz=r.chip_rate_hz)
        if fit is not None:
            self.calibrator.add(frame.telegram, frame.t_s, fit[0] + bin_error, sample=frame.sample)

    def _input_index(self, burst, position: float, cz: Channelizer) -> int:
        """Absolute input sample index of a (fractional) position inside a burst."""
        return int(round(self._origin[burst.channel] + (burst.start + position) * cz.decimation - cz.delay))

    def _frame(self, r: FrameResult, burst, freq: float, bin_error: float, cz: Channelizer) -> RxFrame:
        sync_at = r.sync_start  # the demodulator's sync word start, in channel samples
        sample = max(self._input_index(burst, sync_at, cz), self._segment)
        end_sample = max(self._input_index(burst, r.end_position, cz), sample)
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
                       detail=BurstSnippet(samples=burst.samples, sample_rate_hz=cz.out_rate, result=r,
                                           bin_error_hz=bin_error) if self.keep_detail else None)


def _drop(parts: list[np.ndarray], n: int) -> list[np.ndarray]:
    """Consecutive pieces without their first ``n`` samples."""
    out = []
    for p in parts:
        if n >= len(p):
            n -= len(p)
            continue
        out.append(p[n:])
        n = 0
    return out


def _fft_friendly(ratio: float) -> int:
    """The decimation nearest ``ratio`` (within 20 %) with no prime factor above 5: the channeliser's
    FFT is decimation x 1024 points, and a factor like 11 or 13 makes it several times slower."""
    best = max(1, int(round(ratio)))
    for d in sorted(range(max(1, int(ratio * 0.8)), int(ratio * 1.2) + 2), key=lambda d: (abs(d - ratio), d)):
        k = d
        for p in (2, 3, 5):
            while k % p == 0:
                k //= p
        if k == 1:
            return d
    return best


def _centre_burst(burst, rate: float):
    """A narrow channel's burst turned to its own centre frequency: (burst, shift in Hz).

    On a narrow channel a meter's crystal error is a large part of the deviation (R2: up to 9 kHz
    against +-6 kHz), and the demodulator's sync search runs on the FM discriminator, whose clicks
    at low SNR grow with the distance of the tones from the channel centre. The mean frequency of
    the burst (the angle of its lag-one autocorrelation: the two tones of a balanced preamble and
    line code weigh alike) is taken out first; the demodulator then measures the rest."""
    x = burst.samples
    if len(x) < 16:
        return burst, 0.0
    shift = float(np.angle(np.vdot(x[:-1], x[1:])) * rate / (2 * np.pi))
    n = np.arange(len(x))
    turned = (x * np.exp(-2j * np.pi * shift / rate * n)).astype(np.complex64)
    return replace(burst, samples=turned), shift


def receive(chunks: Iterable[IQChunk], info: StreamInfo, modes: Iterable[str] = DEFAULT_MODES,
            **kwargs) -> Iterator[RxFrame]:
    rx = Receiver(info, modes, **kwargs)
    for chunk in chunks:
        yield from rx.process(chunk)
    yield from rx.flush()
