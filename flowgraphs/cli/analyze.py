"""``wmbus-sdr analyze``: measure meters' radio against EN 13757-4 limits."""

from __future__ import annotations

import argparse
import json
import sys

from .options import add_modes_option, add_source_options, open_source, wanted_modes

HELP = """\
Measure every decoded frame of a capture (or a live source): carrier error, deviation, modulation
index, chip rate, preamble length, sync word, drift, timing jitter, eye opening, code violations;
per meter the transmission intervals, duty cycle and access numbers; verdicts against the limits
per mode (PASS / FAIL, or UNSURE where the limit itself is not confirmed).

examples:
  wmbus-sdr analyze recordings/example_868.625M_2M4.sigmf-meta
  wmbus-sdr analyze capture.cu8 --rate 2.4e6 --center 868.625e6 --meter 12345678 --report out/ --output json
"""


def add_parser(sub) -> None:
    p = sub.add_parser("analyze", help="conformance measurements and report", description=HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_source_options(p, file="optional", device="optional")
    p.add_argument("--duration", type=float, default=60.0, help="seconds to listen with --device")
    add_modes_option(p)
    p.add_argument("--meter", help="only frames of this meter id")
    p.add_argument("--cal-offset", type=float, metavar="DB", help="RSSI calibration: dBm = dBFS + DB (measure "
                   "it once with a signal generator at the same gain)")
    p.add_argument("--report", metavar="DIR", help="write report.json, index.html and figures to DIR")
    p.add_argument("--output", choices=("text", "json"), default="text")


def run(args) -> int:
    import math

    from sdr.errors import SDRError

    from ..pipelines.analyze import analyze, text_table

    modes = wanted_modes(args)
    try:
        if args.cal_offset is not None and not math.isfinite(args.cal_offset):
            raise ValueError(f"--cal-offset {args.cal_offset}: give a number of dB")
        if bool(args.file) == bool(args.device):
            raise ValueError("give a FILE or --device, one of them")
        if args.device:
            source = open_source(args, sample_rate_hz=args.rate or 2.4e6, center_freq_hz=args.center or 868.625e6)
            info = source.info
            from ..pipelines.live import for_seconds

            chunks = for_seconds(source, args.duration)
            expected = int(args.duration * info.sample_rate_hz)
        else:
            source = open_source(args)
            info = source.info
            chunks = source
            expected = _file_samples(source)

        def progress(t, n):
            print(f"\r{t:.0f} s analysed, {n} frames", end="", file=sys.stderr, flush=True)

        from ..pipelines.report import CaptureFigures

        figures = CaptureFigures(expected) if args.report else None
        report = analyze(_feed(chunks, figures) if figures is not None else chunks, info, modes=modes,
                         meter=args.meter, progress=progress, cal_offset_db=args.cal_offset)
    except (ValueError, SDRError) as err:
        print(f"wmbus-sdr analyze: {err}", file=sys.stderr)
        return 2
    if args.report:
        from ..pipelines.report import write_report

        path = write_report(report, args.report, figures)
        print(f"report: {path}", file=sys.stderr)
    else:
        report.pop("_snippets", None)
    if args.output == "json":
        print(json.dumps(report, default=float))
    else:
        print(text_table(report))
    return 0


def _feed(chunks, figures):
    """Pass the chunks on, feeding the report's spectrum and spectrogram on the way."""
    for c in chunks:
        figures.add(c.samples)
        yield c


def _file_samples(source) -> int | None:
    """Samples in a recording, from its size (None for stdin)."""
    import os

    from sdr.formats import BYTES_PER_SAMPLE

    if source.data_path == "-":
        return None
    if source.fmt == "wav":
        return None
    return os.path.getsize(source.data_path) // BYTES_PER_SAMPLE[source.fmt]
