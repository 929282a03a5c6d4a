"""``wmbus-sdr decode``: IQ recording (or stdin) -> link frames -> OMS stack -> text / jsonl / rtlwmbus."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from mbus.compact import FormatCache
from mbus.errors import DecodeError
from mbus.keys import KeyStore
from mbus.telegram import decode as decode_telegram
from sdr.errors import SDRError

from .telegram import format_text

if TYPE_CHECKING:  # numpy and scipy are imported only when a recording is decoded
    from sdr.file import FileSource

    from ..receive import Receiver, RxFrame

FORMATS = ("cu8", "cs8", "cs16", "cf32")
DEFAULT_MODES = ("S1", "T1", "C1")

HELP = """\
Decode wireless M-Bus frames from an IQ recording: every S1, T1 and C1 (format A and B) frame in
the captured band, with CRC check, signal figures and the OMS decoding of its content.

Sample format, rate and centre frequency come from SigMF metadata or the file name
(rtlsdr_868.950M_1M6_x.cu8, g001_868.95M_1200k.cu8); otherwise give --format, --rate, --center.
A capture centred at 868.625 MHz with >= 1.6 Msps hears S (868.30) and T/C (868.95) at once.

examples:
  wmbus-sdr decode recordings/example_868.625M_2M4.sigmf-meta --keys recordings/keys.txt
  rtl_sdr -f 868.95M -s 1.6M - | wmbus-sdr decode - --format cu8 --rate 1.6e6 --center 868.95e6 --output rtlwmbus
"""


def add_parser(sub) -> None:
    p = sub.add_parser("decode", help="decode frames from an IQ recording", description=HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", metavar="FILE", help="recording (cu8/cs8/cs16/cf32, .sigmf-meta, .wav) or '-'")
    p.add_argument("--format", dest="fmt", choices=FORMATS, help="sample format (default: from the file)")
    p.add_argument("--rate", type=float, help="sample rate in samples/s (default: from the file)")
    p.add_argument("--center", type=float, help="centre frequency in Hz (default: from the file)")
    p.add_argument("--modes", default=",".join(DEFAULT_MODES), help="modes to receive (default: S1,T1,C1)")
    keys = p.add_mutually_exclusive_group()
    keys.add_argument("--key", metavar="K", help="AES-128 key for any meter")
    keys.add_argument("--keys", metavar="FILE", help="key file: lines 'METER_ID [MANUFACTURER] KEY'")
    p.add_argument("--output", choices=("text", "jsonl", "rtlwmbus"), default="text")
    p.add_argument("--show-bad", action="store_true", help="also print frames that fail their CRC")
    p.add_argument("--no-blank", action="store_true", help="do not blank impulsive interference")
    p.add_argument("--quiet", action="store_true", help="no progress or summary on stderr")


def run(args) -> int:
    from sdr.file import FileSource

    from ..receive import Receiver

    try:
        keys = KeyStore.from_file(args.keys) if args.keys else (
            KeyStore(default=bytes.fromhex(args.key)) if args.key else None)
        if args.key and len(args.key) != 32:
            raise ValueError("--key: an AES-128 key has 32 hex digits")
        source = FileSource(args.file, fmt=args.fmt, sample_rate_hz=args.rate, center_freq_hz=args.center)
        rx = Receiver(source.info, [m.strip() for m in args.modes.split(",") if m.strip()],
                      blank_impulses=not args.no_blank)
    except (ValueError, SDRError) as err:
        print(f"wmbus-sdr decode: {err}", file=sys.stderr)
        return 2
    formats = FormatCache()
    out = sys.stdout
    counts: Counter = Counter()
    t0 = time.perf_counter()
    last_progress = t0
    info = source.info
    total_s = _duration(args.file, source)
    wall0 = datetime.now()
    try:
        for chunk in source:
            for frame in rx.process(chunk):
                _emit(frame, args, keys, formats, out, counts, wall0)
            now = time.perf_counter()
            if not args.quiet and now - last_progress > 2.0 and (total_s is None or total_s > 10):
                done = chunk.end / info.sample_rate_hz
                of = f" of {total_s:.1f} s ({100 * done / total_s:.0f} %)" if total_s else ""
                print(f"\r{done:.1f} s{of}, {counts['frames']} frames", end="", file=sys.stderr, flush=True)
                last_progress = now
        for frame in rx.flush():
            _emit(frame, args, keys, formats, out, counts, wall0)
    except OSError as err:
        print(f"\nwmbus-sdr decode: {args.file}: {err}", file=sys.stderr)
        return 1
    out.flush()
    if not args.quiet:
        _summary(rx, source, counts, time.perf_counter() - t0)
    return 0


def _duration(path: str, source: FileSource) -> float | None:
    import os

    from sdr.formats import BYTES_PER_SAMPLE
    if path == "-" or source.fmt not in BYTES_PER_SAMPLE:
        return None
    try:
        return os.path.getsize(source.data_path) / BYTES_PER_SAMPLE[source.fmt] / source.info.sample_rate_hz
    except OSError:
        return None


def _emit(frame: RxFrame, args, keys, formats, out, counts: Counter, wall0: datetime) -> None:
    if not frame.crc_ok:
        counts[f"rejected {frame.reason}"] += 1
        if not args.show_bad:
            return
    else:
        counts["frames"] += 1
        counts[f"{frame.mode}"] += 1
    decoded = None
    if frame.crc_ok:
        try:
            decoded = decode_telegram(frame.telegram, keys=keys, frame_format=None, formats=formats)
        except DecodeError as err:
            counts["undecodable"] += 1
            decoded = err
    if args.output == "jsonl":
        obj = frame_json(frame)
        obj["decoded"] = decoded.to_json() if decoded is not None and not isinstance(decoded, Exception) else None
        if isinstance(decoded, Exception):
            obj["decode_error"] = str(decoded)
        out.write(json.dumps(obj, ensure_ascii=False) + "\n")
    elif args.output == "rtlwmbus":
        if frame.crc_ok:
            out.write(rtlwmbus_line(frame, wall0) + "\n")
    else:
        head = (f"{frame.t_s:9.4f} s  {frame.mode}-{frame.frame_format or '?'}  "
                f"{'CRC ok' if frame.crc_ok else 'BAD ' + frame.reason}  RSSI {frame.rssi_dbfs:6.1f} dBFS  "
                f"SNR {frame.snr_db:5.1f} dB  offset {frame.freq_offset_hz / 1e3:+6.1f} kHz  "
                f"chip rate {frame.chip_rate_hz / 1e3:7.3f} kcps")
        out.write(head + "\n")
        if decoded is not None and not isinstance(decoded, Exception):
            out.write(format_text(decoded) + "\n")
        elif not frame.crc_ok:
            out.write(f"  {frame.telegram.hex()}\n")
        out.write("\n")


def frame_json(frame: RxFrame) -> dict:
    return {"mode": frame.mode, "format": frame.frame_format, "telegram": frame.telegram.hex(),
            "crc_ok": frame.crc_ok, "reason": frame.reason, "t_s": round(frame.t_s, 6), "sample": frame.sample,
            "rssi_dbfs": round(frame.rssi_dbfs, 2), "noise_dbfs": round(frame.noise_dbfs, 2),
            "snr_db": round(frame.snr_db, 2), "freq_offset_hz": round(frame.freq_offset_hz, 1),
            "chip_rate_hz": round(frame.chip_rate_hz, 1), "channel_hz": frame.channel_hz,
            "code_violations": frame.violations}


def rtlwmbus_line(frame: RxFrame, wall0: datetime) -> str:
    """rtl_wmbus's line: MODE;CRC_OK;3OUTOF6OK;TIMESTAMP;PACKET_RSSI;CURRENT_RSSI;LINK_LAYER_IDENT_NO;0xHEX."""
    stamp = (wall0 + timedelta(seconds=frame.t_s)).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    ident = frame.telegram[4:8][::-1].hex() if len(frame.telegram) >= 8 else "00000000"
    three = 1 if frame.mode.startswith("T") and frame.violations == 0 else (1 if not frame.mode.startswith("T") else 0)
    rssi = int(round(frame.rssi_dbfs))
    noise = int(round(frame.noise_dbfs))
    return f"{frame.mode};{int(frame.crc_ok)};{three};{stamp};{rssi};{noise};{ident};0x{frame.telegram.hex()}"


def _summary(rx: Receiver, source: FileSource, counts: Counter, elapsed: float) -> None:
    dur = rx.samples_in / source.info.sample_rate_hz
    modes = ", ".join(f"{m} {counts[m]}" for m in rx.modes if counts[m])
    rejects = ", ".join(f"{k.split(' ', 1)[1]} {v}" for k, v in sorted(counts.items()) if k.startswith("rejected"))
    speed = f"{dur / elapsed:.1f}x real time" if elapsed > 0 else ""
    print(f"\r{source.info.source}: {dur:.2f} s of IQ at {source.info.sample_rate_hz / 1e6:g} Msps, "
          f"{source.info.center_freq_hz / 1e6:.3f} MHz: {counts['frames']} frames ({modes or 'none'}); "
          f"rejected: {rejects or 'none'}; {speed}", file=sys.stderr)
    if source.trailing_bytes:
        print(f"  note: the last {source.trailing_bytes} bytes do not form a whole {source.fmt} sample "
              "(file truncated?) and were ignored", file=sys.stderr)
    if source.bad_samples:
        print(f"  note: {source.bad_samples} samples were not finite (NaN/inf) and were zeroed", file=sys.stderr)
