"""Receive throughput: `wmbus-sdr decode` on a synthetic cu8 capture, one core, against rtl_433 and
rtl_wmbus on the same file.

Builds (once, cached under --workdir) a capture centred at 868.625 MHz: 8-bit quantised noise
with a DC offset, and every ~1.5 s a frame (S1, T1, C1-A, C1-B in turn, 51-byte telegrams, random
carrier offsets within +-25 kHz, Eb/N0 20-30 dB). Then runs each receiver pinned to one CPU
(taskset), --runs times, and prints one table: CPU time (user + sys of the process, which a busy
machine distorts less than wall time), wall time, real-time factor on CPU time, peak memory and
frames found. Ours includes its start-up, which is also measured alone (a decode of the first
0.1 s). rtl_433 (`-R 104 -R 105`, Debian package rtl-433) hears one channel at the tuned centre,
so on this capture (channels at -325 / +325 kHz) it finds no frame: its figure is what its
demodulator costs. rtl_wmbus is run when it is on the PATH (`rtl_wmbus -s`, S+T+C at 1.6 Msps
centred at 868.625 MHz, its own convention), otherwise the table says so.

Ours runs with ``--modes S1,T1,C1`` (the three channels issue #12 measures); with ``--r2`` also with
its default modes, which add R2's ten channels (cut from the S/T/C channeliser's spectra,
dsp.channelizer), a row of its own: what hearing R2 costs.

With ``--live SECONDS`` it also plays the capture at real-time pace over rtl_tcp (`wmbus-sdr
serve-rtltcp`) to `wmbus-sdr rx` (default modes) for that long and prints the CPU share rx reports
in its summary (the status line's figure: the whole process, reader thread included, from the
start of reception; start-up before it not included), the CPU of the whole process over its whole
run (start-up included) and the frame latency rx reports (frame end on air to output).

With ``--compare CHECKOUT`` (another checkout of this project, e.g. a worktree of the main branch)
that tree's decode runs too, interleaved with ours run by run, so a change is measured against
the same machine's load.

    python benchmarks/rx_throughput.py [--seconds 60] [--rate 1.6e6] [--runs 3] [--r2] [--live 60]
                                       [--compare ../main]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dsp.channel import Burst, amplitude_for, render  # noqa: E402
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
                amp = amplitude_for(mode, ebn0, noise_rms=noise_rms, sample_rate_hz=rate)
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


@dataclass(frozen=True, slots=True, kw_only=True)
class Run:
    cpu_s: float  # user + sys
    wall_s: float
    peak_mb: float
    output: str


def run_pinned(cmd: list[str], *, env: dict[str, str] | None = None, cwd: Path = ROOT) -> Run:
    """Run ``cmd`` on CPU 0 (taskset when there is one) and measure its own resources."""
    if shutil.which("taskset"):
        cmd = ["taskset", "-c", "0"] + cmd
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.DEVNULL, env=env, cwd=cwd)
        _, status, usage = os.wait4(proc.pid, 0)  # this process's own figures, not the builder's
        wall = time.perf_counter() - t0
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"failed ({os.waitstatus_to_exitcode(status)}): {' '.join(cmd)}")
        out.seek(0)
        text = out.read().decode(errors="replace")
    return Run(cpu_s=usage.ru_utime + usage.ru_stime, wall_s=wall, peak_mb=usage.ru_maxrss / 1024, output=text)


def median_run(runs: list[Run]) -> Run:
    return sorted(runs, key=lambda r: r.cpu_s)[len(runs) // 2]


def spread(runs: list[Run]) -> str:
    cpu = sorted(r.cpu_s for r in runs)
    return f"best {cpu[0]:.2f} s, median {cpu[len(cpu) // 2]:.2f} s, worst {cpu[-1]:.2f} s"


def count_ours(text: str) -> str:
    modes: dict[str, int] = {}
    lines = [x for x in text.splitlines() if x.strip()]
    for line in lines:
        obj = json.loads(line)
        key = f"{obj['mode']}-{obj['format']}"
        modes[key] = modes.get(key, 0) + 1
    return f"{len(lines)} ({', '.join(f'{k} {v}' for k, v in sorted(modes.items()))})" if lines else "0"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--rate", type=float, default=1.6e6)
    ap.add_argument("--workdir", default="/tmp/wmbus-sdr-bench")
    ap.add_argument("--runs", type=int, default=3, help="runs per receiver (the median CPU time is shown)")
    ap.add_argument("--r2", action="store_true", help="also run ours with its default modes (S1, T1, C1 and R2's ten "
                    "channels)")
    ap.add_argument("--live", type=float, default=0.0, metavar="SECONDS",
                    help="also run `rx` over rtl_tcp for this long and report its CPU share")
    ap.add_argument("--compare", metavar="CHECKOUT", default=None,
                    help="also run the decode of another checkout of this project (e.g. the main branch's), its "
                         "runs interleaved with ours, and print its row beside ours")
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
    ap_env = dict(os.environ)
    ap_env.pop("PYTHONDONTWRITEBYTECODE", None)  # start-up as installed: compiled modules cached
    ap_env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    # not --quiet: the figure includes the summary's work (the tuner's ppm estimate), as a user runs it
    ours = [sys.executable, "-m", "flowgraphs.cli", "decode", "--rate", str(args.rate), "--center", str(CENTER),
            "--output", "jsonl"]
    tiny = work / f"startup_{rate_tag}.cu8"
    with path.open("rb") as f:
        tiny.write_bytes(f.read(int(0.1 * args.rate) * 2))
    run_pinned(ours + [str(tiny)], env=ap_env)  # warm-up: compiles and caches our modules
    startup = median_run([run_pinned(ours + [str(tiny)], env=ap_env) for _ in range(max(3, args.runs))])
    rows = []
    other_env = None
    if args.compare:
        other = Path(args.compare).resolve()
        other_env = dict(ap_env, PYTHONPATH=str(other))
        run_pinned(ours + [str(tiny)], env=other_env, cwd=other)  # warm-up there too
    runs, other_runs = [], []
    for _ in range(args.runs):  # interleaved: both see the same machine
        runs.append(run_pinned(ours + ["--modes", "S1,T1,C1", str(path)], env=ap_env))
        if other_env is not None:
            other_runs.append(run_pinned(ours + ["--modes", "S1,T1,C1", str(path)], env=other_env, cwd=other))
    r = median_run(runs)
    rows.append(("wmbus-sdr decode (S1, T1, C1)", r, count_ours(r.output)))
    if other_runs:
        o = median_run(other_runs)
        rows.append((f"the same, {args.compare} (interleaved)", o, count_ours(o.output)))
    if args.r2:
        r = median_run([run_pinned(ours + [str(path)], env=ap_env) for _ in range(args.runs)])
        rows.append(("wmbus-sdr decode, default modes (S1, T1, C1 and the ten R2 channels)", r, count_ours(r.output)))
    rtl433 = shutil.which("rtl_433")
    rtl_runs: list[Run] = []
    if rtl433:
        cmd = [rtl433, "-r", f"cu8:{path}", "-s", str(int(args.rate)), "-f", str(int(CENTER)), "-R", "104", "-R", "105",
               "-F", "json"]
        rtl_runs = [run_pinned(cmd) for _ in range(args.runs)]
        r = median_run(rtl_runs)
        n = sum(1 for x in r.output.splitlines() if x.startswith("{"))
        rows.append(("rtl_433 -R 104 -R 105 (one channel, at the centre)", r, str(n)))
    rtl_wmbus = shutil.which("rtl_wmbus")
    if rtl_wmbus:
        cmd = ["sh", "-c", f"exec {shlex.quote(rtl_wmbus)} -s < {shlex.quote(str(path))}"]
        r = median_run([run_pinned(cmd) for _ in range(args.runs)])
        n = sum(1 for x in r.output.splitlines() if x.strip())
        rows.append(("rtl_wmbus -s (S1, T1, C1)", r, str(n)))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"receive throughput, {args.seconds:g} s of cu8 at {args.rate / 1e6:g} Msps centred {CENTER / 1e6} MHz, "
          f"one core (taskset), median of {args.runs} run(s), load average {load:.1f} on {os.cpu_count()} CPUs")
    print("| receiver | CPU (user+sys) | wall | real time / CPU | peak RSS | frames |\n|---|---|---|---|---|---|")
    for name, r, frames in rows:
        print(f"| {name} | {r.cpu_s:.2f} s | {r.wall_s:.2f} s | {args.seconds / r.cpu_s:.1f}x | {r.peak_mb:.0f} MB "
              f"| {frames} |")
    if not rtl433:
        print("| rtl_433 | not installed (Debian package rtl-433) | | | | |")
    if not rtl_wmbus:
        print("| rtl_wmbus | not installed (not packaged in Debian; build from github.com/xaelsouth/rtl-wmbus) "
              "| | | | |")
    print(f"\nwmbus-sdr start-up (decode of 0.1 s, imports included): {startup.cpu_s:.2f} s CPU, "
          f"{startup.wall_s:.2f} s wall")
    print(f"wmbus-sdr decode CPU over {len(runs)} runs: {spread(runs)}"
          + (f"; {args.compare}: {spread(other_runs)}" if other_runs else ""))
    if rtl433 and rtl_runs:
        ratio = sorted(r.cpu_s for r in runs)[len(runs) // 2] / sorted(r.cpu_s for r in rtl_runs)[len(rtl_runs) // 2]
        print(f"wmbus-sdr (three channels) / rtl_433 (one channel) CPU: {ratio:.2f}")
    if args.live > 0:
        print(live_rx(path, args.rate, args.live, ap_env))


def live_rx(path: Path, rate: float, seconds: float, env: dict[str, str]) -> str:
    """`rx` fed by `serve-rtltcp` at real-time pace for ``seconds``: its summary line."""
    cli = [sys.executable, "-m", "flowgraphs.cli"]
    server = subprocess.Popen(cli + ["serve-rtltcp", "--port", "0", "--loop", "--rate", str(rate), "--center",
                                     str(CENTER), str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              env=env, cwd=ROOT, text=True)
    try:
        first = server.stderr.readline()  # "serving FILE on HOST:PORT (...)"
        m = re.search(r" on ([0-9.]+):(\d+) ", first)
        if not m:
            raise SystemExit(f"serve-rtltcp did not start: {first!r}")
        with tempfile.TemporaryFile() as err:
            t0 = time.perf_counter()
            rx = subprocess.Popen(cli + ["rx", "--device", f"rtltcp://{m[1]}:{m[2]}", "--rate", str(rate), "--center",
                                         str(CENTER), "--duration", str(seconds), "--output", "jsonl", "--quiet"],
                                  stdout=subprocess.DEVNULL, stderr=err, env=env, cwd=ROOT)
            _, _, usage = os.wait4(rx.pid, 0)  # rx's own figures, start-up included
            wall = time.perf_counter() - t0
            err.seek(0)
            stderr = err.read().decode(errors="replace")
    finally:
        server.terminate()
        server.wait(timeout=30)
    summary = next((x for x in stderr.splitlines() if "frames from" in x), stderr.strip()[-300:])
    cpu = re.search(r"CPU ([0-9.]+) %", summary)
    whole = usage.ru_utime + usage.ru_stime
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"live rx over rtl_tcp, {seconds:g} s at {rate / 1e6:g} Msps: CPU {cpu[1] if cpu else '?'} % of one core "
            f"from the start of reception; whole process {whole:.2f} s CPU over {wall:.1f} s wall = "
            f"{100 * whole / wall:.1f} %, start-up included; load average {load:.1f}\n({summary.strip()})")


if __name__ == "__main__":
    main()
