"""Conformance analyser accuracy against generated frames with known truth (issue #7).

Per mode, N frames at Eb/N0 20 dB (--ebn0), carrier offsets uniform in +-40 kHz and chip-rate
errors uniform in the mode's tolerance (T +-12 %, S +-2 %, C 0), 2.4 Msps cu8, through `analyze()`.
Prints the worst errors (carrier, deviation, peak deviation, chip rate, drift: the truth has none)
and how often the preamble length came out exact. --lengths runs each mode at several L-fields
(short C1 frames: 18-30).

With --impairments, a second table takes the same modes through what real radios and meters add:

- extremes: carrier offset and chip-rate error at the ends of their ranges (+-40 kHz, +-tolerance);
- front end: DC offset 0.05+0.03j (a fifth of the signal), IQ imbalance 1 dB / 3 degrees;
- impulses: clicks of 2-10 samples at twice the signal's amplitude every ~1 ms;
- preamble: a steady tone of 8 chips before the preamble and the preamble half a chip off the
  data's grid (as in the shared RTL-SDR capture of real meters);
- jitter: the chip clock wanders (a random walk of the chip boundaries, 0.15 chip rms, --jitter).

    python benchmarks/analyzer_accuracy.py [--count 100] [--impairments] [--lengths 18,24,30,50] [--ebn0 20]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dsp.channel import Burst, add_impulses, bit_rate, noise_power, render  # noqa: E402
from dsp.modes import MODES  # noqa: E402
from dsp.phy import frame_chips  # noqa: E402
from flowgraphs.pipelines.analyze import analyze  # noqa: E402
from sdr.formats import quantize  # noqa: E402
from sdr.types import IQChunk, StreamInfo  # noqa: E402

CASES = (("S1", "A", 0.02), ("T1", "A", 0.12), ("C1", "A", 0.0), ("C1", "B", 0.0))
RATE, CENTER, AMP, PAD = 2.4e6, 868.625e6, 0.25, 3e-3
JITTER = [0.15]  # chip rms of the "jitter" condition (--jitter)
CONDITIONS = ("nominal", "extremes", "front end", "impulses", "preamble", "jitter")


def frame(mode: str, fmt: str, tol: float, condition: str, rng: np.random.Generator, lval: int = 0x32,
          ebn0_db: float = 20.0):
    """(cu8 samples, true carrier offset, true chip-rate error) of one generated frame."""
    spec = MODES[mode]
    tel = bytes([lval, 0x44]) + rng.integers(0, 256, lval - 1, dtype=np.uint8).tobytes()
    if condition == "extremes":
        offset, err = float(rng.choice([-40e3, 40e3])), float(rng.choice([-tol, tol]))
    else:
        offset, err = float(rng.uniform(-40e3, 40e3)), float(rng.uniform(-tol, tol))
    shaped = condition == "preamble"
    burst = Burst(mode=spec, telegram=tel, frame_format=fmt, start_s=PAD, amplitude=AMP, freq_offset_hz=offset,
                  chip_rate_error=err, lead_in_chips=8 if shaped else 0, preamble_half_chip=shaped,
                  chip_jitter_rms=JITTER[0] if condition == "jitter" else 0.0, jitter_seed=int(rng.integers(1 << 31)))
    chips = len(frame_chips(spec, tel, fmt)) + (8.5 if shaped else 0)
    front = {"dc_offset": 0.05 + 0.03j, "iq_gain_db": 1.0, "iq_phase_deg": 3.0} if condition == "front end" else {}
    x, _ = render([burst], sample_rate_hz=RATE, center_freq_hz=CENTER, rng=rng,
                  duration_s=chips / (spec.chip_rate * (1 + err)) + 2 * PAD,
                  noise_rms=float(np.sqrt(noise_power(AMP ** 2, ebn0_db, bit_rate(spec), RATE))), **front)
    if condition == "impulses":
        x = add_impulses(x, rng=rng, sample_rate_hz=RATE, period_s=1e-3, amplitude=2 * AMP)
    return quantize(x, "cu8"), offset, err


def run(condition: str, count: int, label: bool, lengths: list[int], ebn0_db: float, cases=CASES) -> None:
    info = StreamInfo(sample_rate_hz=RATE, center_freq_hz=CENTER)
    for (mode, fmt, tol), lval in ((c, lv) for c in cases for lv in lengths):
        spec = MODES[mode]
        rng = np.random.default_rng(7)
        car, dev, peak, rate, drift, exact, off, found = [], [], [], [], [], 0, [], 0
        for _ in range(count):
            x, offset, err = frame(mode, fmt, tol, condition, rng, lval, ebn0_db)
            rep = analyze([IQChunk(samples=x, info=info, start=0)], info, modes=[mode])
            if len(rep["frames"]) != 1:
                continue
            found += 1
            m = rep["frames"][0]["measurements"]
            car.append(abs(m["carrier_offset_hz"] - offset))
            dev.append(abs(m["deviation_hz"] / spec.deviation_hz - 1) * 100)
            peak.append(abs(m["deviation_peak_hz"] / spec.deviation_hz - 1) * 100)
            drift.append(abs(m["drift_hz"]))
            rate.append(abs(m["chip_rate_hz"] / (spec.chip_rate * (1 + err)) - 1) * 100)
            d = m["preamble_chips"] - 2 * spec.preamble_pairs
            exact += d == 0
            if d:
                off.append(d)
        offs = f"{min(off):+d}..{max(off):+d}" if off else "-"
        first = f"{condition:<10} " if label else ""
        name = f"{mode}-{fmt}" + (f" L{lval}" if len(lengths) > 1 else "")
        if not found:
            print(f"{first}{name:<9} {0:>6} (no frame decoded)", flush=True)
            continue
        print(f"{first}{name:<9} {found:>6} {max(car):>9.0f} Hz {max(dev):>6.2f} % {max(peak):>7.2f} % "
              f"{max(rate) * 1e4:>9.0f} ppm {max(drift):>8.0f} Hz {exact:>9}/{found:<5} {offs:>12}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=100)
    ap.add_argument("--impairments", action="store_true", help="also the table under real-radio impairments")
    ap.add_argument("--lengths", default="50", help="L-fields of the test telegrams, comma-separated")
    ap.add_argument("--ebn0", type=float, default=20.0, help="Eb/N0 in dB")
    ap.add_argument("--modes", default="S1,T1,C1A,C1B", help="of S1, T1, C1A, C1B")
    ap.add_argument("--jitter", type=float, default=0.15, help="chip-clock wander of the jitter condition (chip rms)")
    ap.add_argument("--conditions", default=",".join(CONDITIONS[1:]),
                    help=f"impairments run with --impairments, of: {', '.join(CONDITIONS[1:])}")
    args = ap.parse_args()
    lengths = [int(v) for v in args.lengths.split(",")]
    JITTER[0] = args.jitter
    if any(not 10 <= v <= 255 for v in lengths):
        ap.error(f"--lengths {args.lengths}: L-fields from 10 to 255")
    cases = tuple(c for c in CASES if f"{c[0]}{c[1] if c[0] == 'C1' else ''}" in args.modes.split(","))
    if not cases:
        ap.error(f"--modes {args.modes}: use S1, T1, C1A, C1B")
    conditions = args.conditions.split(",")
    if set(conditions) - set(CONDITIONS[1:]):
        ap.error(f"--conditions {args.conditions}: use {', '.join(CONDITIONS[1:])}")
    head = (f"{'mode':<9} {'frames':>6} {'carrier max':>12} {'dev max':>8} {'peak max':>9} {'chip rate max':>13} "
            f"{'drift max':>11} {'preamble exact':>15} {'off by':>12}")
    t0 = time.perf_counter()
    print(f"Eb/N0 {args.ebn0:g} dB, {args.count} frames per row")
    print(head)
    run("nominal", args.count, False, lengths, args.ebn0, cases)
    if args.impairments:
        print()
        print(f"{'condition':<10} {head}")
        for condition in conditions:
            run(condition, args.count, True, lengths, args.ebn0, cases)
    print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
