"""Write the bundled recording: recordings/example_868.625M_2M4.sigmf-{data,meta}.

A 2 s cu8 capture at 2.4 Msps centred at 868.625 MHz, made by our own modulator from the example
telegrams of recordings/telegrams.txt (S1, T1, C1 format A and B; some encrypted — keys in
recordings/keys.txt), with RTL-SDR-like impairments: a common tuner offset of +9 kHz (about
10 ppm) plus each meter's own crystal error, T1 chip-rate errors of a few percent, a DC offset,
IQ imbalance, periodic impulsive interference and 8-bit quantisation. Seeded: the same bytes every
time. Each frame is annotated (SigMF) with its mode, format and telegram.

    python scripts/make_recording.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dsp.channel import Burst, Capture, Impulses, amplitude_for  # noqa: E402
from dsp.modes import MODES  # noqa: E402
from flowgraphs.pipelines.transmit import sigmf_annotations  # noqa: E402
from sdr.file import IQWriter  # noqa: E402

RATE = 2.4e6
CENTER = 868.625e6
DURATION = 2.0
NOISE_RMS = 0.02
TUNER_OFFSET = 9e3


def telegrams() -> list[tuple[str, bytes]]:
    lines = (ROOT / "recordings" / "telegrams.txt").read_text().splitlines()
    out, title = [], ""
    for line in lines:
        if line.startswith("#"):
            title = line[1:].strip()
        elif line.strip():
            out.append((title, bytes.fromhex(line.strip())))
    return out


def amplitude(mode, ebn0_db: float, rate: float) -> float:
    """The burst amplitude that gives ``ebn0_db`` against NOISE_RMS."""
    return amplitude_for(mode, ebn0_db, noise_rms=NOISE_RMS, sample_rate_hz=rate)


def write_recording(name: str, bursts: list[Burst], titles: list[str], *, rate: float, center: float,
                    duration: float, rng: np.random.Generator, impulses: Impulses, description: str) -> Path:
    """Render ``bursts`` with RTL-SDR-like impairments (DC offset, IQ imbalance, clicks, 8-bit) into
    recordings/NAME.sigmf-{data,meta}, each frame annotated with its title; the path without suffix."""
    cap = Capture(bursts, sample_rate_hz=rate, center_freq_hz=center, duration_s=duration, rng=rng,
                  noise_rms=NOISE_RMS, dc_offset=0.015 - 0.01j, iq_gain_db=0.4, iq_phase_deg=2.0,
                  impulses=impulses)
    notes = sigmf_annotations(cap.in_capture, cap.n_samples)
    for note, title in zip(notes, titles, strict=True):
        note["core:comment"] = title
    base = ROOT / "recordings" / name
    with IQWriter(f"{base}.sigmf-meta", fmt="cu8", sample_rate_hz=rate, center_freq_hz=center, annotations=notes,
                  description=description) as out:
        for block in cap.blocks():
            out.write(block)
    return base


def main() -> None:
    rng = np.random.default_rng(20261125)
    examples = telegrams()
    # (example index, mode, frame format, Eb/N0 dB, meter crystal offset Hz, chip-rate error)
    plan = [(0, "S1", "A", 24, 4e3, 0.0), (1, "T1", "A", 22, -12e3, 0.035), (2, "C1", "A", 26, 6e3, 0.0),
            (3, "C1", "B", 20, -3e3, 0.0), (4, "T1", "A", 18, 15e3, -0.04), (5, "C1", "A", 25, -8e3, 0.0),
            (6, "C1", "A", 25, -8e3, 0.0), (7, "S1", "A", 21, -6e3, 0.0)]
    bursts = []
    t = 0.06
    for idx, mode_name, fmt, ebn0, offset, rate_err in plan:
        mode = MODES[mode_name]
        bursts.append(Burst(mode=mode, telegram=examples[idx][1], frame_format=fmt, start_s=t,
                            amplitude=amplitude(mode, ebn0, RATE), freq_offset_hz=TUNER_OFFSET + offset,
                            chip_rate_error=rate_err))
        t += 0.23
    base = write_recording("example_868.625M_2M4", bursts, [examples[p[0]][0] for p in plan], rate=RATE,
                           center=CENTER, duration=DURATION, rng=rng, impulses=Impulses(amplitude=0.5),
                           description="wmbus-sdr example capture: S1, T1, C1-A, C1-B frames made by "
                                       "scripts/make_recording.py (our modulator, RTL-SDR-like impairments)")
    print(f"wrote {base}.sigmf-data/-meta: {len(bursts)} frames, {DURATION} s at {RATE / 1e6} Msps")


if __name__ == "__main__":
    main()
