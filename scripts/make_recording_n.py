"""Write the bundled 169 MHz recording: recordings/example_169.4375M_240k.sigmf-{data,meta}.

A 0.8 s cu8 capture at 240 ksps (an RTL-SDR's low rates) centred at 169.4375 MHz, made by our own
modulator from example telegrams of recordings/telegrams.txt (some encrypted — keys in
recordings/keys.txt): frames on all six N channels (a, b, e, f at 4.8 kcps, c, d at 2.4 kcps;
formats A and B; N1 and N2 meters alike), two pairs on neighbouring channels at the same time,
with RTL-SDR-like impairments: a common tuner offset of +0.5 kHz (3 ppm, a TCXO dongle) plus each
meter's own carrier error (within the channel's +-1.5 / +-2.0 kHz), chip-rate errors within
+-100 ppm, a DC offset, IQ imbalance, periodic impulsive interference and 8-bit quantisation.
Seeded: the same bytes every time. Each frame is annotated (SigMF) with its mode, format and
telegram.

    python scripts/make_recording_n.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dsp.channel import Burst, Impulses  # noqa: E402
from dsp.modes import MODES  # noqa: E402
from scripts.make_recording import amplitude, telegrams, write_recording  # noqa: E402

RATE = 240e3
CENTER = 169.4375e6
DURATION = 0.8
TUNER_OFFSET = 500.0
NAME = "example_169.4375M_240k"


def main() -> None:
    rng = np.random.default_rng(20261201)
    examples = telegrams()
    # (example index, mode, frame format, start s, Eb/N0 dB, meter carrier error Hz, chip-rate error)
    plan = [(3, "N1a", "A", 0.04, 22, 800.0, 4e-5), (2, "N2b", "B", 0.06, 18, -600.0, -6e-5),
            (0, "N1e", "A", 0.30, 24, -900.0, 8e-5), (4, "N1f", "B", 0.31, 20, 400.0, -3e-5),
            (5, "N1c", "A", 0.05, 21, 1200.0, 5e-5), (6, "N2d", "B", 0.40, 19, -1300.0, -9e-5),
            (1, "N1b", "A", 0.55, 23, 300.0, 2e-5)]
    bursts = []
    for idx, mode_name, fmt, start, ebn0, offset, rate_err in plan:
        mode = MODES[mode_name]
        bursts.append(Burst(mode=mode, telegram=examples[idx][1], frame_format=fmt, start_s=start,
                            amplitude=amplitude(mode, ebn0, RATE), freq_offset_hz=TUNER_OFFSET + offset,
                            chip_rate_error=rate_err))
    write_recording(NAME, bursts, [examples[p[0]][0] for p in plan], rate=RATE, center=CENTER, duration=DURATION,
                    rng=rng, impulses=Impulses(amplitude=0.5, period_s=2e-3, length=(1, 3)),
                    description="wmbus-sdr example capture at 169 MHz: N frames on all six channels made by "
                                "scripts/make_recording_n.py (our modulator, RTL-SDR-like impairments)")
    print(f"wrote recordings/{NAME}.sigmf-data/-meta: {len(bursts)} frames, {DURATION} s at {RATE / 1e3:g} ksps")


if __name__ == "__main__":
    main()
