"""``wmbus-sdr telegram``: decode telegrams given as hex, one or a stream of them."""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter

from mbus import explain, wired
from mbus.afl import FragmentBuffer
from mbus.compact import FormatCache
from mbus.errors import DecodeError
from mbus.keys import KeyStore, parse_key
from mbus.telegram import decode

from ..sinks.text import format_text
from .options import add_key_options, key_store

HELP = """\
Decode a wireless M-Bus telegram given as hex (with or without link-layer CRCs, format A or B
detected) and show every layer: link, ELL, AFL, transport header, security, application data.
Wired M-Bus frames (E5, 10 C A CS 16, 68 L L 68 ... 16) are recognised and decoded too.

With HEX = '-', read lines 'HEX [KEY]' from stdin and write one JSON object per line, in order
(a bad line gives an object with "error" and the telegram part of the line, never its key; the
batch goes on). Lines in rtl_wmbus format ('T1;1;1;...;0x2E44...') and JSON lines in wmbusmeters'
stdin:jsonl shape ({"_": "decode", "telegram": "HEX", "key": "HEX"}, key optional; the key is
this telegram's) are accepted too; blank lines and lines starting with '#' are skipped.

examples:
  wmbus-sdr telegram 2E4493157856341233037A2A0020255923C95AAA26D1B2E7493B013EC4A6F6D3529B520EDFF0EA6DEFC99D6D69EBF3 \\
      --key 0102030405060708090A0B0C0D0E0F11 --output explain
  rtl_wmbus | wmbus-sdr telegram - --keys meters.keys
"""

_HEX_JUNK = re.compile(r"[\s:_-]")


def add_parser(sub) -> None:
    p = sub.add_parser("telegram", help="decode telegrams given as hex", description=HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("hex", metavar="HEX", help="telegram as hex, or '-' to read lines from stdin")
    add_key_options(p)
    p.add_argument("--output", choices=("text", "json", "explain"),
                   help="output form (default: text for one telegram, json for '-')")
    p.add_argument("--format", dest="frame_format", choices=("auto", "A", "B", "none"), default="auto",
                   help="link-layer CRCs in the input: detect (default), format A, format B, or none")
    p.add_argument("--strict", action="store_true", help="treat any problem as an error")


def parse_hex(text: str) -> bytes:
    """Bytes from a hex string; tolerates spaces, ':' and a 0x prefix, and rtl_wmbus lines."""
    s = text.strip()
    if ";" in s:
        s = s.rsplit(";", 1)[1]
    if s[:2].lower() == "0x":
        s = s[2:]
    s = _HEX_JUNK.sub("", s)
    if not s:
        raise ValueError("empty telegram")
    if len(s) % 2:
        raise ValueError(f"odd number of hex digits ({len(s)})")
    try:
        return bytes.fromhex(s)
    except ValueError:
        bad = next((i for i, ch in enumerate(s) if ch not in "0123456789abcdefABCDEF"), 0)
        raise ValueError(f"not hexadecimal: {s[bad]!r} at digit {bad}") from None


def _frame_format(name: str):
    return {"auto": "auto", "A": "A", "B": "B", "none": None}[name]


def _decode(raw: bytes, keys: KeyStore | None, args, fragments=None, formats=None):
    """A wireless Telegram, or a WiredTelegram when the bytes are a wired M-Bus frame (68 L L 68 ...)."""
    if args.frame_format == "auto" and wired.looks_wired(raw):
        return wired.decode(raw, keys=keys, strict=args.strict)
    return decode(raw, keys=keys, frame_format=_frame_format(args.frame_format), fragments=fragments,
                  formats=formats, strict=args.strict)


def run(args) -> int:
    try:
        keys = key_store(args)
    except ValueError as err:
        print(f"wmbus-sdr telegram: {err}", file=sys.stderr)
        return 2
    if args.hex == "-":
        return _run_stream(args, keys)
    output = args.output or "text"
    try:
        t = _decode(parse_hex(args.hex), keys, args)
    except (ValueError, DecodeError) as err:
        print(f"wmbus-sdr telegram: {err}", file=sys.stderr)
        return 1
    if output == "json":
        print(json.dumps(t.to_json(), ensure_ascii=False))
    else:
        print(_render(t, output, parse_hex(args.hex), keys))
    return 0


def _render(t, output: str, raw: bytes = b"", keys: KeyStore | None = None, formats=None) -> str:
    """Text or explain output; explain adds the analysis of every decoder that could apply."""
    if output != "explain":
        return t.describe() if isinstance(t, wired.WiredTelegram) else format_text(t)
    analysis = explain.render_analysis(explain.analyze(raw, keys=keys, formats=formats)) if raw else ""
    if isinstance(t, wired.WiredTelegram):
        return t.describe() + ("\n" + analysis if analysis else "")
    return explain.render(t) + ("\n" + analysis if analysis else "")


def _stream_line(text: str, lineno: int, keys: KeyStore | None) -> tuple[str, KeyStore | None]:
    """(telegram text, key store) of one stdin line: 'HEX [KEY]', an rtl_wmbus line, or a JSON line
    {"_": "decode", "telegram": HEX, "key": HEX}. Errors never quote the key."""
    if text.startswith("{"):
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"line {lineno}: not a JSON object (column {err.colno}: {err.msg})") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("telegram"), str):
            raise ValueError(f"line {lineno}: a JSON line needs \"telegram\": \"HEX\"")
        if obj.get("_", "decode") != "decode":
            raise ValueError(f"line {lineno}: JSON line with \"_\" = {str(obj['_'])[:40]!r}; only \"decode\" is read")
        key = obj.get("key")
        if key is None or (isinstance(key, str) and key.strip().upper() in ("", "NOKEY")):
            return obj["telegram"], keys
        if not isinstance(key, str):
            raise ValueError(f"line {lineno}: \"key\" must be a hex string")
        return obj["telegram"], KeyStore(default=parse_key(key, where=f"line {lineno}"))
    if ";" in text:
        return text, keys
    parts = text.split()
    if len(parts) == 2:
        return parts[0], (keys or KeyStore()).with_default(parse_key(parts[1], where=f"line {lineno}"))
    if len(parts) > 2:
        raise ValueError(f"expected 'HEX [KEY]', found {len(parts)} fields")
    return text, keys


def _echo(text: str) -> str:
    """The part of a bad input line an error may repeat: the telegram, never a key."""
    if text.startswith("{"):
        try:
            obj = json.loads(text)
        except json.JSONDecodeError:
            return "(JSON line not repeated: it may hold a key)"
        telegram = obj.get("telegram") if isinstance(obj, dict) else None
        return telegram[:600] if isinstance(telegram, str) else "(JSON line without a telegram)"
    if ";" in text:
        return text[:600]
    parts = text.split()
    return parts[0][:600] + (" (key not repeated)" if len(parts) > 1 else "")


def _run_stream(args, keys: KeyStore | None) -> int:
    output = args.output or "json"
    fragments = FragmentBuffer()
    formats = FormatCache()
    counts: Counter = Counter()
    write = sys.stdout.write
    dumps = json.JSONEncoder(check_circular=False, ensure_ascii=False).encode
    for lineno, line in enumerate(sys.stdin, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        counts["lines"] += 1
        try:
            hex_text, line_keys = _stream_line(text, lineno, keys)
            t = _decode(parse_hex(hex_text), line_keys, args, fragments, formats)
        except (ValueError, DecodeError) as err:
            counts["error"] += 1
            if output == "json":
                write(dumps({"line": lineno, "input": _echo(text), "error": str(err)}) + "\n")
            else:
                write(f"line {lineno}: error: {err}\n")
            continue
        counts[t.decryption] += 1
        if output == "json":
            write(dumps(t.to_json()) + "\n")
        else:
            raw = parse_hex(hex_text) if output == "explain" else b""
            write(_render(t, output, raw, line_keys) + ("\n\n" if output == "explain" else "\n"))
    sys.stdout.flush()
    summary = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()) if k != "lines")
    print(f"wmbus-sdr telegram: {counts['lines']} lines: {summary or 'nothing decoded'}", file=sys.stderr)
    return 0
