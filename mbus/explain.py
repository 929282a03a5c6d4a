"""Byte-by-byte explanation of a decoded telegram, like a protocol analyser, and an analysis that
tries every decoder that could apply.

Each row: (offset, bytes, layer, field, meaning). Offsets are canonical-frame offsets; rows of
decrypted data show the plaintext bytes and are marked as such. :func:`analyze` tries each stage's
decoders (frame formats, the wired parser, CI layers, every registered security mode, application
data, every vendor decoder) and says which fitted and why the others did not.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import frame as _frame
from . import security, vendors, wired
from .compact import FormatCache
from .errors import DecodeError, SecurityError
from .frame import FORMAT_A, FORMAT_B
from .keys import KeyStore
from .layers import LAYERS, tpl_context
from .records import decode_records
from .telegram import Telegram, decode
from .tpl import OpaquePayload, TransportLayer


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


def render(t: Telegram, analysis: list[Attempt] | None = None) -> str:
    lines = [f"{'offset':>6}  {'bytes':<34} {'layer':<5} {'field':<16} meaning"]
    for r in rows(t):
        hexes = r.data.hex(" ")
        chunks = [hexes[k:k + 33] for k in range(0, max(len(hexes), 1), 33)] or [""]
        lines.append(f"{r.offset:>6}  {chunks[0]:<34} {r.layer:<5} {r.field:<16} {r.meaning}")
        for extra in chunks[1:]:
            lines.append(f"{'':>6}  {extra.strip():<34}")
    lines.append(f"decryption: {t.decryption} — {t.message}")
    lines += problem_lines(t)
    if analysis is not None:
        lines.append(render_analysis(analysis))
    return "\n".join(lines)


def problem_lines(t: Telegram, indent: str = "") -> list[str]:
    """The telegram's problems and notes, one line each."""
    return [f"{indent}problem: {p}" for p in t.problems] + [f"{indent}note: {n}" for n in t.notes]


# ----------------------------------------------------------------------------------------------
# analysis: every decoder that could apply, which fitted and why the others did not
# (in the spirit of wmbusmeters' --analyze, which tries every driver on a telegram)


@dataclass(frozen=True, slots=True)
class Attempt:
    stage: str  # frame | layers | security | application | vendor | wired
    decoder: str
    fitted: bool
    reason: str


def analyze(data: bytes, *, keys: KeyStore | None = None, formats: FormatCache | None = None) -> list[Attempt]:
    """Try every decoder of each stage on ``data`` (a wireless telegram or a wired frame): frame
    formats, the wired frame parser, the CI layers, every registered security mode, the
    application-data decoders and every vendor decoder. Never raises for bad input; keys are used,
    never shown."""
    out: list[Attempt] = []
    out += _frame_attempts(data)
    if wired.looks_wired(data):
        out += _wired_attempts(data, keys)
        if out[-1].fitted:
            out.append(Attempt("layers", "wireless link layer", False,
                               "not tried further: the bytes are a wired frame with a valid checksum"))
            return out
    try:
        t = decode(data, keys=keys, formats=formats)
    except DecodeError as err:
        out.append(Attempt("layers", "link layer", False, str(err)))
        return out
    out += _layer_attempts(t)
    out += _security_attempts(t, keys)
    out += _application_attempts(t)
    out += _vendor_attempts(t)
    return out


def _frame_attempts(data: bytes) -> list[Attempt]:
    out = []
    for name, fmt in (("format A (CRC per block)", FORMAT_A), ("format B (CRC per section)", FORMAT_B),
                      ("no CRCs (canonical)", None)):
        try:
            fb = _frame.normalize(data, frame_format=fmt)
        except (DecodeError, ValueError) as err:
            out.append(Attempt("frame", name, False, str(err)))
            continue
        if fmt is None:
            if fb.truncated:
                out.append(Attempt("frame", name, False, f"L-field {data[0]} announces {data[0] + 1} bytes, "
                                   f"{len(data)} present"))
                continue
            if fb.l_field_added:
                out.append(Attempt("frame", name, True, "no L-field: the first byte is a C-field"))
                continue
            if fb.trailing:
                out.append(Attempt("frame", name, True, f"L-field fits with {len(fb.trailing)} bytes after the frame"))
                continue
            out.append(Attempt("frame", name, True, f"L-field {data[0]} matches the {len(data)} bytes"))
            continue
        extra = f", {len(fb.trailing)} bytes after the frame" if fb.trailing else ""
        out.append(Attempt("frame", name, True, f"every CRC verified{extra}"))
    return out


def _wired_attempts(data: bytes, keys: KeyStore | None) -> list[Attempt]:
    try:
        w = wired.decode(data, keys=keys)
    except DecodeError as err:
        return [Attempt("wired", "wired M-Bus frame (EN 13757-2)", False, str(err))]
    what = f"{w.frame.kind} frame" + (f", CI 0x{w.frame.ci:02X}" if w.frame.ci is not None else "")
    if w.problems:
        return [Attempt("wired", "wired M-Bus frame (EN 13757-2)", False, f"{what}: {'; '.join(w.problems)}")]
    return [Attempt("wired", "wired M-Bus frame (EN 13757-2)", True,
                    f"{what}, checksum verified, {len(w.records)} records")]


def _layer_attempts(t: Telegram) -> list[Attempt]:
    out = []
    for layer, off in zip(t.layers, t.layer_offsets, strict=True):
        kind = LAYERS.get(layer.ci)
        name = f"CI 0x{layer.ci:02X} at byte {off}"
        if kind is None:
            out.append(Attempt("layers", name, False, "no layer is registered for this CI (mbus.layers)"))
            continue
        detail = getattr(layer, "name", kind.name)
        if isinstance(layer, TransportLayer):
            detail = f"transport layer, {layer.info.name}, {layer.header} header"
        elif isinstance(layer, OpaquePayload):
            detail = f"{layer.name}: payload kept raw"
        out.append(Attempt("layers", name, True, f"{kind.name}: {detail}"))
    return out


def _security_attempts(t: Telegram, keys: KeyStore | None) -> list[Attempt]:
    out: list[Attempt] = []
    ell = t.ell
    if ell is not None and getattr(ell, "encryption", 0):
        out.append(Attempt("security", "ELL AES-128-CTR", t.decryption in ("ok", "truncated"),
                           t.message if t.decryption not in ("ok", "truncated") else "payload CRC verified"))
    tpl = t.tpl
    if tpl is None:
        if not out:
            out.append(Attempt("security", "security modes", False, "no transport layer: nothing to decrypt here"))
        return out
    announced = tpl.security_mode
    if not announced:
        out.append(Attempt("security", "mode 0 (no encryption)", True, "the configuration field announces mode 0"))
        return out
    if t.encrypted_offset is None:
        out.append(Attempt("security", f"mode {announced} ({security.mode_name(announced)})", t.in_clear,
                           "; ".join(n for n in t.notes if "mode" in n) or t.message))
        return out
    meter = t.meter
    key = keys.lookup(meter, t.link.address) if keys is not None else None
    data = t.canonical[t.encrypted_offset:]
    blocks = tpl.config.encrypted_blocks or len(data) // 16
    blocks = min(blocks, len(data) // 16)
    for number, mode in sorted(security.TPL_MODES.items()):
        name = f"mode {number} ({mode.name})"
        tag = "announced" if number == announced else "not announced"
        if not getattr(mode, "implemented", True):
            out.append(Attempt("security", name, False, f"{tag}; not implemented"))
            continue
        if key is None:
            out.append(Attempt("security", name, False, f"{tag}; cannot try: no key for meter {meter.id}"))
            continue
        if blocks == 0:
            out.append(Attempt("security", name, False, f"{tag}; no whole 16-byte block to decrypt"))
            continue
        try:
            ctx = tpl_context(tpl, t.link.address, t.link.c_field, t.afl, blocks)
            plain = mode.decrypt(key, ctx, data[:16 * blocks])
        except (DecodeError, SecurityError, ValueError) as err:
            out.append(Attempt("security", name, False, f"{tag}; {err}"))
            continue
        if plain[:2] == b"\x2f\x2f":
            out.append(Attempt("security", name, number == announced or t.decryption != "ok",
                               f"{tag}; the decrypted data starts 2F2F: key and mode fit"))
        else:
            out.append(Attempt("security", name, False,
                               f"{tag}; decrypted data starts {plain[:2].hex()}, not 2F2F (other mode or key)"))
    if announced not in security.TPL_MODES:
        out.append(Attempt("security", f"mode {announced} ({security.mode_name(announced)})", False,
                           "announced, but no decoder is registered for it (mbus.security)"))
    return out


def _application_attempts(t: Telegram) -> list[Attempt]:
    out: list[Attempt] = []
    if t.payload is None:
        return [Attempt("application", "application data", False, f"not decrypted ({t.decryption})")]
    tpl = t.tpl
    kind = tpl.info.payload if tpl is not None else "raw"
    if kind == "compact":
        ok = t.records_outcome == "ok"
        why = (f"{len(t.records)} records from the learned format" if ok else
               "; ".join(n for n in t.notes if "format" in n) or t.records_outcome)
        out.append(Attempt("application", "compact frame (EN 13757-3 Annex G)", ok, why))
        return out
    if kind == "format":
        out.append(Attempt("application", "format frame (EN 13757-3 Annex G)", t.records_outcome != "error",
                           "; ".join(n for n in t.notes if "format" in n) or "; ".join(t.problems)))
        return out
    payload = t.payload
    result = decode_records(payload)
    profiles = sum(1 for r in result.records if r.derived_from is None and "profile" in " ".join(r.modifiers))
    std = [r for r in result.records if r.derived_from is None and r.quantity != "manufacturer_data"]
    name = "EN 13757-3 data records"
    where = "" if kind == "records" else f"CI 0x{t.ci_chain[-1]:02X} does not announce records, tried anyway: "
    if result.errors:
        out.append(Attempt("application", name, False, f"{where}{len(std)} records, {len(result.errors)} bad: "
                           + "; ".join(str(e) for e in result.errors[:3])))
    elif not std and payload.strip(b"\x2f"):
        out.append(Attempt("application", name, False, f"{where}no standard record (only manufacturer data)"))
    else:
        extra = f", {profiles} compact profiles expanded" if profiles else ""
        out.append(Attempt("application", name, kind == "records" or bool(std),
                           f"{where}{len(std)} records decode without error{extra}"))
    tail = next((r for r in result.records if r.quantity == "manufacturer_data"), None)
    if tail is not None:
        out.append(Attempt("application", f"manufacturer data (DIF 0x{tail.dib[0]:02X})", True,
                           f"{len(tail.data)} bytes from byte {tail.offset}: only a vendor decoder reads them"))
    return out


def _vendor_attempts(t: Telegram) -> list[Attempt]:
    """Every vendor decoder, whether it served this telegram and why (mbus.vendors.candidates)."""
    return [Attempt("vendor", f"vendor {dec.name}", applied, reason)
            for dec, applied, reason in vendors.candidates(t)]


def render_analysis(attempts: list[Attempt]) -> str:
    lines = ["analysis: every decoder that could apply (fits / -- = did not fit, and why)"]
    for a in attempts:
        lines.append(f"  {'fits' if a.fitted else '--  '}  {a.stage:<11} {a.decoder:<34} {a.reason}")
    return "\n".join(lines)
