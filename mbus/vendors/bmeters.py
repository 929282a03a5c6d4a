"""B METERS RFM-TX1 (BMT, version 0x05, water): the 4-byte reading is scrambled with the access number.

Facts (from wmbusmeters' rfmtx1.xmq; the code here is ours): the access number (frame byte 11) is the
key byte; its low nibble picks a row of four 16-entry tables; reading byte i (frame bytes 17-20) XOR
the key byte XOR table i[row] gives a BCD byte, least significant first: the total in litres. The
meter's time follows at frame bytes 28-33 as BCD seconds, minutes, hours, day, month, year.
"""

from __future__ import annotations

TABLES = (
    (122, 112, 185, 121, 7, 50, 156, 180, 10, 240, 22, 12, 74, 119, 189, 57),
    (16, 19, 11, 7, 154, 161, 126, 196, 206, 5, 152, 201, 72, 46, 120, 111),
    (26, 34, 142, 74, 203, 57, 96, 128, 25, 165, 17, 125, 228, 138, 87, 40),
    (10, 19, 153, 22, 105, 14, 153, 163, 3, 134, 94, 162, 31, 232, 140, 5),
)


def rfmtx1_unscramble(frame: bytes) -> bytes | None:
    """The 4 descrambled reading bytes (BCD, LSB first) + the 6 time bytes, or None if too short."""
    if len(frame) < 34:
        return None
    key = frame[11]
    row = key & 0x0F
    reading = bytes(frame[17 + i] ^ key ^ TABLES[i][row] for i in range(4))
    return reading + frame[28:34]
