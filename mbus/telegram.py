"""Whole telegrams: bytes -> :class:`Telegram` (:func:`decode`) and back (:func:`encode`).

decode: canonical form (frame.normalize) -> link header -> layers chosen by CI from the registry
:data:`mbus.layers.LAYERS` (ELL, AFL, transport layer, raw; each opened by its hook) -> security by
the modes of :mod:`mbus.security` (ELL AES-CTR, TPL modes 5 / 7, AFL MAC) -> plaintext application
data. Bad bytes never raise here (unless ``strict``): the result carries
the outcome ``decryption`` and a list of ``problems``.

encode: the reverse, inside out through the layers' seal hooks — payload, TPL encryption, AFL MAC,
ELL CRC/encryption, L-field. :func:`open_transport` is the transport layer alone (wired M-Bus).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from . import frame as _frame
from .afl import AuthFragLayer, FragmentBuffer
from .compact import FormatCache, FormatUnknownError, decode_compact, parse_format_frame
from .crc import crc16_bytes
from .dll import Address, LinkHeader
from .ell import ExtendedLinkLayer
from .errors import DecodeError, SecurityError, TruncatedError
from .keys import KeyStore
from .layers import LAYERS, NOT_ENCRYPTED, OK, TRUNCATED, DecodeState, EncodeState, unknown_layer
from .records import DataRecord, decode_records
from .security.manufacturer import MANUFACTURER_SPECIFIC as _MANUFACTURER_SPECIFIC
from .tpl import OpaquePayload, TransportLayer
from .vendors import (
    known_format,
    vendor_apl_records,
    vendor_frame_records,
    vendor_payload_records,
    vendor_records,
)

# decryption outcomes; the layers' open hooks set NOT_ENCRYPTED, OK and TRUNCATED (mbus.layers), the
# others are the reasons of the SecurityError subclasses (mbus.errors)
NO_KEY = "no_key"
WRONG_KEY = "wrong_key"
MAC_MISMATCH = "mac_mismatch"
UNSUPPORTED_MODE = "unsupported_mode"
# a manufacturer-specific CI (0xA0-0xB7) no vendor decoder serves: its bytes are not decoded
MANUFACTURER_SPECIFIC = _MANUFACTURER_SPECIFIC
OUTCOMES = (NOT_ENCRYPTED, OK, NO_KEY, WRONG_KEY, MAC_MISMATCH, UNSUPPORTED_MODE, TRUNCATED, MANUFACTURER_SPECIFIC)

Layer = ExtendedLinkLayer | AuthFragLayer | TransportLayer | OpaquePayload  # + layers registered at runtime


@dataclass(frozen=True, slots=True, kw_only=True)
class Telegram:
    """One decoded telegram. ``payload`` is the plaintext application data (None if it could
    not be decrypted); offsets are canonical-frame offsets (L-field = 0)."""

    frame: _frame.FrameBytes
    link: LinkHeader
    layers: tuple[Layer, ...] = ()
    layer_offsets: tuple[int, ...] = ()
    payload: bytes | None = b""
    payload_offset: int = 10
    encrypted_offset: int | None = None  # where decryption started (for explain)
    decryption: str = NOT_ENCRYPTED
    message: str = ""
    problems: tuple[str, ...] = ()  # errors: what could not be decoded
    notes: tuple[str, ...] = ()  # information: trailing bytes, missing L-field, unverified MAC ...
    records: tuple[DataRecord, ...] = ()
    records_outcome: str = "none"  # ok | none | format_unknown | error | not_decrypted
    in_clear: bool = False  # announced encryption, but the bytes were already plaintext

    @property
    def canonical(self) -> bytes:
        return self.frame.canonical

    @property
    def tpl(self) -> TransportLayer | None:
        for layer in self.layers:
            if isinstance(layer, TransportLayer):
                return layer
        return None

    @property
    def ell(self) -> ExtendedLinkLayer | None:
        for layer in self.layers:
            if isinstance(layer, ExtendedLinkLayer):
                return layer
        return None

    @property
    def afl(self) -> AuthFragLayer | None:
        for layer in self.layers:
            if isinstance(layer, AuthFragLayer):
                return layer
        return None

    @property
    def meter(self) -> Address:
        """The meter's own address: the long transport header's if present, else the link's."""
        tpl = self.tpl
        if tpl is not None and tpl.address is not None:
            return tpl.address
        return self.link.address

    @property
    def ci_chain(self) -> list[int]:
        return [layer.ci for layer in self.layers]

    @property
    def security_mode(self) -> int | None:
        tpl = self.tpl
        return None if tpl is None else tpl.security_mode

    @property
    def access_number(self) -> int | None:
        tpl = self.tpl
        if tpl is not None and tpl.acc is not None:
            return tpl.acc
        ell = self.ell
        return None if ell is None else ell.acc

    def encode(self, key: bytes | None = None) -> bytes:
        """Build the canonical bytes again from the parsed fields (encrypting with ``key``)."""
        if self.payload is None:
            raise ValueError("cannot encode a telegram whose payload was not decrypted")
        return encode(c_field=self.link.c_field, address=self.link.address, layers=self.layers,
                      payload=self.payload, key=key, encrypt=not self.in_clear)

    def to_json(self) -> dict:
        meter = self.meter
        link = self.link
        tpl = self.tpl
        return {
            "telegram": self.canonical.hex(),
            "frame_format": self.frame.frame_format,
            "manufacturer": meter.manufacturer_code,
            "id": meter.id,
            "version": meter.version,
            "device_type": meter.device_type,
            "device_type_name": meter.device_type_name,
            "c_field": link.c_field,
            "c_field_name": link.c_field_name,
            "link_address": {"manufacturer": link.address.manufacturer_code, "id": link.address.id,
                             "version": link.address.version, "device_type": link.address.device_type},
            "ci_chain": self.ci_chain,
            "security_mode": self.security_mode,
            "access_number": self.access_number,
            "status_flags": None if tpl is None or tpl.status is None else tpl.to_json()["status_flags"],
            "decryption": self.decryption,
            "message": self.message,
            "payload_hex": None if self.payload is None else self.payload.hex(),
            "records": [r.to_json() for r in self.records],
            "records_outcome": self.records_outcome,
            "layers": [layer.to_json() for layer in self.layers],
            "trailing_hex": self.frame.trailing.hex() if self.frame.trailing else None,
            "errors": list(self.problems),
            "notes": list(self.notes),
        }


def decode(
    data: bytes,
    *,
    keys: KeyStore | None = None,
    frame_format: str | None = "auto",
    fragments: FragmentBuffer | None = None,
    formats: FormatCache | None = None,
    records: bool = True,
    strict: bool = False,
    describe: bool = True,
) -> Telegram:
    """Decode one wireless telegram. Raises DecodeError only when not even the 10-byte link
    header is there (or in ``strict`` mode, for any problem). ``describe=False``: no ``message``
    text for a telegram that decoded (empty; a failure's message is still written)."""
    fb = _frame.normalize(data, frame_format=frame_format)
    link = LinkHeader.parse(fb.canonical)
    st = DecodeState(buf=fb.canonical, link=link, keys=keys, fragments=fragments)
    if fb.l_field_added:
        st.notes.append("input had no L-field; the frame was taken to start at the C-field")
    if fb.trailing:
        st.notes.append(f"{len(fb.trailing)} bytes after the end of the frame ignored: {fb.trailing.hex()}")
    if fb.truncated:
        st.problems.append(f"L-field {fb.canonical[0]} announces {fb.canonical[0] + 1} bytes, "
                           f"only {len(fb.canonical)} present")
    try:
        _decode_layers(st)
    except SecurityError as err:
        if strict:
            raise
        st.decryption = err.reason
        st.message = _describe_failure(err, link, st)
        st.payload = None
    except DecodeError as err:
        if strict:
            raise
        st.problems.append(str(err))
        if isinstance(err, TruncatedError):
            st.decryption = TRUNCATED
    if fb.truncated and st.decryption in (NOT_ENCRYPTED, OK):
        st.decryption = TRUNCATED
    if strict and st.problems:
        raise DecodeError(st.problems[0], layer="telegram")
    if not st.message and describe:
        st.message = _describe_success(link, st)
    recs, outcome = _application(st, link, formats, strict, fb.canonical) if records else ((), "none")
    _manufacturer_outcome(st, link, recs)
    return Telegram(frame=fb, link=link, layers=tuple(st.layers), layer_offsets=tuple(st.offsets),
                    payload=st.payload, payload_offset=st.pos, encrypted_offset=st.encrypted_offset,
                    decryption=st.decryption, message=st.message, problems=tuple(st.problems),
                    notes=tuple(st.notes), records=tuple(recs), records_outcome=outcome,
                    in_clear=st.in_clear)


def _application(st: DecodeState, link: LinkHeader, formats: FormatCache | None, strict: bool,
                 canonical: bytes = b""):
    """Records from the plaintext APL, by the payload kind of the transport layer's CI."""
    tpl = next((x for x in st.layers if isinstance(x, TransportLayer)), None)
    opaque = next((x for x in st.layers if isinstance(x, OpaquePayload)), None)
    if tpl is None and opaque is not None and st.payload:
        key = st.keys.lookup(link.address) if st.keys is not None else None
        recs = vendor_payload_records(link.address, opaque.ci, st.payload, st.buf, key)
        return (tuple(recs), "ok") if recs else ((), "none")
    if tpl is not None and (tpl.security_mode or 0) >= 16 and (recs := vendor_frame_records(link.address, st.buf)):
        return tuple(recs), "ok"  # a manufacturer mode whose values a vendor layout reads from the frame
    if tpl is None or st.payload is None and tpl.info.payload in ("records", "compact", "format"):
        return (), "not_decrypted" if tpl is not None else "none"
    kind = tpl.info.payload
    apl = st.payload
    meter = (tpl.address or link.address).dll_bytes()
    to_meter = tpl.info.direction == "to device"
    try:
        if kind == "records" and (whole := vendor_apl_records(link.address, apl)) is not None:
            recs, errors = whole, ()
        elif kind == "records":
            result = decode_records(apl, to_meter=to_meter)
            if result.errors and apl[-2:] == canonical[-2:] and _stray_last_block_crc(canonical):
                result = decode_records(apl[:-2], to_meter=to_meter)
                st.notes.append(f"the last 2 bytes ({canonical[-2:].hex()}) are the frame format A CRC of the last "
                                "block, counted by the L-field but no data; ignored")
            recs, errors = result.records, result.errors
            if formats is not None and not errors and recs:
                formats.learn_records(meter, recs)
            if recs:  # vendor layouts check their record's header and shape: safe after a bad record too
                recs = (*recs, *vendor_records(link.address, recs))
        elif kind == "compact":
            formats = _vendor_formats(formats, tpl.address or link.address, meter, apl)
            full, crc_ok = decode_compact(formats, meter, apl)
            if not crc_ok:
                st.notes.append("compact frame: full-frame CRC differs from the expanded records "
                                "(signature and length match)")
            result = decode_records(full)
            recs, errors = result.records, result.errors
        elif kind == "format":
            sig, headers = parse_format_frame(apl)
            if formats is not None:
                formats.learn(meter, headers)
            st.notes.append(f"format frame: signature {sig:04x} learned")
            return (), "none"
        else:
            return (), "none"
    except FormatUnknownError as err:
        if strict:
            raise
        st.notes.append(str(err))
        return (), "format_unknown"
    except DecodeError as err:
        if strict:
            raise
        st.problems.append(str(err))
        return (), "error"
    if errors:
        if strict:
            raise errors[0]
        st.problems.extend(str(err) for err in errors)
        return recs, "error"
    return recs, "ok"


def _stray_last_block_crc(buf: bytes) -> bool:
    """A canonical frame that still ends with the format A CRC of its last block (some published
    telegrams keep it, and their L-field counts it)."""
    body = buf[:-2]
    if len(body) <= 10:
        return False
    last = (len(body) - 10) % 16 or 16
    return crc16_bytes(body[-last:]) == buf[-2:]


def _manufacturer_outcome(st: DecodeState, link: LinkHeader, recs) -> None:
    """The decryption outcome of a manufacturer-specific CI (0xA0-0xB7) as the last layer: records
    from a vendor decoder keep it (``not_encrypted`` / ``ok``); otherwise ``manufacturer_specific``
    when nothing was decrypted (after an ELL that decrypted, ``ok`` stays and a note says why no
    records follow). The vendor decoders hook in through ``mbus.vendors.vendor_payload_records``."""
    opaque = st.layers[-1] if st.layers else None
    if not isinstance(opaque, OpaquePayload) or not opaque.known or not 0xA0 <= opaque.ci <= 0xB7 or recs:
        return
    meter = f"{link.address.manufacturer_code} {link.address.id}"
    if st.decryption == NOT_ENCRYPTED:
        st.decryption = MANUFACTURER_SPECIFIC
        st.message = (f"{meter}: manufacturer-specific CI 0x{opaque.ci:02X}, no vendor decoder serves "
                      f"this meter (version 0x{link.address.version:02X}, type 0x{link.address.device_type:02X})")
    elif st.decryption == OK:
        st.notes.append(f"manufacturer-specific CI 0x{opaque.ci:02X} after decryption: no vendor decoder "
                        "serves this meter, its bytes are not decoded")


def _vendor_formats(formats: FormatCache | None, address: Address, meter: bytes, apl: bytes) -> FormatCache | None:
    """The cache, taught a manufacturer's published compact format when it lacks this signature."""
    body = apl.lstrip(b"\x2f")
    if len(body) < 2:
        return formats
    sig = body[0] | body[1] << 8
    if formats is not None and formats.lookup(meter, sig) is not None:
        return formats
    headers = known_format(address, sig)
    if headers is None:
        return formats
    if formats is None:
        formats = FormatCache(max_entries=1)
    formats.learn(meter, headers)
    return formats


def _decode_layers(st: DecodeState) -> None:
    """Layers by CI from the registry (mbus.layers) until one takes the rest as its payload."""
    while st.pos < len(st.buf) and not st.done:
        start = st.pos
        ci = st.buf[start]
        kind = LAYERS.get(ci)
        if kind is None:
            st.add(unknown_layer(ci), start)
            st.problems.append(f"unknown CI 0x{ci:02X} at byte {start}; the rest is kept raw")
            st.pos = start + 1
            st.finish(st.buf[st.pos:])
            return
        try:
            layer, rest = kind.split(st.buf[start:])
        except DecodeError as err:
            raise err.shifted(start) from None
        st.add(layer, start)
        st.pos = len(st.buf) - len(rest)
        if kind.open is not None:
            kind.open(layer, st)
        if kind.final and not st.done:
            st.finish(st.buf[st.pos:])
    if not st.done:
        st.finish(st.buf[st.pos:])


def _describe_success(link: LinkHeader, st: DecodeState) -> str:
    tpl = next((x for x in st.layers if isinstance(x, TransportLayer)), None)
    meter = tpl.address if tpl is not None and tpl.address is not None else link.address
    who = f"{meter.manufacturer_code} {meter.id}"
    if st.decryption == OK:
        how = []
        ell = next((x for x in st.layers if isinstance(x, ExtendedLinkLayer)), None)
        if ell is not None and ell.encryption == 1:
            how.append("ELL AES-CTR, payload CRC verified")
        how += st.verified
        return f"{who}: decrypted ({'; '.join(how)})"
    if st.decryption == TRUNCATED:
        return f"{who}: telegram is truncated"
    return f"{who}: not encrypted"


def _describe_failure(err: SecurityError, link: LinkHeader, st: DecodeState) -> str:
    tpl = next((x for x in st.layers if isinstance(x, TransportLayer)), None)
    meter = tpl.address if tpl is not None and tpl.address is not None else link.address
    who = f"{meter.manufacturer_code} {meter.id}"
    reason = {
        NO_KEY: f"no key for meter {meter.id}",
        WRONG_KEY: f"wrong key for meter {meter.id}",
        MAC_MISMATCH: f"MAC mismatch for meter {meter.id} (wrong key, or the message was altered)",
        UNSUPPORTED_MODE: "unsupported security",
    }.get(err.reason, err.reason)
    return f"{who}: {reason} — {err.message}"


# ----------------------------------------------------------------------------------------------
# the transport layer alone (wired M-Bus)


@dataclass(frozen=True, slots=True, kw_only=True)
class TransportResult:
    """The transport layer of a frame and its opened (decrypted, verified) application data."""

    tpl: TransportLayer
    payload: bytes | None  # None: could not be decrypted (see decryption / message)
    decryption: str = NOT_ENCRYPTED
    message: str = ""  # set when decryption failed
    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


def open_transport(tpdu: bytes, *, c_field: int, keys: KeyStore | None = None,
                   strict: bool = False) -> TransportResult:
    """Parse the transport header at ``tpdu[0]`` (a CI of the TPL table) and open its security
    mode, for frames without a wireless link header (wired M-Bus): the meter address is the long
    header's (zero for short headers). Header faults raise DecodeError; security failures raise
    only in ``strict`` mode, otherwise they come back in ``decryption`` / ``message``."""
    kind = LAYERS.get(tpdu[0]) if tpdu else None
    if kind is None or kind.name != "TPL":
        raise DecodeError(f"CI {tpdu[:1].hex() or 'missing'} is not a transport layer", layer="TPL", offset=0)
    tpl, rest = kind.split(tpdu)
    address = tpl.address or Address(manufacturer=0, id_bytes=bytes(4), version=0, device_type=0)
    link = LinkHeader(length=len(tpdu) + 9, c_field=c_field, address=address)
    st = DecodeState(buf=tpdu, link=link, keys=keys, pos=len(tpdu) - len(rest), wired=True)
    st.add(tpl, 0)
    try:
        kind.open(tpl, st)
    except SecurityError as err:
        if strict:
            raise
        return TransportResult(tpl=tpl, payload=None, decryption=err.reason,
                               message=_describe_failure(err, link, st), problems=tuple(st.problems),
                               notes=tuple(st.notes))
    return TransportResult(tpl=tpl, payload=st.payload, decryption=st.decryption, message=st.message,
                           problems=tuple(st.problems), notes=tuple(st.notes))


# ----------------------------------------------------------------------------------------------
# encoding


def encode(
    *,
    c_field: int,
    address: Address,
    layers: Sequence[Layer],
    payload: bytes = b"",
    key: bytes | None = None,
    encrypt: bool = True,
) -> bytes:
    """Build a canonical telegram. Layers are given in on-air order with their plaintext fields;
    the payload is the plaintext application data (already padded with 2F to the number of
    encrypted blocks the configuration field announces). CRCs, MACs and L are computed."""
    es = EncodeState(c_field=c_field, address=address, key=key, encrypt=encrypt,
                     tpl=next((x for x in layers if isinstance(x, TransportLayer)), None),
                     afl=next((x for x in layers if isinstance(x, AuthFragLayer)), None))
    inner = bytes(payload)
    for layer in reversed(layers):
        kind = LAYERS.get(layer.ci)
        if kind is not None and kind.seal is not None:
            layer, inner = kind.seal(layer, inner, es)
        inner = layer.to_bytes() + inner
    length = 9 + len(inner)
    if length > 255:
        raise ValueError(f"telegram of {length + 1} bytes exceeds the L-field range")
    return LinkHeader(length=length, c_field=c_field, address=address).to_bytes() + inner
