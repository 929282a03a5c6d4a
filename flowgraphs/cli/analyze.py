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

    from ..analyze import analyze, text_table

    modes = wanted_modes(args)
    try:
        if args.cal_offset is not None and not math.isfinite(args.cal_offset):
            raise ValueError(f"--cal-offset {args.cal_offset}: give a number of dB")
        if bool(args.file) == bool(args.device):
            raise ValueError("give a FILE or --device, one of them")
        if args.device:
            source = open_source(args, sample_rate_hz=args.rate or 2.4e6, center_freq_hz=args.center or 868.625e6)
            info = source.info
            from ..live import for_seconds

            chunks = for_seconds(source, args.duration)
        else:
            source = open_source(args)
            info = source.info
            chunks = source

        def progress(t, n):
            print(f"\r{t:.0f} s analysed, {n} frames", end="", file=sys.stderr, flush=True)

        kept = []
        report = analyze(_keep(chunks, kept, info) if args.report else chunks, info, modes=modes,
                         meter=args.meter, progress=progress, cal_offset_db=args.cal_offset)
    except (ValueError, SDRError) as err:
        print(f"wmbus-sdr analyze: {err}", file=sys.stderr)
        return 2
    if args.report:
        import numpy as np

        from ..report import write_report

        capture = np.concatenate(kept) if kept else None
        path = write_report(report, args.report, capture)
        print(f"report: {path}", file=sys.stderr)
    else:
        report.pop("_snippets", None)
    if args.output == "json":
        print(json.dumps(report, default=float))
    else:
        print(text_table(report))
    return 0


def _keep(chunks, kept: list, info, limit_s: float = 20.0):
    """Keep (decimated) samples for the spectrum and spectrogram figures, at most limit_s seconds."""
    budget = int(limit_s * info.sample_rate_hz)
    for c in chunks:
        if budget > 0:
            kept.append(c.samples[:budget])
            budget -= len(c.samples)
        yield c
