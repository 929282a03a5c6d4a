"""Receive flowgraph: IQ chunks -> impulse blanker -> channeliser -> burst finder per channel ->
demodulator -> link frames (RxFrame), counted per mode and per rejection reason."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from dsp.channelizer import Channelizer
from dsp.demod import Demodulator, FrameResult
from dsp.detect import BurstFinder
from dsp.frontend import ImpulseBlanker
from dsp.modes import MODES, ModeSpec, default_rx_modes, receivable_modes
from sdr.types import IQChunk, StreamInfo

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


@dataclass(frozen=True, slots=True, kw_only=True)
class RxFrame:
    mode: str
    frame_format: str | None
    telegram: bytes  # canonical (L first, no CRCs) when crc_ok
    crc_ok: bool
    reason: str
    sample: int  # absolute input sample index where the sync word starts
    end_sample: int  # absolute input sample index just after the last chip
    t_s: float
    rssi_dbfs: float
    noise_dbfs: float
    snr_db: float
    freq_offset_hz: float  # carrier offset from the nominal channel
    chip_rate_hz: float
    channel_hz: float
    violations: int
    detail: object = None  # (burst samples, FrameResult, channel rate, bin error Hz) with keep_detail


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
    def __init__(self, info: StreamInfo, modes: Iterable[str] = DEFAULT_MODES, *, blank_impulses: bool = True,
                 keep_detail: bool = False):
        self.info = info
        self.keep_detail = keep_detail
        self.plan = plan_channels(info, modes)
        if not self.plan:
            lo = (info.center_freq_hz - info.sample_rate_hz / 2) / 1e6
            hi = (info.center_freq_hz + info.sample_rate_hz / 2) / 1e6
            raise ValueError(f"no wanted channel inside the captured band {lo:.3f}-{hi:.3f} MHz; centre the "
                             "capture at 868.625 MHz (S, T, C at once) or 868.95 MHz (T1/C1) with >= 1.6 Msps")
        self.channelizer = Channelizer(info.sample_rate_hz, info.center_freq_hz,
                                       {name: f for name, (f, _) in self.plan.items()})
        self.blanker = ImpulseBlanker() if blank_impulses else None
        self.finders = {name: BurstFinder(name) for name in self.plan}
        self.demods = {name: Demodulator(self.channelizer.out_rate, list(ms)) for name, (_, ms) in self.plan.items()}
        self.stats: Counter = Counter()
        self.samples_in = 0

    @property
    def modes(self) -> list[str]:
        return [m for _, ms in self.plan.values() for m in ms]

    def process(self, chunk: IQChunk) -> Iterator[RxFrame]:
        self.samples_in = chunk.end
        x = chunk.samples
        if self.blanker is not None:
            x = self.blanker.process(x)
        yield from self._channels(self.channelizer.process(x))

    def flush(self) -> Iterator[RxFrame]:
        if self.blanker is not None:
            rest = self.blanker.flush()
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
        dec = self.channelizer.decimation
        fs = self.info.sample_rate_hz
        for r in self.demods[name].demodulate(burst.samples):
            frame = self._frame(r, burst, freq, ch.offset_hz - (freq - self.info.center_freq_hz), dec, fs)
            self.stats[f"frames {r.mode}" if r.crc_ok else f"rejected {r.reason}"] += 1
            yield frame

    def _frame(self, r: FrameResult, burst, freq: float, bin_error: float, dec: int, fs: float) -> RxFrame:
        sync_at = r.sync_start  # the demodulator's sync word start, in channel samples
        sample = int(round((burst.start + sync_at) * dec - self.channelizer.delay))
        i0 = int(r.sync_position)
        i1 = max(i0 + 1, int(r.end_position))
        seg = burst.samples[i0:i1]
        p = float(np.mean(seg.real ** 2 + seg.imag ** 2)) if len(seg) else burst.power
        noise = max(burst.noise, 1e-20)
        end_sample = int(round((burst.start + r.end_position) * dec - self.channelizer.delay))
        return RxFrame(mode=r.mode, frame_format=r.frame_format, telegram=r.telegram, crc_ok=r.crc_ok,
                       reason=r.reason, sample=max(sample, 0), end_sample=max(end_sample, sample, 0),
                       t_s=max(sample, 0) / fs,
                       rssi_dbfs=10 * np.log10(max(p, 1e-20)), noise_dbfs=10 * np.log10(noise),
                       snr_db=10 * np.log10(max(p - noise, 1e-20) / noise), freq_offset_hz=r.freq_offset_hz + bin_error,
                       chip_rate_hz=r.chip_rate_hz, channel_hz=freq, violations=r.violations,
                       detail=(burst.samples, r, self.channelizer.out_rate, bin_error) if self.keep_detail else None)


def receive(chunks: Iterable[IQChunk], info: StreamInfo, modes: Iterable[str] = DEFAULT_MODES,
            **kwargs) -> Iterator[RxFrame]:
    rx = Receiver(info, modes, **kwargs)
    for chunk in chunks:
        yield from rx.process(chunk)
    yield from rx.flush()
