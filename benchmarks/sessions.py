"""Bidirectional sessions in the simulated channel: completion rate and timing accuracy.

For each mode with a dialogue (T2, S2, C2, R2, F2), dialogue (installation, access demand with
mode 5) and Eb/N0 (of the session's faster direction), N seeded sessions run between the gateway
and the meter emulator. A session counts when every frame was received and every response started
inside its window (R2 and F2: the meter's replies inside the meter's own window). |meas - true| is
the largest difference between the delay a station measured with its receiver and the channel's
ground truth. The modes without a dialogue (N2: its window is a conflict in the digest) are listed
with the reason.

    python benchmarks/sessions.py [--count 50] [--ebn0 20 14 12] [--modes T2,S2,C2,R2,F2]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dsp.modes import MODES  # noqa: E402
from flowgraphs.stations.session import PROFILES, access_demand, installation  # noqa: E402

ORDER = ("T2", "S2", "C2", "R2", "F2")  # the README's order; any other dialogue after them


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=50)
    ap.add_argument("--ebn0", type=float, nargs="+", default=[20.0, 14.0, 12.0])
    ap.add_argument("--modes", default=",".join([*ORDER, *(p for p in PROFILES if p not in ORDER)]))
    args = ap.parse_args()
    modes = [m.strip().upper() for m in args.modes.split(",") if m.strip()]
    key = bytes(range(16))
    print(f"{'Eb/N0':>6} {'mode':>4} {'dialogue':<13} {'complete':>9} {'median delay':>13} {'|meas-true| max':>16}")
    t0 = time.perf_counter()
    for ebn0 in args.ebn0:
        for mode in modes:
            for name, run in (("installation", installation), ("access", access_demand)):
                ok, errs, delays = 0, [], []
                for seed in range(args.count):
                    log, _ = run(mode, ebn0_db=ebn0, seed=seed, key=key)
                    ok += log.completed and all(e.in_window for e in log.delays())
                    errs += [abs(e.delay_ms - e.true_delay_ms) * 1e3 for e in log.delays()]
                    delays += [e.delay_ms for e in log.delays()]
                delays.sort()
                med = f"{delays[len(delays) // 2]:.3f} ms" if delays else "-"
                err = f"{max(errs):.1f} us" if errs else "-"
                print(f"{ebn0:6.1f} {mode:>4} {name:<13} {ok:>4}/{args.count:<4} {med:>13} {err:>16}", flush=True)
    print(f"({time.perf_counter() - t0:.0f} s)")
    missing = {m.dialogue_missing: [] for m in MODES.values() if m.dialogue_missing}
    for m in MODES.values():
        if m.dialogue_missing:
            missing[m.dialogue_missing].append(m.name)
    for why, names in missing.items():
        print(f"no dialogue for {', '.join(names)}: {why}")


if __name__ == "__main__":
    main()
