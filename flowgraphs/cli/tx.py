"""``wmbus-sdr tx``: build the IQ of wM-Bus transmissions (file output; live transmit via SoapySDR)."""

from __future__ import annotations

import argparse
import sys

from .options import add_key_options, single_key

HELP = """\
Modulate telegrams for a mode (S1, S2, T1, T2, C1, C2, N1a-N1f, N2a-N2f, F2, R2) into IQ: preamble,
sync word, coding and CRCs per EN 13757-4, (G)FSK at the mode's chip rate and deviation, optional impairments; written
as cu8 / cs8 / cs16 / cf32 or annotated SigMF (by the output's extension).

A telegram comes from --telegram HEX (a complete frame) or from --frame SPEC: a TOML or JSON file
(or inline JSON) naming the frame kind and its fields, built by the OMS stack with CRCs, CI,
configuration field, encryption and MACs. --set field=value adds or overrides spec fields.

frame kinds: SND-NR SND-IR ACC-NR ACC-DMD RSP-UD (meter) / SND-UD SND-UD2 SND-NKE REQ-UD1 REQ-UD2
             CNF-IR ACK (other station); spec fields: kind manufacturer id version device_type
             security(0/5/7) access(none/no-window/limited/unlimited) synchronous data(hex) acc status
             ci header(short/long) blocks counter key_id fcb direction c_field [ell] [afl]

examples:
  wmbus-sdr tx --mode T1 --out t1_868.95M_1200k.cu8 \\
      --telegram 2E4493157856341233037A2A0020255923C95AAA26D1B2E7493B013EC4A6F6D3529B520EDFF0EA6DEFC99D6D69EBF3
  wmbus-sdr tx --mode C1 --format B --telegram HEX --out c1.sigmf-meta --rate 2.4e6 --center 868.625e6 \\
      --repeat 5 --interval 0.5 --ebn0 15 --offset 20e3
  wmbus-sdr tx --mode N1c --format B --telegram HEX --rate 300e3 --center 169.4375e6 --out n1c.cu8
  wmbus-sdr tx --mode R2 --channel 868.03M --telegram HEX --out r2_ch0.sigmf-meta
  wmbus-sdr tx --mode C2 --frame '{"kind": "CNF-IR", "manufacturer": "ELS", "id": "12345678"}' --dry-run
  wmbus-sdr tx --mode T1 --frame install.toml --set security=5 --key 000102030405060708090A0B0C0D0E0F \
      --out snd_ir.sigmf-meta
"""


def add_parser(sub) -> None:
    p = sub.add_parser("tx", help="modulate telegrams into IQ", description=HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", required=True, help="S1, S2, T1, T2, C1, C2, N1a..N1f, N2a..N2f, F2 or R2")
    p.add_argument("--channel", metavar="FREQ", help="send on this channel instead of the mode's (R2: any of its "
                   "ten, 868.03M + n x 0.06M; default channel 5, 868.33M); the default centre follows it")
    p.add_argument("--telegram", action="append", default=[], metavar="HEX",
                   help="telegram (canonical or with CRCs); repeat the option for several")
    p.add_argument("--frame", action="append", default=[], metavar="SPEC",
                   help="frame spec: a .toml / .json file or inline JSON; repeat for several")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="set a spec field (ell.ci=0x8D for tables); applies to every --frame")
    add_key_options(p, key_file=False, key_help="AES key for frames whose spec asks for security")
    p.add_argument("--format", dest="frame_format", choices=("A", "B"), default="A",
                   help="frame format (C, N, F2: A or B)")
    p.add_argument("--out", help="output file (.cu8 .cs8 .cs16 .cf32 .sigmf-meta)")
    p.add_argument("--device", help="transmit live through a TX device instead of writing a file: soapy:ARGS "
                                    "(e.g. soapy:driver=hackrf), or file:PATH.cu8 / memory:NAME (timed dry run)")
    p.add_argument("--rate", type=float, default=1.2e6, help="sample rate (default 1.2e6)")
    p.add_argument("--center", type=float, help="centre frequency (default: the mode's channel)")
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--interval", type=float, default=0.1, help="seconds between transmissions")
    p.add_argument("--ebn0", type=float, help="add noise for this Eb/N0 (dB)")
    p.add_argument("--offset", type=float, default=0.0, help="carrier offset, Hz")
    p.add_argument("--chip-rate-error", type=float, default=0.0, help="relative, e.g. 0.05")
    p.add_argument("--deviation-error", type=float, default=0.0, help="relative, e.g. -0.1")
    p.add_argument("--drift", type=float, default=0.0, help="carrier drift, Hz/s")
    p.add_argument("--preamble", type=int, help="preamble length in chip pairs (default: the mode's)")
    p.add_argument("--gain", type=float, default=0.0, help="live TX gain in dB (default 0, the safe limit)")
    p.add_argument("--max-gain", type=float, default=0.0, help="raise the TX gain limit (attenuator / shielded "
                   "set-up only)")
    p.add_argument("--any-freq", action="store_true", help="allow a live centre outside the mode's channel")
    p.add_argument("--dry-run", action="store_true", help="print what would be sent, write nothing")


def load_spec(text: str) -> dict:
    """A spec from inline JSON or a .toml / .json file; errors name the file and the position."""
    import json
    import tomllib
    from pathlib import Path

    from mbus.errors import FieldError

    if text.lstrip().startswith("{"):
        try:
            spec = json.loads(text)
        except json.JSONDecodeError as err:
            raise FieldError(f"inline --frame JSON: {err}") from None
    else:
        path = Path(text)
        try:
            raw = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise FieldError(f"--frame {text}: cannot read ({err.strerror or err})") from None
        try:
            spec = json.loads(raw) if path.suffix.lower() == ".json" else tomllib.loads(raw)
        except (json.JSONDecodeError, tomllib.TOMLDecodeError) as err:
            raise FieldError(f"{text}: {err}") from None
    if not isinstance(spec, dict):
        raise FieldError(f"--frame {text[:40]}: a spec is a table of fields, not {type(spec).__name__}")
    return spec


def build_frames(specs: list[str], sets: list[str], key: bytes | None):
    from mbus.builder import build, merge, parse_assignments
    from mbus.errors import FieldError

    over = parse_assignments(sets)
    out = []
    for text in specs:
        spec = load_spec(text)
        try:
            out.append(build(merge(spec, over), key))
        except FieldError as err:
            where = text if not text.lstrip().startswith("{") else "inline spec"
            raise FieldError(f"{where}: {err}") from None
    return out


def _live(args, plan, mode: str) -> int:
    """Transmit through a TX sink of the registry (soapy:ARGS, or file:/memory: for a timed dry run):
    each frame as its own burst, --interval apart. The modulator alone: no channel model, nothing random."""
    import time

    from dsp.modes import MODES
    from sdr.errors import SDRError

    from ..pipelines.transmit import live_burst
    from .options import open_tx

    spec = MODES[mode]
    center = args.center or spec.channel_hz
    # --channel moved the mode's channel (by a carrier offset, see run); the tuner must be near it
    shift = getattr(args, "channel_shift_hz", 0.0)
    target = spec.channel_hz + shift
    if abs(center + args.offset - shift - target) > 50e3 and not args.any_freq:
        raise ValueError(f"{(center + args.offset - shift) / 1e6:.4f} MHz is outside the {mode} channel "
                         f"({target / 1e6:.5g} MHz); add --any-freq if that is intended")
    bursts = [live_burst(plan, tel) for tel in plan.telegrams]
    try:
        sink = open_tx(args.device, sample_rate_hz=args.rate, center_freq_hz=center, gain_db=args.gain,
                       max_gain_db=args.max_gain)
        with sink:
            t_next = sink.now_ns()
            for _ in range(args.repeat):
                for x in bursts:
                    if not sink.hardware_time:
                        time.sleep(max(0.0, (t_next - sink.now_ns()) / 1e9))
                    sink.send(x, at_ns=t_next + int(0.05e9) if sink.hardware_time else None)
                    t_next += int(args.interval * 1e9)
    except SDRError as err:
        print(f"wmbus-sdr tx: {err}", file=sys.stderr)
        return 2
    print(f"sent {args.repeat * len(bursts)} {mode}-{args.frame_format} frames at {center / 1e6:.4f} MHz, gain "
          f"{args.gain:g} dB{' (hardware-timed)' if sink.hardware_time else ''}", file=sys.stderr)
    return 0


def run(args) -> int:
    from dataclasses import replace

    from dsp.modes import MODES
    from dsp.modes import mode as mode_named
    from mbus.errors import DecodeError
    from mbus.frame import normalize

    from ..pipelines.receive import parse_channel
    from ..pipelines.transmit import TxPlan, write_plan
    from .telegram import parse_hex

    try:
        mode = mode_named(args.mode).name
        if args.frame_format == "B" and MODES[mode].sync_b is None:
            raise ValueError(f"mode {mode} has no frame format B")
        if args.channel:
            # another channel of the mode: its distance from the mode's channel is a carrier offset
            # on top of --offset, and the default centre follows the channel
            chan, _ = parse_channel(f"{args.channel}:{mode}")
            args.channel_shift_hz = chan - MODES[mode].channel_hz
            args.offset += args.channel_shift_hz
            if args.center is None:
                args.center = chan
        if args.set and not args.frame:
            raise ValueError("--set changes a --frame spec; there is none")
        if not args.telegram and not args.frame:
            raise ValueError("give --telegram HEX or --frame SPEC")
        telegrams = [built.telegram for built in build_frames(args.frame, args.set, single_key(args))]
        for text in args.telegram:
            fb = normalize(parse_hex(text))
            if fb.truncated:
                raise ValueError(f"telegram {text[:20]}...: shorter than its L-field")
            telegrams.append(fb.canonical)
        plan = TxPlan(mode=mode, telegrams=telegrams, frame_format=args.frame_format, sample_rate_hz=args.rate,
                      center_freq_hz=args.center, repeat=args.repeat, interval_s=args.interval,
                      freq_offset_hz=args.offset, chip_rate_error=args.chip_rate_error,
                      deviation_error=args.deviation_error, drift_hz_per_s=args.drift, preamble_pairs=args.preamble,
                      ebn0_db=args.ebn0)
        if args.dry_run:
            center = args.center or MODES[mode].channel_hz
            from mbus.builder import kind_name

            for t in telegrams:
                print(f"{mode}-{args.frame_format} x{args.repeat} at {center / 1e6:.4f} MHz "
                      f"{args.offset:+.0f} Hz: {kind_name(t)} {t.hex()}")
            return 0
        if args.device:
            return _live(args, replace(plan, center_freq_hz=args.center or MODES[mode].channel_hz), mode)
        if not args.out:
            raise ValueError("give --out FILE (or --dry-run)")
        written = write_plan(plan, args.out)
    except (ValueError, DecodeError, OSError) as err:
        print(f"wmbus-sdr tx: {err}", file=sys.stderr)
        return 2
    from dsp.measure import occupied_bandwidth

    obw, lo, hi = occupied_bandwidth(written.first_frame, args.rate)
    center = written.center_freq_hz
    print(f"wrote {written.path}: {written.frames} {mode}-{args.frame_format} frames, "
          f"{written.n_samples / args.rate:.3f} s at "
          f"{args.rate / 1e6:g} Msps centred {center / 1e6:.4f} MHz; occupied bandwidth (99 %) {obw / 1e3:.1f} kHz "
          f"({(center + lo) / 1e6:.4f}-{(center + hi) / 1e6:.4f} MHz)", file=sys.stderr)
    return 0
