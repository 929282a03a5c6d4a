"""`decode --jobs N` on a long capture: wall time against one core, and the frames compared.

Builds (once, cached under --workdir) the same kind of capture as rx_throughput.py (S1/T1/C1 frames
every ~1.5 s in 8-bit noise, 1.6 Msps centred at 868.625 MHz), 10 minutes by default, then runs
`wmbus-sdr decode --output jsonl` with --jobs 1 and --jobs N and prints wall time, speed-up and
whether the JSON lines are identical.

    python benchmarks/jobs_speedup.py [--minutes 10] [--jobs 2]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.rx_throughput import CENTER, build  # noqa: E402


def decode(path: Path, rate: float, jobs: int) -> tuple[float, str, int]:
    cmd = [sys.executable, "-m", "flowgraphs.cli", "decode", str(path), "--format", "cu8", "--rate", str(rate),
           "--center", str(CENTER), "--output", "jsonl", "--quiet", "--jobs", str(jobs)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, env=env, check=True)
    wall = time.perf_counter() - t0
    return wall, hashlib.sha256(p.stdout).hexdigest(), len(p.stdout.splitlines())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=1.6e6)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--workdir", default="/tmp/wmbus-sdr-bench")
    args = ap.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    path = work / f"jobs_{args.minutes:g}min_{args.rate / 1e6:g}M.cu8"
    if not path.exists():
        print(f"building {path} ...", file=sys.stderr, flush=True)
        tmp = path.with_suffix(".part")
        build(tmp, args.minutes * 60, args.rate)
        tmp.rename(path)
    one = decode(path, args.rate, 1)
    many = decode(path, args.rate, args.jobs)
    print(f"\ndecode --jobs on {args.minutes:g} min at {args.rate / 1e6:g} Msps ({os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f})")
    print("| jobs | wall | real time / wall | frames | output |\n|---|---|---|---|---|")
    for jobs, (wall, digest, n) in ((1, one), (args.jobs, many)):
        print(f"| {jobs} | {wall:.1f} s | {args.minutes * 60 / wall:.1f}x | {n} | sha256 {digest[:12]} |")
    print(f"\nspeed-up {one[0] / many[0]:.2f}x; output {'identical' if one[1] == many[1] else 'DIFFERENT'}")


if __name__ == "__main__":
    main()
