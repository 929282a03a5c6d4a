"""Live reception: source -> Receiver -> OMS stack -> output sinks (:mod:`flowgraphs.sinks`), with
dedup and a meter inventory.

Status: every ``status_every_s`` (and once at the end) :func:`run_live` hands a :class:`LiveStatus`
to each ``on_status`` callback — the status line of ``rx``, and any output that reports the
receiver's health (metrics, MQTT diagnostics)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from mbus.compact import FormatCache
from mbus.errors import DecodeError
from mbus.keys import KeyStore
from mbus.telegram import decode as decode_telegram

from ..sinks import Inventory, Sink
from .receive import Receiver, RxFrame

log = logging.getLogger(__name__)


class Dedup:
    """The same telegram within ``window_s`` (repeaters, several receivers) is passed on once."""

    def __init__(self, window_s: float):
        self.window_s = window_s
        self._seen: dict[bytes, tuple[float, int]] = {}
        self.suppressed = 0

    def first(self, telegram: bytes, t_s: float) -> bool:
        if self.window_s <= 0:
            return True
        for k in [k for k, (t0, _) in self._seen.items() if t_s - t0 > self.window_s]:
            del self._seen[k]
        seen = self._seen.get(telegram)
        if seen is not None:
            self._seen[telegram] = (seen[0], seen[1] + 1)
            self.suppressed += 1
            return False
        self._seen[telegram] = (t_s, 1)
        return True


class IqSaver:
    """``--save-iq DIR``: the IQ snippet of each frame (preamble to end, with margins) as a SigMF
    recording (cf32) annotated with mode, format and telegram."""

    def __init__(self, directory: str, info, *, keep_s: float = 1.5, margin_s: float = 0.002):
        from pathlib import Path

        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.info = info
        self.keep = int(keep_s * info.sample_rate_hz)
        self.margin = int(margin_s * info.sample_rate_hz)
        self._chunks: list = []
        self.saved = 0

    def feed(self, chunk) -> None:
        self._chunks.append(chunk)
        while self._chunks and self._chunks[-1].end - self._chunks[0].end > self.keep:
            self._chunks.pop(0)

    def save(self, frame: RxFrame) -> None:
        import numpy as np

        from dsp.modes import MODES
        from sdr.file import write_sigmf

        mode = MODES.get(frame.mode)
        pre = int(2 * (mode.preamble_pairs if mode else 20) / (mode.chip_rate if mode else 1e5)
                  * self.info.sample_rate_hz) + self.margin
        a, b = frame.sample - pre, frame.end_sample + self.margin
        parts = [c for c in self._chunks if c.end > a and c.start < b]
        # only samples contiguous with the frame's own: a frame never spans a gap, either margin may
        # (a frame flushed by a gap has the chunk after the gap here already)
        k = next((i for i, c in enumerate(parts) if c.end > frame.sample and c.start < frame.end_sample), None)
        if k is None:
            return
        lo, hi = k, k + 1
        while lo > 0 and parts[lo - 1].end == parts[lo].start:
            lo -= 1
        while hi < len(parts) and parts[hi - 1].end == parts[hi].start:
            hi += 1
        parts = parts[lo:hi]
        x = np.concatenate([c.samples for c in parts])
        base = parts[0].start
        x = x[max(a - base, 0):b - base]
        start = max(a, base)
        name = f"{frame.mode}_{frame.telegram[4:8][::-1].hex()}_{frame.sample}"
        note = {"core:sample_start": frame.sample - start, "core:sample_count": frame.end_sample - frame.sample,
                "core:label": f"{frame.mode} {frame.frame_format}", "wmbus:mode": frame.mode,
                "wmbus:frame_format": frame.frame_format, "wmbus:telegram": frame.telegram.hex(),
                "wmbus:stream_sample": frame.sample}
        # the snippet's first sample in the stream (core:global_index) and, with a clock, in UTC
        first_ns = (None if frame.time_ns is None else
                    frame.time_ns - int(round((frame.sample - start) * 1e9 / self.info.sample_rate_hz)))
        write_sigmf(self.dir / name, x.astype(np.complex64).tobytes(), fmt="cf32",
                    sample_rate_hz=self.info.sample_rate_hz, center_freq_hz=self.info.center_freq_hz,
                    annotations=[note], description=f"wmbus-sdr rx --save-iq, stream sample {start}",
                    global_index=start, datetime_ns=first_ns)
        self.saved += 1


def for_seconds(source, seconds: float):
    """The source's chunks until ``seconds`` of signal have passed; opens and closes the source."""
    with source:
        for c in source:
            yield c
            if c.end >= seconds * source.info.sample_rate_hz:
                break


class ArrivalClock:
    """When samples reached us: each chunk's end sample with its monotonic arrival time, so the
    moment a frame ended on air can be placed in host time (the chunk that held its last chip
    arrived at t, (end - sample) / rate after that sample was on air). The arrival time is the one
    the source's reader thread stamped (``IQChunk.arrived``) when there is one — the consumer may
    take a chunk much later, while it decodes or waits to send a reply — else the time of marking."""

    def __init__(self, sample_rate_hz: float, keep: int = 256):
        self.rate = sample_rate_hz
        self.keep = keep
        self._marks: list[tuple[int, float]] = []

    def mark(self, chunk_end: int, arrived: float | None = None) -> None:
        self._marks.append((chunk_end, time.monotonic() if arrived is None else arrived))
        if len(self._marks) > self.keep:
            del self._marks[:self.keep // 2]

    def on_air(self, sample: int) -> float | None:
        """Monotonic time at which ``sample`` was on air, or None when it is older than the marks."""
        for end, t in self._marks:
            if end >= sample:
                return t - (end - sample) / self.rate
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class LiveStatus:
    """The live receiver's health at one moment (``final``: at the end of the run)."""

    seconds: float  # host time since the run started
    frames: int  # frames passed on (CRC good, not duplicates)
    frames_per_min: float
    rejected: int  # frames with a bad CRC (or otherwise rejected)
    duplicates: int
    bursts: int  # transmissions the burst finders heard
    meters: int | None  # meters in the inventory (None without one)
    cpu_percent: float  # of one core, this process, since the start
    dropped_samples: int  # samples lost (overflow, gaps, reconnects)
    gaps: int  # breaks in the sample stream
    restarts: int  # device reopens (watchdog or lost device / connection)
    stalls: int  # times no samples came for the stall timeout
    signal_s: float  # seconds of signal by the sample clock (last sample index / rate)
    ppm: float | None = None  # the tuner's frequency error the meters show (rtl_sdr -p convention)
    ppm_spread: float | None = None  # its spread over meters (None with fewer than two)
    ppm_meters: int = 0  # meters the estimate stands on
    ppm_applied: float = 0.0  # correction in force (--ppm, --auto-ppm)
    rejected_reasons: tuple[tuple[str, int], ...] = ()  # the receiver's rejections by reason (Receiver.stats)
    final: bool = False

    @property
    def dropped(self) -> int:
        """(The name of the status line's field.)"""
        return self.dropped_samples


def zero_frame_hint(stats, modes: Iterable[str], *, sample_rate_hz: float, center_freq_hz: float) -> str | None:
    """For a run that passed on no frame: which option is likely wrong, from what the receiver saw
    (``Receiver.stats``: bursts heard, frames rejected by reason); None when there is nothing to say."""
    bursts = stats.get("bursts", 0)
    if stats.get("frames", 0) or any(k.startswith("frames ") and v for k, v in stats.items()):
        return None
    rejected = {k.removeprefix("rejected "): v for k, v in stats.items() if k.startswith("rejected ") and v}
    rate = f"--rate {sample_rate_hz / 1e6:g}e6"
    center = f"--center {center_freq_hz / 1e6:g}e6"
    modes = ",".join(modes)
    if rejected:
        reasons = ", ".join(f"{n} {r}" for r, n in sorted(rejected.items(), key=lambda kv: -kv[1]))
        return (f"{sum(rejected.values())} frames were found but rejected ({reasons}): the signal is weak or "
                f"disturbed (antenna, --gain), or the tuner is off frequency (--ppm); if the sample rate the "
                f"device really runs at is not {rate}, say so")
    if bursts:
        return (f"{bursts} transmissions were heard but none carried a sync word of the modes received ({modes}): "
                f"the sample rate ({rate}: is it the rate the device or recording really has?), the centre "
                f"frequency ({center}) or --modes is likely wrong")
    return (f"nothing was heard on the channels of {modes}: check the antenna and --gain, and that {center} "
            "(Hz) is the 868 MHz band the meters use")


def run_live(chunks: Iterable, rx: Receiver, sinks: list[Sink], *, keys: KeyStore | None = None,
             dedup_s: float = 0.0, inventory: Inventory | None = None,
             on_status: Callable[[LiveStatus], None] | Iterable[Callable[[LiveStatus], None]] | None = None,
             status_every_s: float = 10.0, stop_after_s: float | None = None, save_iq: IqSaver | None = None,
             auto_ppm: bool = False) -> dict:
    """Drive the receiver from live chunks until the source ends (or ``stop_after_s`` of signal, or
    Ctrl-C / SIGTERM raised as KeyboardInterrupt: the bursts still open are flushed and the summary
    returned, with ``interrupted`` set).

    ``on_status``: one callable or several, each given a :class:`LiveStatus` every
    ``status_every_s`` and a final one (``final=True``) at the end. When ``chunks`` is a source,
    its ``restarts`` and ``stalls`` counters are reported.

    ``auto_ppm``: once the tuner-error estimate is settled (enough meters that agree, see
    :class:`~flowgraphs.pipelines.calibration.PpmEstimate`) and more than 1 ppm from the correction
    in force, the receiver corrects it (once), logged and reported as ``ppm_applied``.

    Latency: for each frame, the time from its last chip arriving (estimated from the arrival time
    of the chunk that held it) to its output."""
    callbacks = [] if on_status is None else [on_status] if callable(on_status) else list(on_status)
    formats = FormatCache()
    dedup = Dedup(dedup_s)
    counts = {"frames": 0, "rejected": 0, "duplicates": 0}
    t0 = time.monotonic()
    cpu0 = time.process_time()
    last_status = t0
    dropped = 0
    latencies: list[float] = []
    clock = ArrivalClock(rx.info.sample_rate_hz)

    def handle(frame: RxFrame) -> None:
        t_end = clock.on_air(frame.end_sample)
        if t_end is not None:
            latencies.append(time.monotonic() - t_end)
        if not frame.crc_ok:
            counts["rejected"] += 1
            return
        if not dedup.first(frame.telegram, frame.t_s):
            counts["duplicates"] += 1
            return
        counts["frames"] += 1
        try:
            t = decode_telegram(frame.telegram, keys=keys, frame_format=None, formats=formats)
        except DecodeError as err:
            log.info("undecodable frame %s: %s", frame.telegram.hex(), err)
            t = None
        if inventory is not None:
            inventory.add(frame, t)
        if save_iq is not None:
            save_iq.save(frame)
        for sink in sinks:
            sink(frame, t)

    ppm_to_correct = auto_ppm  # once, when the estimate settles

    def calibrate() -> None:
        nonlocal ppm_to_correct
        if not ppm_to_correct:
            return
        est = rx.ppm_estimate
        if est is None or not est.settled or abs(est.ppm - rx.correction_ppm) < 1.0:
            return
        log.warning("%s: the tuner is %s; correcting it from now on (--auto-ppm)", rx.info.source, est.describe())
        rx.set_ppm(round(est.ppm, 1))
        ppm_to_correct = False

    def status(final: bool = False) -> LiveStatus:
        wall = max(time.monotonic() - t0, 1e-9)
        est = rx.ppm_estimate
        return LiveStatus(seconds=wall, frames=counts["frames"], frames_per_min=60 * counts["frames"] / wall,
                          rejected=counts["rejected"], duplicates=counts["duplicates"], bursts=rx.stats["bursts"],
                          meters=len(inventory.meters) if inventory is not None else None,
                          cpu_percent=100 * (time.process_time() - cpu0) / wall, dropped_samples=dropped,
                          gaps=rx.gaps, restarts=getattr(chunks, "restarts", 0), stalls=getattr(chunks, "stalls", 0),
                          signal_s=rx.samples_in / rx.info.sample_rate_hz,
                          ppm=est.ppm if est is not None else None, ppm_spread=est.spread_ppm if est else None,
                          ppm_meters=est.meters if est is not None else 0,
                          ppm_applied=rx.correction_ppm, final=final,
                          rejected_reasons=tuple(sorted((k.removeprefix("rejected "), v) for k, v in rx.stats.items()
                                                        if k.startswith("rejected "))))

    interrupted = False
    # --duration: exactly that much signal, whatever the chunks' size (0.1 s blocks from a device)
    stop_at = None if stop_after_s is None else int(round(stop_after_s * rx.info.sample_rate_hz))
    try:
        for chunk in chunks:
            dropped += chunk.dropped
            clock.mark(chunk.end, chunk.arrived)
            if stop_at is not None and chunk.end > stop_at:
                if chunk.start >= stop_at:  # a gap past the end
                    break
                chunk = replace(chunk, samples=chunk.samples[:stop_at - chunk.start])
            if save_iq is not None:
                save_iq.feed(chunk)
            for frame in rx.process(chunk):
                handle(frame)
            calibrate()
            now = time.monotonic()
            if callbacks and now - last_status >= status_every_s:
                s = status()
                for callback in callbacks:
                    callback(s)
                last_status = now
            if stop_at is not None and chunk.end >= stop_at:
                break
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: end the run as if the source had ended
        interrupted = True
    for frame in rx.flush():
        handle(frame)
    final = status(final=True)
    for callback in callbacks:
        callback(final)
    return {**counts, "dropped_samples": dropped, "seconds": final.seconds, "cpu_percent": final.cpu_percent,
            "bursts": final.bursts, "restarts": final.restarts, "stalls": final.stalls, "interrupted": interrupted,
            "ppm": final.ppm, "ppm_applied": final.ppm_applied, "ppm_estimate": rx.ppm_estimate,
            "latency_max_s": max(latencies) if latencies else None,
            "latency_median_s": sorted(latencies)[len(latencies) // 2] if latencies else None}
