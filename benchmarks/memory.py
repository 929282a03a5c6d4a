"""Peak memory of the long jobs: `tx`, `analyze --report`, `session --out` (issue #11, scope 6).

Makes the captures it needs with our TX in a temporary directory, runs each command as a child
process and reads that child's own peak RSS (os.wait4), then prints a table against the targets.

    python benchmarks/memory.py [--long-minutes 10] [--skip-long] [--repo DIR]

--repo runs the commands from another checkout (e.g. main, for a before/after table); the captures
are always made with this checkout's TX.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
N21 = "2E4493157856341233037A2A0020255923C95AAA26D1B2E7493B013EC4A6F6D3529B520EDFF0EA6DEFC99D6D69EBF3"
RATE = "2.4e6"
CENTER = "868.625e6"


def run(repo: Path, args: list[str], *, stdout=subprocess.DEVNULL) -> tuple[float, float]:
    """(peak RSS in MB of the child, wall seconds) of ``python -m flowgraphs.cli ARGS`` run from ``repo``."""
    env = {**os.environ, "PYTHONPATH": str(repo)}
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "flowgraphs.cli", *args], cwd=repo, env=env, stdout=stdout,
                            stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak, not this process's nor the builder's
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(args)}\n{err}")
    return usage.ru_maxrss / 1024, time.perf_counter() - t0


def make_capture(path: Path, seconds: float) -> None:
    """C1 frames every half second (one meter), Eb/N0 20 dB over the whole band, our TX."""
    repeat = int(seconds / 0.5)
    run(ROOT, ["tx", "--mode", "C1", "--telegram", N21, "--repeat", str(repeat), "--interval", "0.5", "--rate", RATE,
               "--center", CENTER, "--offset", "8e3", "--ebn0", "20", "--out", str(path)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--long-minutes", type=float, default=10.0, help="length of the long analyze capture")
    ap.add_argument("--skip-long", action="store_true", help="leave out the long analyze capture")
    ap.add_argument("--repo", type=Path, default=ROOT, help="checkout whose commands are measured")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="wmbus-mem-") as tmp:
        work = Path(tmp)
        cases = [
            ("tx T1 --repeat 600 --interval 0.1 (60 s, cu8)", 250,
             ["tx", "--mode", "T1", "--telegram", N21, "--repeat", "600", "--interval", "0.1", "--rate", RATE,
              "--out", str(work / "tx.cu8")], None),
            ("session C2 access --out (cu8)", None,
             ["session", "--mode", "C2", "--dialogue", "access", "--out", str(work / "session.cu8")], None),
            ("analyze --report, 60 s capture", 400,
             ["analyze", str(work / "c60_868.625M_2M4.cu8"), "--report", str(work / "rep60")], 60.0),
        ]
        if not args.skip_long:
            minutes = args.long_minutes
            cases.append((f"analyze --report, {minutes:g} min capture", 600,
                          ["analyze", str(work / "clong_868.625M_2M4.cu8"), "--report", str(work / "replong")],
                          minutes * 60))
        for name, target, cmd, capture_s in cases:
            if capture_s is not None:
                t0 = time.perf_counter()
                make_capture(Path(cmd[1]), capture_s)
                print(f"made {Path(cmd[1]).name} ({capture_s:g} s) in {time.perf_counter() - t0:.0f} s",
                      file=sys.stderr, flush=True)
            peak, wall = run(args.repo, cmd)
            if capture_s is not None:  # the report found every frame the capture holds
                found = len(json.loads((Path(cmd[3]) / "report.json").read_text())["frames"])
                check = f"{found} of {int(capture_s / 0.5)} frames"
            else:
                out = Path(cmd[-1])
                check = f"{out.stat().st_size / 2 / 2.4e6:.1f} s written"
            rows.append((name, peak, target, wall, check))
            print(f"{name}: {peak:.0f} MB in {wall:.0f} s, {check}", file=sys.stderr, flush=True)
            if capture_s is not None:
                Path(cmd[1]).unlink()
    print(f"peak RSS of each command (its own, os.wait4), 2.4 Msps; code from {args.repo}")
    print("| command | peak RSS | target | wall time | output |\n|---|---|---|---|---|")
    for name, peak, target, wall, check in rows:
        verdict = "-" if target is None else f"< {target} MB ({'met' if peak < target else 'MISSED'})"
        print(f"| {name} | {peak:.0f} MB | {verdict} | {wall:.0f} s | {check} |")


if __name__ == "__main__":
    main()
