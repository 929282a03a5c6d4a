"""Live gateway turnaround on this machine: from the end of a meter frame to a modulated reply
(the chunk still filling, receiving it, building and modulating the answer), median of 5 frames,
1.6 Msps input centred 868.625 MHz, reply at 1.2 Msps. Compare with the windows: T2 2-3 ms,
S2 3-50 ms, C2 99.5-100.5 ms.

    python benchmarks/gateway_turnaround.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flowgraphs.gateway_live import measure_turnaround  # noqa: E402
from flowgraphs.session import PROFILES  # noqa: E402
from sdr.types import StreamInfo  # noqa: E402

CHUNKS = (4096, 16384, 32768)


def main() -> None:
    info = StreamInfo(sample_rate_hz=1.6e6, center_freq_hz=868.625e6)
    print("| mode | window | " + " | ".join(f"chunk {c}" for c in CHUNKS) + " |")
    print("|---|---|" + "---|" * len(CHUNKS))
    for name, p in PROFILES.items():
        cells = [measure_turnaround(info, p, c, 1.2e6, repeats=5) * 1e3 for c in CHUNKS]
        window = f"{p.window_s[0] * 1e3:g}-{p.window_s[1] * 1e3:g} ms"
        print(f"| {name} | {window} | " + " | ".join(f"{v:.1f} ms" for v in cells) + " |", flush=True)


if __name__ == "__main__":
    main()
