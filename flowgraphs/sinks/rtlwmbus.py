"""The ``rtlwmbus`` output: rtl_wmbus's line, which wmbusmeters reads with ``stdin:rtlwmbus``:
``MODE;CRC_OK;3OUTOF6OK;TIMESTAMP;PACKET_RSSI;CURRENT_RSSI;LINK_LAYER_IDENT_NO;0xHEX``.

TIMESTAMP (``YYYY-MM-DD HH:MM:SS.mmm``, UTC) is the frame's time from the sample clock when the
source has one, so it stays true across gaps and reconnects; without a clock (a raw recording
without metadata) it is the time the line is written, as rtl_wmbus itself prints, never a time
made up for the frame. wmbusmeters skips this field.

PACKET_RSSI and CURRENT_RSSI are the frame's signal and the noise floor before it, as whole
numbers. wmbusmeters reads PACKET_RSSI (when it is at most 4 characters) as ``rssi_dbm``; the
receiver measures dBFS, so both columns are ``dBFS + cal_offset_db`` (``--cal-offset DB``, default
0: the columns are then plain dBFS, not dBm). Frames that fail their CRC are not written
(wmbusmeters would reject them)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from .base import lines, utc_datetime

if TYPE_CHECKING:
    from mbus.telegram import Telegram

    from ..pipelines.receive import RxFrame
    from .base import Sink, SinkOptions


def rtlwmbus_event(frame: RxFrame, telegram: Telegram | None, *, cal_offset_db: float = 0.0) -> str | None:
    if not frame.crc_ok:
        return None
    when = utc_datetime(frame.time_ns) if frame.time_ns is not None else datetime.now(UTC)
    stamp = when.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    ident = frame.telegram[4:8][::-1].hex() if len(frame.telegram) >= 8 else "00000000"
    three = 0 if frame.mode.startswith("T") and frame.violations else 1  # 3-of-6 coding only in T modes
    rssi = int(round(frame.rssi_dbfs + cal_offset_db))
    noise = int(round(frame.noise_dbfs + cal_offset_db))
    return f"{frame.mode};{int(frame.crc_ok)};{three};{stamp};{rssi};{noise};{ident};0x{frame.telegram.hex()}"


def rtlwmbus_sink(options: SinkOptions) -> Sink:
    """``--output rtlwmbus``: lines on ``options.out``, signal columns shifted by ``options.cal_offset_db``."""
    offset = options.cal_offset_db

    def event(frame: RxFrame, telegram: Telegram | None) -> str | None:
        return rtlwmbus_event(frame, telegram, cal_offset_db=offset)
    return lines(event)(options)
