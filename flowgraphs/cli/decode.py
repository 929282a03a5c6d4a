"""``wmbus-sdr decode``: IQ recording (or stdin) -> link frames -> OMS stack -> output sinks (text, jsonl,
rtlwmbus, inventory, mqtt, or any registered in :mod:`flowgraphs.sinks`)."""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
import time
from collections import Counter
from typing import TYPE_CHECKING

from mbus.compact import FormatCache
from mbus.errors import DecodeError
from mbus.telegram import decode as decode_telegram
from sdr.errors import SDRError

from .options import (
    add_key_options,
    add_modes_option,
    add_sink_options,
    add_source_options,
    add_unknown_option,
    key_store,
    open_outputs,
    open_source,
    unknown_saver,
    wanted_modes,
)

if TYPE_CHECKING:  # numpy and scipy are imported only when a recording is decoded
    from sdr.file import FileSource

    from ..pipelines.receive import Receiver, RxFrame
    from ..sinks import Sink

log = logging.getLogger(__name__)

READ_CHUNK = 1 << 20  # samples per read from a file (2 MB of cu8)


HELP = """\
Decode wireless M-Bus frames from an IQ recording: every S1, T1, C1, R2, N (a-f) and F2 frame
(format A and B) in the captured band, with CRC check, signal figures and the OMS decoding of its
content. --channel FREQ:MODE adds a mode on a channel of your choosing (434.475M:T1).

Sample format, rate and centre frequency come from SigMF metadata or the file name
(rtlsdr_868.950M_1M6_x.cu8, g001_868.95M_1200k.cu8); otherwise give --format, --rate, --center.
A capture centred at 868.625 MHz with >= 1.6 Msps hears S (868.30), T/C (868.95) and the ten R2
channels (868.03-868.57) at once; one centred at 169.4375 MHz with >= 240 ksps the six N channels.

examples:
  wmbus-sdr decode recordings/example_868.625M_2M4.sigmf-meta --keys recordings/keys.txt
  rtl_sdr -f 868.95M -s 1.6M - | wmbus-sdr decode - --format cu8 --rate 1.6e6 --center 868.95e6 --output rtlwmbus
"""


def add_parser(sub) -> None:
    p = sub.add_parser("decode", help="decode frames from an IQ recording", description=HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_source_options(p, file="required")
    add_modes_option(p)
    add_unknown_option(p)
    add_key_options(p)
    add_sink_options(p)
    p.add_argument("--ppm", type=float, default=0.0, metavar="PPM",
                   help="correct a known tuner frequency error, in ppm as rtl_sdr -p takes it (+ = the tuner "
                        "was high, signals lie below their channels); the summary prints the error the "
                        "decoded meters show")
    p.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="decode a long file on N cores (segments with overlap; the same frames as one core)")
    p.add_argument("--show-bad", action="store_true", help="also print frames that fail their CRC")
    p.add_argument("--no-blank", action="store_true", help="do not blank impulsive interference")
    p.add_argument("--no-gate", action="store_true",
                   help="channelise every sample, not only the stretches where the activity gate hears something "
                        "(slower; the same frames)")
    p.add_argument("--quiet", action="store_true", help="no progress or summary on stderr")


def run(args) -> int:
    from ..pipelines.receive import Receiver

    sinks: list[Sink] = []
    try:
        keys = key_store(args)
        source = open_source(args)
        # chunks as read, converted where the receiver reads them (sdr.types.RawIQ); from a file
        # long ones (part of the activity gate's work per call is a fixed cost; the frames do not
        # depend on the chunking), from stdin the source's own (a pipe from rtl_sdr: frames sooner)
        source.lazy = True
        if args.file != "-":
            source.chunk_samples = max(source.chunk_samples, READ_CHUNK)
        if not -1000 <= args.ppm <= 1000:
            raise ValueError(f"--ppm {args.ppm:g}: a tuner error is a few tens of ppm (at most +-1000)")
        if args.jobs < 1:
            raise ValueError(f"--jobs {args.jobs}: give 1 or more")
        # the tuner error is learnt for the summary only: --quiet prints none, so no frame's carrier
        # is fitted for it (~0.7 ms a meter)
        rx = Receiver(source.info, wanted_modes(args), blank_impulses=not args.no_blank, ppm=args.ppm,
                      calibrate=not args.quiet, gate=not args.no_gate)
        if args.save_unknown and args.jobs > 1:
            raise ValueError("--save-unknown runs with --jobs 1")
        unknown = unknown_saver(args, rx)
        parallel = _parallel(args, source, rx) if args.jobs > 1 else None
        sinks = open_outputs(args)
    except (ValueError, SDRError) as err:
        print(f"wmbus-sdr decode: {err}", file=sys.stderr)
        return 2
    from ..sinks import close_sinks

    # the modules and tables loaded so far live as long as the process: out of the cyclic garbage
    # collector's way (each of its full passes would walk them again while the recording is decoded)
    gc.freeze()
    formats = FormatCache()
    counts: Counter = Counter()
    t0 = time.perf_counter()
    progress = _Progress(args, source, t0)
    try:
        if parallel is not None:
            for frame in parallel.frames():
                _emit(frame, args.show_bad, keys, formats, sinks, counts)
                progress.show(parallel.samples_in, counts)
            rx = parallel
        else:
            for chunk in source:
                for frame in rx.process(chunk):
                    _emit(frame, args.show_bad, keys, formats, sinks, counts)
                progress.show(chunk.end, counts)
            for frame in rx.flush():
                _emit(frame, args.show_bad, keys, formats, sinks, counts)
    except (OSError, SDRError) as err:
        print(f"\nwmbus-sdr decode: {args.file}: {err}", file=sys.stderr)
        return 1
    finally:
        close_sinks(sinks)
    sys.stdout.flush()
    if not args.quiet:
        _summary(rx, source, counts, time.perf_counter() - t0)
        if unknown is not None:
            print(f"  --save-unknown: {unknown.saved} bursts without a valid frame saved to {args.save_unknown}"
                  + (f" ({unknown.skipped} more left out by the rate limit)" if unknown.skipped else ""),
                  file=sys.stderr)
    return 0


class _Progress:
    """``12.0 s of 600.0 s (2 %), 20 frames`` on stderr every 2 s for recordings over 10 s."""

    def __init__(self, args, source: FileSource, t0: float):
        self.quiet = args.quiet
        self.rate = source.info.sample_rate_hz
        self.total_s = _duration(args.file, source)
        self.last = t0

    def show(self, samples_done: int, counts: Counter) -> None:
        now = time.perf_counter()
        if self.quiet or now - self.last <= 2.0 or (self.total_s is not None and self.total_s <= 10):
            return
        done = samples_done / self.rate
        of = f" of {self.total_s:.1f} s ({100 * done / self.total_s:.0f} %)" if self.total_s else ""
        print(f"\r{done:.1f} s{of}, {counts['frames']} frames", end="", file=sys.stderr, flush=True)
        self.last = now


def _parallel(args, source: FileSource, rx: Receiver):
    """The ParallelReceiver for --jobs N, or None when the file is too short to split."""
    from ..pipelines.parallel import ParallelReceiver, ReceiverSettings, SourceSpec

    n = source.n_samples if args.file != "-" else None
    if n is None:
        raise ValueError("--jobs needs a file to read in pieces, not stdin")
    settings = ReceiverSettings(modes=tuple(rx.modes), blank_impulses=not args.no_blank, ppm=args.ppm,
                                gate=not args.no_gate)
    spec = SourceSpec(path=args.file, fmt=source.fmt, sample_rate_hz=source.info.sample_rate_hz,
                      center_freq_hz=source.info.center_freq_hz)
    par = ParallelReceiver(spec, source.info, n, settings, args.jobs)
    if len(par.segments) < 2:
        log.info("%s: too short to split for --jobs %d; decoding on one core", args.file, args.jobs)
        return None
    return par


def _duration(path: str, source: FileSource) -> float | None:
    import os

    from sdr.formats import BYTES_PER_SAMPLE
    if path == "-" or source.fmt not in BYTES_PER_SAMPLE:
        return None
    try:
        return os.path.getsize(source.data_path) / BYTES_PER_SAMPLE[source.fmt] / source.info.sample_rate_hz
    except OSError:
        return None


def _emit(frame: RxFrame, show_bad: bool, keys, formats, sinks: list[Sink], counts: Counter) -> None:
    telegram = None
    if not frame.crc_ok:
        counts[f"rejected {frame.reason}"] += 1
        if not show_bad:
            return
    else:
        counts["frames"] += 1
        counts[f"{frame.mode}"] += 1
        try:
            telegram = decode_telegram(frame.telegram, keys=keys, frame_format=None, formats=formats)
        except DecodeError as err:
            counts["undecodable"] += 1
            log.info("undecodable frame %s: %s", frame.telegram.hex(), err)
    for sink in sinks:
        sink(frame, telegram)


def _summary(rx: Receiver, source: FileSource, counts: Counter, elapsed: float) -> None:
    dur = rx.samples_in / source.info.sample_rate_hz
    names = dict.fromkeys(m.rsplit(":", 1)[-1] for m in rx.modes)  # FREQ:MODE entries (--channel) count as MODE
    modes = ", ".join(f"{m} {counts[m]}" for m in names if counts[m])
    rejects = ", ".join(f"{k.split(' ', 1)[1]} {v}" for k, v in sorted(counts.items()) if k.startswith("rejected"))
    speed = f"{dur / elapsed:.1f}x real time" if elapsed > 0 else ""
    print(f"\r{source.info.source}: {dur:.2f} s of IQ at {source.info.sample_rate_hz / 1e6:g} Msps, "
          f"{source.info.center_freq_hz / 1e6:.3f} MHz: {counts['frames']} frames ({modes or 'none'}); "
          f"rejected: {rejects or 'none'}; {speed}", file=sys.stderr)
    if getattr(rx, "gate", None) is not None and rx.samples_in:
        share = 100 * rx.samples_channelised / rx.samples_in
        print(f"  activity gate: {share:.0f} % of the samples channelised (the rest held no signal; "
              "--no-gate: all of them)", file=sys.stderr)
    if not counts["frames"] and dur > 0:
        from ..pipelines.live import zero_frame_hint

        hint = zero_frame_hint(rx.stats, list(names), sample_rate_hz=source.info.sample_rate_hz,
                               center_freq_hz=source.info.center_freq_hz)
        if hint:
            print(f"  hint: {hint}", file=sys.stderr)
    est = rx.ppm_estimate
    if est is not None:
        shift_khz = -est.ppm * 1e-6 * source.info.center_freq_hz / 1e3
        print(f"  tuner frequency error: {est.describe()}; the meters lie {shift_khz:+.1f} kHz from their "
              f"channels without correction" + (f" (--ppm {est.applied_ppm:g} applied)" if est.applied_ppm else "")
              + (f"; decode with --ppm {est.ppm:.0f}" if est.settled and abs(est.ppm - est.applied_ppm) >= 5 else ""),
              file=sys.stderr)
    trailing = source.trailing_bytes
    bad = source.bad_samples
    if hasattr(rx, "bad_samples"):  # the parallel receiver read the file itself
        from sdr.formats import BYTES_PER_SAMPLE
        bad = rx.bad_samples
        trailing = os.path.getsize(source.data_path) % BYTES_PER_SAMPLE.get(source.fmt, 1)
    if trailing:
        print(f"  note: the last {trailing} bytes do not form a whole {source.fmt} sample "
              "(file truncated?) and were ignored", file=sys.stderr)
    if bad:
        print(f"  note: {bad} samples were not finite (NaN/inf) and were zeroed", file=sys.stderr)
