"""Byte-by-byte explanation of a decoded telegram, like a protocol analyser.

Each row: (offset, bytes, layer, field, meaning). Offsets are canonical-frame offsets; rows of
decrypted data show the plaintext bytes and are marked as such.
"""

from __future__ import annotations

from dataclasses import dataclass

from .telegram import Telegram


@dataclass(frozen=True, slots=True)
class Row:
    offset: int
    data: bytes
    layer: str
    field: str
    meaning: str


def rows(t: Telegram) -> list[Row]:
    buf = t.canonical
    out: list[Row] = []
    for off, n, name, meaning in t.link.fields():
        out.append(Row(off, buf[off:off + n], "DLL", name, meaning))
    for layer, off in zip(t.layers, t.layer_offsets, strict=True):
        lname = getattr(layer, "name", "CI")
        for foff, n, name, meaning in layer.fields(off):
            out.append(Row(foff, buf[foff:foff + n], lname, name, meaning))
        if lname == "ELL" and layer.has_payload_crc:
            pos = off + layer.header_size
            enc = " (encrypted on air)" if layer.encryption == 1 else ""
            out.append(Row(pos, buf[pos:pos + 2], "ELL", "payload CRC",
                           "CRC-16 over the rest, LSB first" + enc))
    start = t.payload_offset
    if t.payload is None:
        rest = buf[start:]
        if rest:
            out.append(Row(start, rest, "APL", "encrypted", f"{len(rest)} bytes, not decrypted ({t.decryption})"))
        return out
    payload = t.payload
    decrypted = t.encrypted_offset is not None and t.decryption in ("ok", "truncated")
    tag = "decrypted " if decrypted else ""
    if t.records:
        for rec in t.records:
            out.append(Row(start + rec.offset, rec.raw, "APL", f"{tag}record", rec.describe()))
        return out
    i = 0
    while i < len(payload):
        if payload[i] == 0x2F:
            j = i
            while j < len(payload) and payload[j] == 0x2F:
                j += 1
            out.append(Row(start + i, payload[i:j], "APL", f"{tag}filler", f"{j - i} idle filler bytes 2F"))
            i = j
            continue
        j = i
        while j < len(payload) and payload[j] != 0x2F and j - i < 16:
            j += 1
        out.append(Row(start + i, payload[i:j], "APL", f"{tag}data", "application data"))
        i = j
    if t.frame.trailing:
        out.append(Row(len(buf), t.frame.trailing, "-", "trailing", "bytes after the frame, ignored"))
    return out


def render(t: Telegram) -> str:
    lines = [f"{'offset':>6}  {'bytes':<34} {'layer':<5} {'field':<16} meaning"]
    for r in rows(t):
        hexes = r.data.hex(" ")
        chunks = [hexes[k:k + 33] for k in range(0, max(len(hexes), 1), 33)] or [""]
        lines.append(f"{r.offset:>6}  {chunks[0]:<34} {r.layer:<5} {r.field:<16} {r.meaning}")
        for extra in chunks[1:]:
            lines.append(f"{'':>6}  {extra.strip():<34}")
    lines.append(f"decryption: {t.decryption} — {t.message}")
    for p in t.problems:
        lines.append(f"problem: {p}")
    for n in t.notes:
        lines.append(f"note: {n}")
    return "\n".join(lines)
