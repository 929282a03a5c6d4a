"""Link-layer frame formats A and B (EN 13757-4): block CRCs, and the canonical form.

Canonical form (what the rest of the stack and other wM-Bus tools exchange): the L-field first,
no CRC bytes, and L counting exactly the bytes after it.

Format A: block 1 = L C M M A A A A A A + CRC; then blocks of 16 data bytes + CRC, the last one
shorter. L excludes the CRCs.

Format B: block 2 holds up to 116 data bytes (CI onwards) + a CRC over L...end of block 2; a
longer frame has a block 3 with its own CRC. L includes the CRCs.

Block boundaries are derived from the L-field, never guessed by trying CRCs.
"""

from __future__ import annotations

from dataclasses import dataclass

from .crc import crc16, crc16_bytes
from .errors import CRCError, FieldError, TruncatedError

FORMAT_A = "A"
FORMAT_B = "B"

_B_BLOCK2_DATA = 116  # data bytes in block 2 of format B (after the 10-byte block 1)

# C-field values a meter or partner sends (wireless and wired). Used only to decide whether the
# first byte of a hex string is an L-field or (for tools that drop it) the C-field.
KNOWN_C_FIELDS = frozenset(
    {0x00, 0x10, 0x20, 0x30, 0x06, 0x08, 0x18, 0x28, 0x38, 0x40, 0x43, 0x44, 0x45, 0x46, 0x47,
     0x48, 0x4A, 0x4B, 0x53, 0x73, 0x5A, 0x7A, 0x5B, 0x7B}
)


def format_a_size(length_field: int) -> int:
    """On-air size in bytes of a format A frame with the given L-field."""
    data_after_block1 = max(length_field - 9, 0)
    return 1 + length_field + 2 * (1 + -(-data_after_block1 // 16))


def _a_blocks(length_field: int):
    """Yield (start, length) of each data block of format A, in canonical offsets."""
    yield 0, 10
    pos, end = 10, length_field + 1
    while pos < end:
        n = min(16, end - pos)
        yield pos, n
        pos += n


def strip_format_a(raw: bytes) -> tuple[bytes, bytes]:
    """Check and remove the CRCs of a format A frame. Returns (canonical, trailing bytes)."""
    if not raw:
        raise TruncatedError("empty frame", layer="frame A", offset=0)
    length_field = raw[0]
    if length_field < 9:
        raise FieldError(f"L-field {length_field} is too small for format A", layer="frame A", offset=0)
    size = format_a_size(length_field)
    if len(raw) < size:
        raise TruncatedError(
            f"L-field {length_field} needs {size} bytes with CRCs, got {len(raw)}", layer="frame A",
            offset=len(raw))
    out = bytearray()
    pos = 0
    for index, (_, n) in enumerate(_a_blocks(length_field), start=1):
        block = raw[pos:pos + n]
        got = raw[pos + n:pos + n + 2]
        if crc16_bytes(block) != got:
            raise CRCError(
                f"block {index} CRC {got.hex()} != computed {crc16(block):04x}", layer="frame A",
                offset=pos + n)
        out += block
        pos += n + 2
    return bytes(out), bytes(raw[size:])


def build_format_a(canonical: bytes) -> bytes:
    """Insert format A CRCs into a canonical frame."""
    _check_canonical(canonical)
    out = bytearray()
    for start, n in _a_blocks(canonical[0]):
        block = canonical[start:start + n]
        out += block
        out += crc16_bytes(block)
    return bytes(out)


def format_b_size(length_field: int) -> int:
    """On-air size of a format B frame (L counts the CRCs, so it is simply 1 + L)."""
    return 1 + length_field


def _b_crc_positions(length_field: int) -> list[int]:
    """Offsets (in the on-air frame) of the CRCs of a format B frame."""
    end = 1 + length_field
    if end <= 10 + _B_BLOCK2_DATA + 2:
        return [end - 2]
    return [10 + _B_BLOCK2_DATA, end - 2]


def strip_format_b(raw: bytes) -> tuple[bytes, bytes]:
    """Check and remove the CRCs of a format B frame; L is rewritten to exclude them."""
    if not raw:
        raise TruncatedError("empty frame", layer="frame B", offset=0)
    length_field = raw[0]
    if length_field < 12:
        raise FieldError(f"L-field {length_field} is too small for format B", layer="frame B", offset=0)
    size = format_b_size(length_field)
    if len(raw) < size:
        raise TruncatedError(
            f"L-field {length_field} needs {size} bytes, got {len(raw)}", layer="frame B", offset=len(raw))
    positions = _b_crc_positions(length_field)
    if len(positions) == 2 and positions[1] - positions[0] < 3:
        raise FieldError(f"L-field {length_field} leaves an empty block 3", layer="frame B", offset=0)
    out = bytearray()
    start = 0
    for index, pos in enumerate(positions, start=2):
        block = raw[start:pos]
        got = raw[pos:pos + 2]
        if crc16_bytes(block) != got:
            raise CRCError(
                f"block {index} CRC {got.hex()} != computed {crc16(block):04x}", layer="frame B", offset=pos)
        out += block
        start = pos + 2
    out[0] = length_field - 2 * len(positions)
    return bytes(out), bytes(raw[size:])


def build_format_b(canonical: bytes) -> bytes:
    """Insert format B CRCs into a canonical frame (L is rewritten to include them)."""
    _check_canonical(canonical)
    data_len = len(canonical) - 1
    n_crc = 1 if data_len <= 9 + _B_BLOCK2_DATA else 2
    length_field = data_len + 2 * n_crc
    if length_field > 255:
        raise ValueError(f"frame of {data_len} data bytes is too long for format B")
    frame = bytearray([length_field]) + canonical[1:]
    split = 10 + _B_BLOCK2_DATA
    if n_crc == 1:
        return bytes(frame + crc16_bytes(frame))
    block2, block3 = frame[:split], frame[split:]
    return bytes(block2 + crc16_bytes(block2) + block3 + crc16_bytes(block3))


def _check_canonical(canonical: bytes) -> None:
    if len(canonical) < 10 or canonical[0] != len(canonical) - 1:
        raise ValueError(
            f"not a canonical frame: {len(canonical)} bytes with L-field "
            f"{canonical[0] if canonical else None}")


@dataclass(frozen=True, slots=True, kw_only=True)
class FrameBytes:
    """A frame brought to canonical form, with what was found around it."""

    canonical: bytes
    frame_format: str | None  # "A", "B" or None when the input carried no CRCs
    trailing: bytes = b""  # bytes after the frame (RSSI bytes some tools append)
    l_field_added: bool = False  # the input started at the C-field and L was supplied
    truncated: bool = False  # fewer bytes than L announces


def normalize(data: bytes, *, frame_format: str | None = "auto") -> FrameBytes:
    """Bring a frame given as bytes to canonical form.

    ``frame_format``: "auto" detects; "A" / "B" require those CRCs; None means no CRCs present.
    Auto-detection order: format A with every CRC valid, format B with every CRC valid, exact
    length, a missing L-field (the first byte is a C-field and the second is not), trailing bytes.
    """
    if len(data) < 2:
        raise TruncatedError(f"{len(data)} bytes is not a frame", layer="frame", offset=len(data))
    if frame_format == FORMAT_A:
        canonical, trailing = strip_format_a(data)
        return FrameBytes(canonical=canonical, frame_format=FORMAT_A, trailing=trailing)
    if frame_format == FORMAT_B:
        canonical, trailing = strip_format_b(data)
        return FrameBytes(canonical=canonical, frame_format=FORMAT_B, trailing=trailing)
    if frame_format not in (None, "auto"):
        raise ValueError(f"frame_format must be 'auto', 'A', 'B' or None, not {frame_format!r}")

    length_field = data[0]
    expected = length_field + 1
    if frame_format == "auto":
        if length_field >= 9 and len(data) >= format_a_size(length_field):
            try:
                canonical, trailing = strip_format_a(data)
                return FrameBytes(canonical=canonical, frame_format=FORMAT_A, trailing=trailing)
            except (CRCError, FieldError):
                pass
        if length_field >= 12 and len(data) >= expected:
            try:
                canonical, trailing = strip_format_b(data)
                return FrameBytes(canonical=canonical, frame_format=FORMAT_B, trailing=trailing)
            except (CRCError, FieldError):
                pass
    if len(data) == expected:
        return FrameBytes(canonical=bytes(data), frame_format=None)
    starts_at_c = data[0] in KNOWN_C_FIELDS and data[1] not in KNOWN_C_FIELDS and len(data) <= 255
    if starts_at_c:
        return FrameBytes(canonical=bytes([len(data)]) + bytes(data), frame_format=None, l_field_added=True)
    if len(data) > expected:
        return FrameBytes(canonical=bytes(data[:expected]), frame_format=None, trailing=bytes(data[expected:]))
    return FrameBytes(canonical=bytes(data), frame_format=None, truncated=True)
