"""The ``jsonl`` output: one JSON object per frame: link-frame fields, where it sits in the stream
(``sample``, the absolute input sample index, and ``t_s``) and in time (``time``, UTC ISO 8601 to the
microsecond, and ``time_ns``, ns since the epoch; both null without a clock), and ``decoded``."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from .base import utc_iso

if TYPE_CHECKING:
    from mbus.telegram import Telegram

    from ..pipelines.receive import RxFrame

_dumps = json.JSONEncoder(ensure_ascii=False, check_circular=False).encode


def frame_json(frame: RxFrame) -> dict:
    return {"mode": frame.mode, "format": frame.frame_format, "telegram": frame.telegram.hex(),
            "crc_ok": frame.crc_ok, "reason": frame.reason, "t_s": round(frame.t_s, 6),
            "time": utc_iso(frame.time_ns) if frame.time_ns is not None else None, "time_ns": frame.time_ns,
            "sample": frame.sample,
            "rssi_dbfs": round(frame.rssi_dbfs, 2), "noise_dbfs": round(frame.noise_dbfs, 2),
            "snr_db": round(frame.snr_db, 2), "freq_offset_hz": round(frame.freq_offset_hz, 1),
            "chip_rate_hz": round(frame.chip_rate_hz, 1), "channel_hz": frame.channel_hz,
            "code_violations": frame.violations}


def jsonl_event(frame: RxFrame, telegram: Telegram | None) -> str:
    obj = frame_json(frame)
    obj["decoded"] = telegram.to_json() if telegram is not None else None
    return _dumps(obj)
