"""Receive throughput at 169 MHz: `wmbus-sdr decode` on a synthetic N-mode cu8 capture, one core.

Builds (once, cached under --workdir) a capture centred at 169.4375 MHz at 300 ksps (an RTL-SDR's
low rates): 8-bit quantised noise with a DC offset, and every ~2 s a frame on one of the six N
channels in turn (a-f, formats A and B, 51-byte telegrams, carrier offsets within the channel's
tolerance, Eb/N0 15-30 dB). Then runs the real command pinned to one CPU (taskset) --runs times and
prints the median: CPU time of the process (user + sys, start-up included; a busy machine distorts
it far less than wall time), the real-time factor on it (issue #13: >= 100x), wall time, start-up
alone (a decode of the first 0.1 s), peak memory and frames found.

    python benchmarks/rx_throughput_n.py [--seconds 120] [--rate 300e3] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.rx_throughput import median_run, run_pinned  # noqa: E402
from dsp.channel import Burst, amplitude_for, render  # noqa: E402
from dsp.modes import MODES  # noqa: E402
from sdr.formats import from_complex  # noqa: E402

CENTER = 169.4375e6
LETTERS = "abcdef"


def build(path: Path, seconds: float, rate: float, seed: int = 1) -> int:
    rng = np.random.default_rng(seed)
    noise_rms = 0.02
    frames = 0
    with path.open("wb") as f:
        t, k = 0.0, 0
        while t < seconds - 1e-9:
            dur = min(2.0, seconds - t)
            bursts = []
            if dur >= 1.8:
                letter = LETTERS[k % 6]
                mode = MODES[f"N1{letter}"]
                tol = 2.0e3 if letter in "cd" else 1.5e3
                tel = bytes([0x32, 0x44]) + rng.integers(0, 256, 49, dtype=np.uint8).tobytes()
                amp = amplitude_for(mode, rng.uniform(15, 30), noise_rms=noise_rms, sample_rate_hz=rate)
                bursts.append(Burst(mode=mode, telegram=tel, frame_format="AB"[k % 2], start_s=0.5, amplitude=amp,
                                    freq_offset_hz=float(rng.uniform(-tol, tol))))
                k += 1
                frames += 1
            x, _ = render(bursts, sample_rate_hz=rate, center_freq_hz=CENTER, duration_s=dur, rng=rng,
                          noise_rms=noise_rms, dc_offset=0.01 + 0.005j)
            f.write(from_complex(x, "cu8"))
            t += dur
    return frames


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--rate", type=float, default=300e3)
    ap.add_argument("--runs", type=int, default=3, help="runs (the median CPU time is shown)")
    ap.add_argument("--workdir", default="/tmp/wmbus-sdr-bench")
    args = ap.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    path = work / f"bench_169.4375M_{args.rate / 1e3:g}k_{int(args.seconds)}s.cu8"
    if not path.exists():
        n = build(path, args.seconds, args.rate)
        print(f"built {path} ({n} frames)", file=sys.stderr)
    tiny = work / f"startup_169_{args.rate / 1e3:g}k.cu8"
    with path.open("rb") as f:
        tiny.write_bytes(f.read(int(0.1 * args.rate) * 2))

    def cmd(p: Path) -> list[str]:
        return [sys.executable, "-m", "flowgraphs.cli", "decode", str(p), "--rate", str(args.rate), "--center",
                str(CENTER), "--output", "jsonl", "--quiet"]

    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # start-up as installed: compiled modules cached
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    run_pinned(cmd(tiny), env=env)  # warm-up: compiles and caches our modules
    startup = median_run([run_pinned(cmd(tiny), env=env) for _ in range(max(3, args.runs))])
    r = median_run([run_pinned(cmd(path), env=env) for _ in range(args.runs)])
    cpu, wall, rss = r.cpu_s, r.wall_s, r.peak_mb
    lines = [json.loads(x) for x in r.output.splitlines() if x.strip()]
    modes: dict[str, int] = {}
    for obj in lines:
        key = f"{obj['mode']}-{obj['format']}"
        modes[key] = modes.get(key, 0) + 1
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"receive throughput, {args.seconds:g} s of cu8 at {args.rate / 1e3:g} ksps centred {CENTER / 1e6} MHz, "
          f"six N channels, one core{' (taskset)' if shutil.which('taskset') else ''}, median of {args.runs} "
          f"run(s), load average {load:.1f} on {os.cpu_count()} CPUs")
    print("| measure | value |\n|---|---|")
    print(f"| CPU (user+sys, start-up included) | {cpu:.2f} s |")
    print(f"| real time / CPU | {args.seconds / cpu:.1f}x |")
    print(f"| wall time | {wall:.2f} s |")
    print(f"| start-up (decode of 0.1 s, imports included) | {startup.cpu_s:.2f} s CPU |")
    print(f"| peak RSS | {rss:.0f} MB |")
    print(f"| frames decoded | {len(lines)} ({', '.join(f'{k} {v}' for k, v in sorted(modes.items()))}) |")


if __name__ == "__main__":
    main()
