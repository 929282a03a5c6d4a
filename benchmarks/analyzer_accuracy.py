"""Conformance analyser accuracy against generated frames with known truth (issue #7).

Per mode, N frames at Eb/N0 20 dB, carrier offsets uniform in +-40 kHz and chip-rate errors
uniform in the mode's tolerance (T +-12 %, S +-2 %, C 0), 2.4 Msps cu8, through `analyze()`.
Prints the worst errors and how often the preamble length came out exact.

    python benchmarks/analyzer_accuracy.py [--count 100]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dsp.channel import single_burst  # noqa: E402
from dsp.modes import MODES  # noqa: E402
from flowgraphs.analyze import analyze  # noqa: E402
from sdr.types import IQChunk, StreamInfo  # noqa: E402

CASES = (("S1", "A", 0.02), ("T1", "A", 0.12), ("C1", "A", 0.0), ("C1", "B", 0.0))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=100)
    args = ap.parse_args()
    info = StreamInfo(sample_rate_hz=2.4e6, center_freq_hz=868.625e6)
    print(f"{'mode':<5} {'frames':>6} {'carrier max':>12} {'dev max':>8} {'chip rate max':>14} "
          f"{'preamble exact':>15} {'off by':>12}")
    t0 = time.perf_counter()
    for mode, fmt, tol in CASES:
        spec = MODES[mode]
        rng = np.random.default_rng(7)
        car, dev, rate, exact, off, found = [], [], [], 0, [], 0
        for _ in range(args.count):
            tel = bytes([0x32, 0x44]) + rng.integers(0, 256, 49, dtype=np.uint8).tobytes()
            offset, err = float(rng.uniform(-40e3, 40e3)), float(rng.uniform(-tol, tol))
            x = single_burst(spec, tel, frame_format=fmt, rng=rng, ebn0_db=20, freq_offset_hz=offset,
                             chip_rate_error=err, sample_rate_hz=info.sample_rate_hz)
            rep = analyze([IQChunk(samples=x, info=info, start=0)], info, modes=[mode])
            if len(rep["frames"]) != 1:
                continue
            found += 1
            m = rep["frames"][0]["measurements"]
            car.append(abs(m["carrier_offset_hz"] - offset))
            dev.append(abs(m["deviation_hz"] / spec.deviation_hz - 1) * 100)
            rate.append(abs(m["chip_rate_hz"] / (spec.chip_rate * (1 + err)) - 1) * 100)
            d = m["preamble_chips"] - 2 * spec.preamble_pairs
            exact += d == 0
            if d:
                off.append(d)
        offs = f"{min(off):+d}..{max(off):+d}" if off else "-"
        print(f"{mode}-{fmt:<3} {found:>6} {max(car):>9.0f} Hz {max(dev):>6.2f} % {max(rate):>12.4f} % "
              f"{exact:>9}/{found:<5} {offs:>12}", flush=True)
    print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
