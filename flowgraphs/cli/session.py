"""``wmbus-sdr session``: a gateway and a meter emulator in a simulated radio channel."""

from __future__ import annotations

import argparse
import sys

from .options import add_key_options, single_key

HELP = """\
Run a complete bidirectional dialogue between a gateway and a meter emulator joined by a simulated
radio channel (sample-exact clock, white noise, propagation delay). Both stations modulate with
our TX and decode with the full receiver; the log shows every frame, the response delay each
station measured against the mode's window (t_RO, phy.md §6) and the true delay.

dialogues:
  installation  meter SND-IR -> gateway CNF-IR, then the meter's SND-NR
  access        meter ACC-DMD -> gateway ACK -> REQ-UD2 -> meter RSP-UD -> gateway SND-NKE

windows (phy.md §6.1): T2 2-3 ms (T1 up, 868.30 MHz Manchester down), S2 3-50 ms, C2 fast
99.5-100.5 ms (C1 up, 869.525 MHz GFSK down), R2 (868.33 MHz both ways) other -> meter 3-50 ms and
the meter's reply 10 ms-10 s, F2 (433.82 MHz both ways) other -> meter fast 99.5-100.5 ms and the
meter's reply 3 ms-4 s. N2 has no dialogue: the digest's N2 window is a conflict between two vendors
(ST 99.5-100.5 ms, Silicon Labs 1099.5-1100.5 / 2099.5-2100.5 ms) and has no meter reply window;
--mode N2a ... says so. Exit status 0 when the dialogue completed with every response inside its
window, 1 otherwise, 2 for a mode without a dialogue or a bad option.

examples:
  wmbus-sdr session --mode T2 --dialogue access --key 000102030405060708090A0B0C0D0E0F
  wmbus-sdr session --mode C2 --dialogue installation --ebn0 12 --out c2_install.sigmf-meta
  wmbus-sdr session --mode T2 --dialogue installation --turnaround 3.5e-3   # a gateway too slow for T2
  wmbus-sdr session --mode R2 --dialogue access --key 000102030405060708090A0B0C0D0E0F
"""


def add_parser(sub) -> None:
    p = sub.add_parser("session", help="gateway <-> meter dialogue in a simulated channel", description=HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", default="T2", help="T2, S2, C2, R2 or F2 (default T2)")
    p.add_argument("--dialogue", default="installation", choices=("installation", "access"))
    p.add_argument("--ebn0", type=float, default=20.0, help="channel Eb/N0 in dB (default 20)")
    add_key_options(p, key_file=False, key_help="meter key: frames with data go out in security mode 5")
    p.add_argument("--turnaround", type=float, help="seconds from a frame's end to the reply (default: the "
                   "middle of the window)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", help="also write the whole session as a recording (.sigmf-meta, .cu8, ...)")


def run(args) -> int:
    from ..pipelines.transmit import write_recording
    from ..stations.session import DIALOGUES, channel_recording, profile_for

    try:
        profile_for(args.mode)  # a mode without a dialogue: the fact that is missing
        key = single_key(args)
        if args.seed < 0:
            raise ValueError("--seed must be 0 or more")
        if args.turnaround is not None and not 0 <= args.turnaround <= 2.0:
            raise ValueError("--turnaround is in seconds, between 0 and 2")
    except ValueError as err:
        print(f"wmbus-sdr session: {err}", file=sys.stderr)
        return 2
    log, ch = DIALOGUES[args.dialogue](args.mode, ebn0_db=args.ebn0, key=key, seed=args.seed,
                                       turnaround_s=args.turnaround)
    print(log.text())
    if args.out:
        try:
            rec = channel_recording(ch)
            path = write_recording(args.out, rec.blocks, rec.annotations, sample_rate_hz=ch.info.sample_rate_hz,
                                   center_freq_hz=ch.info.center_freq_hz)
        except (ValueError, OSError) as err:
            print(f"wmbus-sdr session: {err}", file=sys.stderr)
            return 2
        print(f"wrote {path}: {rec.n_samples / ch.info.sample_rate_hz:.3f} s at {ch.info.sample_rate_hz / 1e6:g} Msps "
              f"centred {ch.info.center_freq_hz / 1e6:.4f} MHz", file=sys.stderr)
    ok = log.completed and all(e.in_window for e in log.delays())
    return 0 if ok else 1
