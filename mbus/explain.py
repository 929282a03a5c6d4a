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
    tpl = t.tpl
    if tpl is not None and tpl.info.payload == "compact" and t.records:
        return out + _compact_rows(t, payload, start, tag)
    spans = [(rec.offset, rec.offset + len(rec.raw), rec) for rec in t.records]
    pos = 0
    for begin, end, rec in spans + [(len(payload), len(payload), None)]:
        if begin > pos:
            out += _gap_rows(payload, pos, begin, start, tag)
        if rec is not None:
            out.append(Row(start + begin, rec.raw, "APL", f"{tag}record", rec.describe()))
        pos = max(pos, end)
    if t.frame.trailing:
        out.append(Row(len(buf), t.frame.trailing, "-", "trailing", "bytes after the frame, ignored"))
    return out


def _compact_rows(t: Telegram, payload: bytes, start: int, tag: str) -> list[Row]:
    """A compact frame: signature, full-frame CRC, then each record's data (headers from the format)."""
    skip = len(payload) - len(payload.lstrip(b"\x2f"))
    rows_ = _gap_rows(payload, 0, skip, start, tag) if skip else []
    sig, crc = payload[skip:skip + 2], payload[skip + 2:skip + 4]
    rows_.append(Row(start + skip, sig, "APL", f"{tag}signature", f"format signature {sig[::-1].hex()}"))
    rows_.append(Row(start + skip + 2, crc, "APL", f"{tag}full CRC", f"full-frame CRC {crc[::-1].hex()}"))
    pos = skip + 4
    for rec in t.records:
        n = len(rec.data) + (1 if (rec.dib[0] & 0x0F) == 0x0D else 0)
        rows_.append(Row(start + pos, payload[pos:pos + n], "APL", f"{tag}compact", rec.describe()
                         + f" [header {rec.header.hex()}]"))
        pos += n
    return rows_


def _gap_rows(payload: bytes, i: int, end: int, start: int, tag: str) -> list[Row]:
    """Bytes between records: runs of 2F fillers, other bytes in 16-byte rows."""
    rows_ = []
    while i < end:
        j = i
        if payload[i] == 0x2F:
            while j < end and payload[j] == 0x2F:
                j += 1
            rows_.append(Row(start + i, payload[i:j], "APL", f"{tag}filler", f"{j - i} idle filler bytes 2F"))
        else:
            while j < end and payload[j] != 0x2F and j - i < 16:
                j += 1
            rows_.append(Row(start + i, payload[i:j], "APL", f"{tag}data", "application data (not records)"))
        i = j
    return rows_


def render(t: Telegram) -> str:
    lines = [f"{'offset':>6}  {'bytes':<34} {'layer':<5} {'field':<16} meaning"]
    for r in rows(t):
        hexes = r.data.hex(" ")
        chunks = [hexes[k:k + 33] for k in range(0, max(len(hexes), 1), 33)] or [""]
        lines.append(f"{r.offset:>6}  {chunks[0]:<34} {r.layer:<5} {r.field:<16} {r.meaning}")
        for extra in chunks[1:]:
            lines.append(f"{'':>6}  {extra.strip():<34}")
    lines.append(f"decryption: {t.decryption} — {t.message}")
    lines += problem_lines(t)
    return "\n".join(lines)


def problem_lines(t: Telegram, indent: str = "") -> list[str]:
    """The telegram's problems and notes, one line each."""
    return [f"{indent}problem: {p}" for p in t.problems] + [f"{indent}note: {n}" for n in t.notes]
