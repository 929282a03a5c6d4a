"""Throughput of `wmbus-sdr telegram -` on one core: mixed vectors, unencrypted and mode 5 with keys.

Runs the real command in a subprocess pinned to one CPU (taskset when available), feeds N lines on
stdin, and prints telegrams/s with and without the interpreter start-up.

    python benchmarks/telegram_throughput.py [--lines 30000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._vectors import even_hex, wireless_vectors  # noqa: E402
from mbus.keys import KeyStore  # noqa: E402
from mbus.telegram import decode  # noqa: E402


def build_lines() -> tuple[list[str], dict]:
    lines, kinds = [], {"not_encrypted": 0, "mode5": 0}
    for row in wireless_vectors():
        raw = even_hex(row["canonical_hex"])
        key = row.get("key") if row.get("key") and len(row["key"]) == 32 else None
        t = decode(raw, keys=KeyStore(default=bytes.fromhex(key)) if key else None)
        if t.problems:
            continue
        if t.decryption == "not_encrypted":
            lines.append(raw.hex())
            kinds["not_encrypted"] += 1
        elif t.decryption == "ok" and t.security_mode == 5:
            lines.append(f"{raw.hex()} {key}")
            kinds["mode5"] += 1
    return lines, kinds


def run(cmd: list[str], data: bytes) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, input=data, capture_output=True, check=True)
    elapsed = time.perf_counter() - t0
    if not proc.stdout and data:
        raise SystemExit("no output")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=30000)
    args = ap.parse_args()
    base, kinds = build_lines()
    lines = (base * (args.lines // len(base) + 1))[: args.lines]
    data = ("\n".join(lines) + "\n").encode()
    cmd = [sys.executable, "-m", "flowgraphs.cli", "telegram", "-"]
    if shutil.which("taskset"):
        cmd = ["taskset", "-c", "0"] + cmd
    env_note = "taskset -c 0" if cmd[0] == "taskset" else "no taskset: not pinned"
    startup = min(run(cmd, b"") for _ in range(3))
    total = min(run(cmd, data) for _ in range(3))
    n5 = sum(1 for x in lines if " " in x)
    print(f"wmbus-sdr telegram - ({env_note}); input: {len(lines)} lines from {len(base)} distinct vectors "
          f"({kinds['not_encrypted']} unencrypted, {kinds['mode5']} mode 5), {n5} mode-5 lines")
    print("| measure | value |\n|---|---|")
    print(f"| start-up (empty input) | {startup * 1000:.0f} ms |")
    print(f"| wall time, {len(lines)} telegrams | {total:.2f} s |")
    print(f"| telegrams/s including start-up | {len(lines) / total:,.0f} |")
    print(f"| telegrams/s after start-up | {len(lines) / (total - startup):,.0f} |")
    print(f"(cores visible: {os.cpu_count()})")


if __name__ == "__main__":
    main()
