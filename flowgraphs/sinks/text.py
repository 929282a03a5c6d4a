"""The ``text`` output: one head line per frame (UTC time when the source has a clock, seconds
from the stream's start, mode, CRC, signal, absolute sample index), then the telegram's meter,
security outcome and records, one per line; a blank line after each frame."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mbus import explain

from .base import utc_iso

if TYPE_CHECKING:
    from mbus.telegram import Telegram

    from ..pipelines.receive import RxFrame


def text_event(frame: RxFrame, telegram: Telegram | None) -> str:
    when = f"{utc_iso(frame.time_ns)}  " if frame.time_ns is not None else ""
    head = (f"{when}{frame.t_s:9.4f} s  {frame.mode}-{frame.frame_format or '?'}  "
            f"{'CRC ok' if frame.crc_ok else 'BAD ' + frame.reason}  RSSI {frame.rssi_dbfs:6.1f} dBFS  "
            f"SNR {frame.snr_db:5.1f} dB  offset {frame.freq_offset_hz / 1e3:+6.1f} kHz  "
            f"chip rate {frame.chip_rate_hz / 1e3:7.3f} kcps  sample {frame.sample}")
    if telegram is not None:
        return f"{head}\n{format_text(telegram)}\n"
    if not frame.crc_ok:
        return f"{head}\n  {frame.telegram.hex()}\n"
    return head + "\n"


def format_text(t: Telegram) -> str:
    """A decoded telegram in a few lines: meter, type, C-field, CI chain, security, records, problems."""
    m = t.meter
    head = (f"{m.manufacturer_code} {m.id}  {m.device_type_name} (v{m.version:02x})  {t.link.c_field_name}  "
            f"CI {' '.join(f'{ci:02x}' for ci in t.ci_chain) or '-'}")
    if t.security_mode is not None:
        head += f"  mode {t.security_mode}"
    if t.access_number is not None:
        head += f"  ACC {t.access_number}"
    lines = [head, f"  {t.decryption}: {t.message}"]
    if t.records_outcome == "format_unknown":
        lines.append("  format_unknown: compact frame whose format has not been seen in a full frame yet")
    if t.link.address != m:
        lines.append(f"  via {t.link.address.describe()}")
    for rec in t.records:
        lines.append("  " + rec.describe())
    if not t.records and t.payload:
        lines.append(f"  payload {t.payload.hex()}")
    lines += explain.problem_lines(t, "  ")
    return "\n".join(lines)
