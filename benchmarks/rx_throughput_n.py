"""Receive throughput at 169 MHz: `wmbus-sdr decode` on a synthetic N-mode cu8 capture, one core.

Builds (once, cached under --workdir) a capture centred at 169.4375 MHz at 300 ksps (an RTL-SDR's
low rates): 8-bit quantised noise with a DC offset, and every ~2 s a frame on one of the six N
channels in turn (a-f, formats A and B, 51-byte telegrams, carrier offsets within the channel's
tolerance, Eb/N0 15-30 dB). Then runs the real command pinned to one CPU and prints the real-time
factor, peak memory and frames found (issue #13: >= 100x real time).

    python benchmarks/rx_throughput_n.py [--seconds 120] [--rate 300e3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

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
    ap.add_argument("--workdir", default="/tmp/wmbus-sdr-bench")
    args = ap.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    path = work / f"bench_169.4375M_{args.rate / 1e3:g}k_{int(args.seconds)}s.cu8"
    if not path.exists():
        n = build(path, args.seconds, args.rate)
        print(f"built {path} ({n} frames)", file=sys.stderr)
    cmd = [sys.executable, "-m", "flowgraphs.cli", "decode", str(path), "--rate", str(args.rate), "--center",
           str(CENTER), "--output", "jsonl", "--quiet"]
    if shutil.which("taskset"):
        cmd = ["taskset", "-c", "0"] + cmd
    out_path = work / "decode_n.jsonl"
    t0 = time.perf_counter()
    with out_path.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out)
        _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"decode failed: {cmd}")
    lines = [json.loads(x) for x in out_path.read_text().splitlines() if x.strip()]
    modes: dict[str, int] = {}
    for obj in lines:
        key = f"{obj['mode']}-{obj['format']}"
        modes[key] = modes.get(key, 0) + 1
    print(f"receive throughput, {args.seconds:g} s of cu8 at {args.rate / 1e3:g} ksps centred {CENTER / 1e6} MHz, "
          f"six N channels (one core{', taskset' if cmd[0] == 'taskset' else ''})")
    print("| measure | value |\n|---|---|")
    print(f"| wall time (incl. start-up) | {elapsed:.2f} s |")
    print(f"| real-time factor | {args.seconds / elapsed:.1f}x |")
    print(f"| peak RSS | {usage.ru_maxrss / 1024:.0f} MB |")
    print(f"| frames decoded | {len(lines)} ({', '.join(f'{k} {v}' for k, v in sorted(modes.items()))}) |")


if __name__ == "__main__":
    main()
