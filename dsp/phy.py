"""PHY framing: canonical telegram <-> on-air chips (preamble, sync, coded frame, postamble).

Block CRCs come from ``mbus.frame`` (format A or B); the coding is the mode's ``Coding``.
"""

from __future__ import annotations

import numpy as np

from mbus import frame as mframe

from .modes import ModeSpec


def onair_bytes(canonical: bytes, frame_format: str) -> bytes:
    if frame_format == "A":
        return mframe.build_format_a(canonical)
    if frame_format == "B":
        return mframe.build_format_b(canonical)
    raise ValueError(f"frame format must be 'A' or 'B', not {frame_format!r}")


def onair_size(first_byte: int, frame_format: str) -> int:
    """Bytes on air for the L-field as received (format B's L already counts its CRCs)."""
    return mframe.format_a_size(first_byte) if frame_format == "A" else mframe.format_b_size(first_byte)


def frame_chips(mode: ModeSpec, canonical: bytes, frame_format: str = "A", *,
                preamble_pairs: int | None = None) -> np.ndarray:
    """All chips of one transmission."""
    if frame_format not in mode.syncs:
        raise ValueError(f"mode {mode.name} has no frame format {frame_format}")
    pairs = mode.preamble_pairs if preamble_pairs is None else preamble_pairs
    sync = mode.syncs[frame_format]
    payload = mode.coding.encode(onair_bytes(canonical, frame_format))
    parts = [np.tile(np.array([0, 1], dtype=np.uint8), pairs), np.array(sync, dtype=np.uint8), payload]
    post = mode.postamble
    if mode.coding.pad_to_byte and len(payload) % 8:
        post = post or (0, 1, 0, 1)
    parts.append(np.array(post, dtype=np.uint8))
    return np.concatenate(parts)


def chips_per_byte(mode: ModeSpec) -> int:
    return mode.coding.chips_per_byte
