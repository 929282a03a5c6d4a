"""TX -> channel -> RX round trip: N random telegrams per mode and frame format (random length 10-120
bytes, a quarter of them real OMS frames from the frame builder, encrypted under random keys),
through our modulator and the channel model at Eb/N0 20 dB, decoded by the full receiver. Prints
the byte-exact recovery per mode.

The modes of issue #13 (N1a-f, N2a-f, F2, R2) run batched: every frame of a band goes into one long
capture, each channel carrying its frames one after the other (20-60 ms of noise between them), all
channels of the band at once, streamed block by block through an 8-bit ADC into one receiver:

    N   300 ksps centred 169.4375 MHz, the six channels a-f (N1x and N2x share channel x)
    F2  250 ksps centred 433.87 MHz
    R2  1 Msps centred 868.30 MHz, frames on all ten channels 868.03 + n x 0.06 MHz

with each frame's carrier offset and chip rate drawn inside the mode's tolerance (ModeSpec limits:
N +-1.5 / +-2.0 kHz and +-100 ppm, F2 +-16 ppm of the carrier and +-100 ppm, R2 +-10 ppm and +-2 %),
a DC offset and an IQ imbalance (0.3 dB, 2 degrees) on the whole capture. Bidirectional modes (N2x,
F2, R2) alternate meter -> other frames (SND-NR, builder frames of meter kinds) and other -> meter
frames (SND-UD / REQ-UD2 / SND-NKE ... C-fields, builder frames of gateway kinds). A frame counts
when the receiver gives back its exact bytes, frame format and channel at its sync word (+-2 chips);
an encrypted one also has to decrypt and verify under its key. Frames the receiver reports that
were never sent are counted as false frames.

The 868 MHz modes of issue #3 keep their one-frame-per-capture run (1.6 Msps centred 868.625 MHz,
carrier offset within +-25 kHz).

    python benchmarks/tx_roundtrip.py [--count 1000] [--modes N,F2,R2,T1-A,C1-A,C1-B,S1-A]
    (--modes takes bands N / F2 / R2, single modes N1a ... R2, or the 868 MHz cases T1-A ...)
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dsp.channel import Burst, Capture, adc_8bit, amplitude_for, single_burst  # noqa: E402
from dsp.modes import MODES, ModeSpec, rx_mode_for  # noqa: E402
from dsp.phy import frame_chips  # noqa: E402
from flowgraphs.pipelines.receive import Receiver, receive  # noqa: E402
from mbus.builder import build  # noqa: E402
from mbus.keys import KeyStore  # noqa: E402
from mbus.telegram import decode  # noqa: E402
from sdr.types import IQChunk, StreamInfo  # noqa: E402

EBN0_DB = 20.0
# 868 MHz cases of issue #3: case -> (sample rate, band centre, carrier tolerance Hz)
CASES_868 = {"T1-A": (1.6e6, 868.625e6, 25e3), "C1-A": (1.6e6, 868.625e6, 25e3),
             "C1-B": (1.6e6, 868.625e6, 25e3), "S1-A": (1.6e6, 868.625e6, 25e3)}
N_MODES = tuple(f"N{kind}{sub}" for kind in "12" for sub in "abcdef")
# band -> (sample rate, centre, modes, noise rms of the capture); the modes' channels lie inside
BANDS = {"N": (300e3, 169.4375e6, N_MODES, 0.06), "F2": (250e3, 433.87e6, ("F2",), 0.1),
         "R2": (1e6, 868.30e6, ("R2",), 0.1)}
# meter -> other only (phy.md: N1x are unidirectional); every other new mode sends both ways
UPLINK_ONLY = {f"N1{sub}" for sub in "abcdef"}
DC_OFFSET = 0.02 + 0.015j  # of full scale
IQ_GAIN_DB, IQ_PHASE_DEG = 0.3, 2.0
DOWNLINK_C = (0x40, 0x43, 0x4A, 0x4B, 0x53, 0x73, 0x06, 0x00)  # SND-NKE, SND-UD2, REQ-UD1/2, SND-UD, CNF-IR, ACK
GAP_S = (0.02, 0.06)
BLOCK = 1 << 18


@dataclass(frozen=True, slots=True, kw_only=True)
class Sent:
    """One frame placed in a batched capture and what must come back."""

    row: str  # "N2a-B"
    uplink: bool
    telegram: bytes
    key: bytes | None  # encrypted under this key (None: plain bytes)
    channel_hz: float
    sync_sample: int
    chip_samples: float


def tolerances(spec: ModeSpec) -> tuple[float, float]:
    """(carrier offset Hz, relative chip-rate error) the mode's limits allow a transmitter."""
    lim = dict(spec.limits)
    if "carrier_offset_hz" in lim:
        carrier = float(lim["carrier_offset_hz"][1])
    else:
        carrier = float(lim["carrier_error_ppm"][1]) * 1e-6 * spec.channel_hz
    return carrier, float(lim["chip_rate_error_ppm"][1]) * 1e-6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=1000, help="frames per mode and frame format (default 1000)")
    ap.add_argument("--modes", default=",".join([*BANDS, *CASES_868]),
                    help=f"bands {', '.join(BANDS)}, modes N1a ... R2, or 868 MHz cases {', '.join(CASES_868)}")
    ap.add_argument("--seed", type=int, default=2026)
    args = ap.parse_args()
    wanted = [w.strip() for w in args.modes.split(",") if w.strip()]
    rows: list[tuple] = []
    notes: list[str] = []
    t0 = time.perf_counter()
    for band, (rate, center, modes, noise_rms) in BANDS.items():
        chosen = [m for m in modes if band in wanted or m in wanted]
        if chosen:
            r, note = run_band(band, chosen, count=args.count, rate=rate, center=center, noise_rms=noise_rms,
                               seed=args.seed)
            rows += r
            notes.append(note)
    for case in (w for w in wanted if w in CASES_868):
        rows.append(run_868(case, args.count, args.seed))
    unknown = [w for w in wanted if w not in BANDS and w not in CASES_868 and w not in MODES]
    if unknown:
        raise SystemExit(f"--modes: unknown {', '.join(unknown)}")
    print(f"TX -> channel (Eb/N0 {EBN0_DB:g} dB, carrier and chip rate in tolerance, DC, IQ imbalance, 8-bit ADC) "
          f"-> RX round trip ({time.perf_counter() - t0:.0f} s)")
    print("| mode | recovered byte-exact | meter -> other | other -> meter | encrypted, decrypted and verified |\n"
          "|---|---|---|---|---|")
    for name, ok, n, up, down, enc_ok, enc_n, fails in rows:
        print(f"| {name} | {ok} / {n} ({100 * ok / n:.1f} %) | {up} | {down} | {enc_ok} / {enc_n} |"
              + (f" first failures: {fails}" if fails else ""))
    for note in notes:
        print(note)


def run_band(band: str, modes: list[str], *, count: int, rate: float, center: float, noise_rms: float,
             seed: int) -> tuple[list[tuple], str]:
    """Every frame of ``modes`` (``count`` per mode and format) in one capture; rows per mode-format."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    lanes: dict[float, list[tuple[str, ModeSpec, str, bool]]] = {}  # channel -> frames to send in turn
    for name in modes:
        spec = MODES[name]
        for fmt in spec.formats:
            for i in range(count):
                uplink = name in UPLINK_ONLY or i % 2 == 0
                ch = spec.all_channels_hz[i % len(spec.all_channels_hz)]
                lanes.setdefault(ch, []).append((f"{name}-{fmt}", spec, fmt, uplink))
    bursts: list[Burst] = []
    sent: list[Sent] = []
    end = 0
    for ch, todo in lanes.items():
        order = rng.permutation(len(todo))  # the modes and formats of a channel interleaved
        t = int(rng.uniform(*GAP_S) * rate)
        for k in order:
            row, spec, fmt, uplink = todo[k]
            tel, key = _telegram(rng, uplink)
            carrier, chip_tol = tolerances(spec)
            err = float(rng.uniform(-chip_tol, chip_tol))
            b = Burst(mode=spec, telegram=tel, frame_format=fmt, start_s=t / rate,
                      amplitude=amplitude_for(spec, EBN0_DB, noise_rms=noise_rms, sample_rate_hz=rate),
                      freq_offset_hz=ch - spec.channel_hz + float(rng.uniform(-carrier, carrier)), chip_rate_error=err)
            n_chips = len(frame_chips(spec, tel, fmt))
            chip_samples = rate / b.chip_rate_hz
            bursts.append(b)
            sent.append(Sent(row=row, uplink=uplink, telegram=tel, key=key, channel_hz=ch, sync_sample=-1,
                             chip_samples=chip_samples))
            t += int(np.ceil(n_chips * chip_samples)) + int(rng.uniform(*GAP_S) * rate)
        end = max(end, t)
    info = StreamInfo(sample_rate_hz=rate, center_freq_hz=center)
    cap = Capture(bursts, sample_rate_hz=rate, center_freq_hz=center, duration_s=end / rate, rng=rng,
                  noise_rms=noise_rms, dc_offset=DC_OFFSET, iq_gain_db=IQ_GAIN_DB, iq_phase_deg=IQ_PHASE_DEG)
    # each frame's sync word where the channel model placed it
    sent = [replace(s, sync_sample=p.placement.sync_start) for s, p in zip(sent, cap.placed, strict=True)]
    rx_modes = sorted({rx_mode_for(MODES[m]).name for m in modes})
    rx = Receiver(info, rx_modes)
    heard = []
    start = 0
    for block in cap.blocks(BLOCK):
        heard += [f for f in rx.process(IQChunk(samples=adc_8bit(block), info=info, start=start)) if f.crc_ok]
        start += len(block)
    heard += [f for f in rx.flush() if f.crc_ok]
    by_tel: dict[bytes, list] = {}
    for f in heard:
        by_tel.setdefault(f.telegram, []).append(f)
    used: set[int] = set()
    stats: dict[str, list] = {}
    for s in sent:
        st = stats.setdefault(s.row, [0, 0, 0, 0, 0, 0, 0, 0, []])  # ok n up_ok up_n down_ok down_n enc_ok enc_n
        fmt = s.row.rsplit("-", 1)[1]
        match = next((f for f in by_tel.get(s.telegram, ()) if id(f) not in used and f.frame_format == fmt
                      and abs(f.channel_hz - s.channel_hz) < 1.0
                      and abs(f.sample - s.sync_sample) <= 2 * s.chip_samples), None)
        good = match is not None and (
            s.key is None or decode(s.telegram, keys=KeyStore(default=s.key)).decryption == "ok")
        if match is not None:
            used.add(id(match))
        st[0] += good
        st[1] += 1
        st[2 if s.uplink else 4] += good
        st[3 if s.uplink else 5] += 1
        if s.key is not None:
            st[6] += good
            st[7] += 1
        if not good and len(st[8]) < 3:
            st[8].append(f"{s.telegram.hex()} at {s.sync_sample}")
    false_frames = [f for f in heard if id(f) not in used]
    rows = []
    for row in sorted(stats, key=lambda r: (list(modes).index(r.rsplit("-", 1)[0]), r)):
        ok, n, up_ok, up_n, down_ok, down_n, enc_ok, enc_n, fails = stats[row]
        rows.append((row, ok, n, f"{up_ok} / {up_n}", f"{down_ok} / {down_n}" if down_n else "-", enc_ok, enc_n, fails))
        print(f"{row}: {ok}/{n}", file=sys.stderr, flush=True)
    note = (f"{band}: one capture of {end / rate:.0f} s at {rate / 1e3:g} ksps centred {center / 1e6:.4f} MHz, "
            f"{len(sent)} frames on {len(lanes)} channels, false frames {len(false_frames)}, "
            f"{time.perf_counter() - t0:.0f} s to make and decode")
    if false_frames:
        note += " (first: " + ", ".join(f"{f.telegram.hex()} at {f.sample}" for f in false_frames[:3]) + ")"
    return rows, note


def _telegram(rng: np.random.Generator, uplink: bool) -> tuple[bytes, bytes | None]:
    """A quarter: a builder frame of the direction, encrypted; else L, a C-field of the direction and
    random bytes (10-120 in all)."""
    if rng.random() < 0.25:
        return _secure_telegram(rng) if uplink else _secure_downlink(rng)
    n = int(rng.integers(10, 121))
    c = 0x44 if uplink else int(rng.choice(DOWNLINK_C))
    return bytes([n, c]) + rng.integers(0, 256, n - 1, dtype=np.uint8).tobytes(), None


def run_868(case: str, count: int, seed: int) -> tuple:
    """The 868 MHz cases of issue #3: one frame per capture, as they have always run."""
    mode, fmt = case.split("-")
    rate, center, carrier_tol = CASES_868[case]
    info = StreamInfo(sample_rate_hz=rate, center_freq_hz=center)
    rng = np.random.default_rng(seed)
    ok, failures, enc_ok, enc_n = 0, [], 0, 0
    for _ in range(count):
        secure = rng.random() < 0.25  # a quarter: real OMS frames, encrypted (mode 5, 7 or ELL-CTR)
        if secure:
            tel, key = _secure_telegram(rng)
        else:
            n = int(rng.integers(10, 121))
            tel = bytes([n, 0x44]) + rng.integers(0, 256, n - 1, dtype=np.uint8).tobytes()
        x = single_burst(MODES[mode], tel, frame_format=fmt, rng=rng, ebn0_db=EBN0_DB,
                         freq_offset_hz=float(rng.uniform(-carrier_tol, carrier_tol)))
        rx_mode = rx_mode_for(MODES[mode]).name
        frames = [f for f in receive([IQChunk(samples=x, info=info, start=0)], info, [rx_mode]) if f.crc_ok]
        if [f.telegram for f in frames] == [tel] and (
                not secure or decode(tel, keys=KeyStore(default=key)).decryption == "ok"):
            ok += 1
            enc_ok += secure
        else:
            failures.append(tel.hex())
        enc_n += secure
    print(f"{case}: {ok}/{count}", file=sys.stderr, flush=True)
    return (case, ok, count, f"{ok} / {count}", "-", enc_ok, enc_n, failures[:3])


def _secure_telegram(rng) -> tuple[bytes, bytes]:
    """A random meter frame from the builder: mode 5, mode 7 with AFL MAC, or mode 5 inside ELL-CTR."""
    key = rng.integers(0, 256, 16, dtype=np.uint8).tobytes()
    records = "".join(f"0C13{rng.integers(0, 10**8):08d}" for _ in range(int(rng.integers(1, 6))))
    spec = {"kind": str(rng.choice(["SND-NR", "SND-IR", "RSP-UD", "ACC-DMD"])), "manufacturer": "ELS",
            "id": f"{rng.integers(0, 10**8):08d}", "version": int(rng.integers(0, 256)),
            "device_type": int(rng.integers(0, 256)), "acc": int(rng.integers(0, 256)), "data": records}
    variant = int(rng.integers(0, 3))
    spec["security"] = 7 if variant == 1 else 5
    if variant == 1:
        spec["counter"] = int(rng.integers(0, 2**32))
    if variant == 2:
        spec["ell"] = {"ci": 0x8D, "encrypt": True, "session": int(rng.integers(0, 2**29))}
    return build(spec, key).telegram, key


def _secure_downlink(rng) -> tuple[bytes, bytes]:
    """A random gateway frame from the builder: SND-UD / SND-UD2 with records, mode 5 or mode 7."""
    key = rng.integers(0, 256, 16, dtype=np.uint8).tobytes()
    records = "".join(f"0C13{rng.integers(0, 10**8):08d}" for _ in range(int(rng.integers(1, 6))))
    spec = {"kind": str(rng.choice(["SND-UD", "SND-UD2"])), "manufacturer": "ELS",
            "id": f"{rng.integers(0, 10**8):08d}", "version": int(rng.integers(0, 256)),
            "device_type": int(rng.integers(0, 256)), "acc": int(rng.integers(0, 256)), "data": records}
    if rng.random() < 0.5:
        spec["security"] = 5
    else:
        spec["security"], spec["counter"] = 7, int(rng.integers(0, 2**32))
    return build(spec, key).telegram, key


if __name__ == "__main__":
    main()
