"""Receive throughput: `wmbus-sdr decode` on a synthetic cu8 capture, one core.

Builds (once, cached under --workdir) a capture centred at 868.625 MHz: 8-bit quantised noise
with a DC offset, and every ~1.5 s a frame (S1, T1, C1-A, C1-B in turn, 51-byte telegrams, random
carrier offsets within +-25 kHz, Eb/N0 20-30 dB). Then runs the real command pinned to one CPU
and prints the real-time factor, peak memory and frames found.

    python benchmarks/rx_throughput.py [--seconds 60] [--rate 1.6e6]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dsp.channel import Burst, bit_rate, render  # noqa: E402
from dsp.modes import MODES  # noqa: E402
from sdr.formats import from_complex  # noqa: E402

CENTER = 868.625e6


def build(path: Path, seconds: float, rate: float, seed: int = 1) -> int:
    rng = np.random.default_rng(seed)
    block = 1.0  # seconds per rendered piece
    plan = ["S1", "T1", "C1", "C1"]
    frames = 0
    noise_rms = 0.02
    with path.open("wb") as f:
        t = 0.0
        k = 0
        while t < seconds - 1e-9:
            dur = min(block, seconds - t)
            bursts = []
            start = 0.2
            while start < dur - 0.12:
                mode = MODES[plan[k % 4]]
                fmt = "B" if k % 4 == 3 else "A"
                tel = bytes([0x32, 0x44]) + rng.integers(0, 256, 49, dtype=np.uint8).tobytes()
                ebn0 = rng.uniform(20, 30)
                # amplitude for that Eb/N0 given the noise (the channel model's definition, inverted)
                amp = float(np.sqrt(noise_rms ** 2 * bit_rate(mode) * 10 ** (ebn0 / 10) / rate))
                bursts.append(Burst(mode=mode, telegram=tel, frame_format=fmt, start_s=start, amplitude=amp,
                                    freq_offset_hz=float(rng.uniform(-25e3, 25e3))))
                start += 1.5 if dur >= 1.5 else dur
                k += 1
                frames += 1
            x, _ = render(bursts, sample_rate_hz=rate, center_freq_hz=CENTER, duration_s=dur, rng=rng,
                          noise_rms=noise_rms, dc_offset=0.01 + 0.005j)
            f.write(from_complex(x, "cu8"))
            t += dur
    return frames


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--rate", type=float, default=1.6e6)
    ap.add_argument("--workdir", default="/tmp/wmbus-sdr-bench")
    ap.add_argument("--build-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    rate_tag = f"{args.rate / 1e6:g}".replace(".", "M")
    path = work / f"bench_868.625M_{rate_tag}{'' if 'M' in rate_tag else 'M'}_{int(args.seconds)}s.cu8"
    if args.build_only:
        t0 = time.perf_counter()
        n = build(path, args.seconds, args.rate)
        print(f"built {path} ({n} frames) in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        return
    if not path.exists():
        # in a process of its own, so that this one stays small (the decode is forked from it)
        subprocess.run([sys.executable, __file__, "--build-only", "--seconds", str(args.seconds), "--rate",
                        str(args.rate), "--workdir", str(work)], check=True)
    cmd = [sys.executable, "-m", "flowgraphs.cli", "decode", str(path), "--rate", str(args.rate), "--center",
           str(CENTER), "--output", "jsonl", "--quiet"]
    if shutil.which("taskset"):
        cmd = ["taskset", "-c", "0"] + cmd
    out_path = work / "decode.jsonl"
    t0 = time.perf_counter()
    with out_path.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out)
        _, status, usage = os.wait4(proc.pid, 0)  # the decode's own peak, not the capture builder's
    elapsed = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"decode failed: {cmd}")
    peak = usage.ru_maxrss / 1024
    lines = [x for x in out_path.read_text().splitlines() if x.strip()]
    import json
    modes = {}
    for line in lines:
        obj = json.loads(line)
        key = f"{obj['mode']}-{obj['format']}"
        modes[key] = modes.get(key, 0) + 1
    print(f"receive throughput, {args.seconds:g} s of cu8 at {args.rate / 1e6:g} Msps centred {CENTER / 1e6} MHz "
          f"(one core{', taskset' if cmd[0] == 'taskset' else ''})")
    print("| measure | value |\n|---|---|")
    print(f"| wall time (incl. start-up) | {elapsed:.2f} s |")
    print(f"| real-time factor | {args.seconds / elapsed:.1f}x |")
    print(f"| peak RSS | {peak:.0f} MB |")
    print(f"| frames decoded | {len(lines)} ({', '.join(f'{k} {v}' for k, v in sorted(modes.items()))}) |")


if __name__ == "__main__":
    main()
