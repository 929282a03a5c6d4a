"""Live turnaround on this machine, for both roles: from the end of a received frame to a modulated
answer (the chunk still filling, receiving it, building and modulating the answer), median and
worst of 20 frames (other sample phases and noise), 1.6 Msps input, answer at 1.2 Msps.

- gateway: hears a meter's SND-IR on the uplink (input centred 868.625 MHz), answers CNF-IR;
- meter: hears a REQ-UD2 on the downlink (input 250 kHz below the downlink channel), answers RSP-UD.

Compare with the windows: T2 2-3 ms, S2 3-50 ms, C2 99.5-100.5 ms.

    python benchmarks/gateway_turnaround.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flowgraphs.stations.gateway_live import turnarounds  # noqa: E402
from flowgraphs.stations.meter_live import downlink_center  # noqa: E402
from flowgraphs.stations.session import PROFILES  # noqa: E402
from sdr.types import StreamInfo  # noqa: E402

CHUNKS = (4096, 16384, 32768)


def main() -> None:
    print("| role | mode | window | " + " | ".join(f"chunk {c} median / worst" for c in CHUNKS) + " |")
    print("|---|---|---|" + "---|" * len(CHUNKS))
    for role in ("gateway", "meter"):
        for name, p in PROFILES.items():
            if name not in ("T2", "S2", "C2"):  # the live stations' modes (R2 / F2: `session` only)
                continue
            center = 868.625e6 if role == "gateway" else downlink_center(p)
            info = StreamInfo(sample_rate_hz=1.6e6, center_freq_hz=center)
            cells = [np.array(turnarounds(info, p, c, 1.2e6, repeats=20, role=role)) * 1e3 for c in CHUNKS]
            window = f"{p.window_s[0] * 1e3:g}-{p.window_s[1] * 1e3:g} ms"
            print(f"| {role} | {name} | {window} | "
                  + " | ".join(f"{np.median(v):.1f} / {v.max():.1f} ms" for v in cells) + " |", flush=True)


if __name__ == "__main__":
    main()
