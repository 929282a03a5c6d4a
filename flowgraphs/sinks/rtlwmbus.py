"""The ``rtlwmbus`` output: rtl_wmbus's line, which wmbusmeters reads with ``stdin:rtlwmbus``:
``MODE;CRC_OK;3OUTOF6OK;TIMESTAMP;PACKET_RSSI;CURRENT_RSSI;LINK_LAYER_IDENT_NO;0xHEX``.

TIMESTAMP is the frame's UTC time when the source has a clock; without one it is the time the
line is written (what rtl_wmbus itself prints), never a time made up for the frame. Frames that
fail their CRC are not written (wmbusmeters would reject them)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from .base import utc_datetime

if TYPE_CHECKING:
    from mbus.telegram import Telegram

    from ..pipelines.receive import RxFrame


def rtlwmbus_event(frame: RxFrame, telegram: Telegram | None) -> str | None:
    if not frame.crc_ok:
        return None
    when = utc_datetime(frame.time_ns) if frame.time_ns is not None else datetime.now(UTC)
    stamp = when.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    ident = frame.telegram[4:8][::-1].hex() if len(frame.telegram) >= 8 else "00000000"
    three = 0 if frame.mode.startswith("T") and frame.violations else 1  # 3-of-6 coding only in T modes
    rssi = int(round(frame.rssi_dbfs))
    noise = int(round(frame.noise_dbfs))
    return f"{frame.mode};{int(frame.crc_ok)};{three};{stamp};{rssi};{noise};{ident};0x{frame.telegram.hex()}"
