"""Whole telegrams: bytes -> :class:`Telegram` (:func:`decode`) and back (:func:`encode`).

decode: canonical form (frame.normalize) -> link header -> layers chosen by CI from registries
(ELL, AFL, transport layer, opaque) -> security (ELL AES-CTR, TPL modes 5 / 7, AFL MAC) ->
plaintext application data. Bad bytes never raise here (unless ``strict``): the result carries
the outcome ``decryption`` and a list of ``problems``.

encode: the reverse, inside out — payload, TPL encryption, AFL MAC, ELL CRC/encryption, L-field.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from . import frame as _frame
from .afl import CI_AFL, AuthFragLayer, FragmentBuffer
from .compact import FormatCache, FormatUnknownError, decode_compact, parse_format_frame
from .crc import crc16
from .dll import Address, LinkHeader, is_from_meter
from .ell import ELL_CIS, ExtendedLinkLayer
from .errors import (
    DecodeError,
    FieldError,
    MissingKeyError,
    SecurityError,
    TruncatedError,
    UnsupportedModeError,
)
from .keys import KeyStore
from .records import DataRecord, parse_records
from .security import TPL_MODES, SecurityContext, ell_ctr, mode7
from .tpl import SECURITY_MODES, TPL_CIS, OpaquePayload, TransportLayer, opaque_for
from .vendors import vendor_payload_records, vendor_records

NOT_ENCRYPTED = "not_encrypted"
OK = "ok"
NO_KEY = "no_key"
WRONG_KEY = "wrong_key"
MAC_MISMATCH = "mac_mismatch"
UNSUPPORTED_MODE = "unsupported_mode"
TRUNCATED = "truncated"
OUTCOMES = (NOT_ENCRYPTED, OK, NO_KEY, WRONG_KEY, MAC_MISMATCH, UNSUPPORTED_MODE, TRUNCATED)

Layer = ExtendedLinkLayer | AuthFragLayer | TransportLayer | OpaquePayload


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


@dataclass(slots=True)
class _State:
    buf: bytes
    pos: int = 10
    layers: list = field(default_factory=list)
    offsets: list = field(default_factory=list)
    problems: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    decryption: str = NOT_ENCRYPTED
    message: str = ""
    payload: bytes | None = None
    encrypted_offset: int | None = None
    in_clear: bool = False

    def add(self, layer, offset: int) -> None:
        self.layers.append(layer)
        self.offsets.append(offset)


def decode(
    data: bytes,
    *,
    keys: KeyStore | None = None,
    frame_format: str | None = "auto",
    fragments: FragmentBuffer | None = None,
    formats: FormatCache | None = None,
    records: bool = True,
    strict: bool = False,
) -> Telegram:
    """Decode one wireless telegram. Raises DecodeError only when not even the 10-byte link
    header is there (or in ``strict`` mode, for any problem)."""
    fb = _frame.normalize(data, frame_format=frame_format)
    link = LinkHeader.parse(fb.canonical)
    st = _State(buf=fb.canonical)
    if fb.l_field_added:
        st.notes.append("input had no L-field; the frame was taken to start at the C-field")
    if fb.trailing:
        st.notes.append(f"{len(fb.trailing)} bytes after the end of the frame ignored: {fb.trailing.hex()}")
    if fb.truncated:
        st.problems.append(f"L-field {fb.canonical[0]} announces {fb.canonical[0] + 1} bytes, "
                           f"only {len(fb.canonical)} present")
    try:
        _decode_layers(st, link, keys, fragments)
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
    if not st.message:
        st.message = _describe_success(link, st)
    recs, outcome = _application(st, link, formats, strict) if records else ((), "none")
    return Telegram(frame=fb, link=link, layers=tuple(st.layers), layer_offsets=tuple(st.offsets),
                    payload=st.payload, payload_offset=st.pos, encrypted_offset=st.encrypted_offset,
                    decryption=st.decryption, message=st.message, problems=tuple(st.problems),
                    notes=tuple(st.notes), records=tuple(recs), records_outcome=outcome,
                    in_clear=st.in_clear)


def _application(st: _State, link: LinkHeader, formats: FormatCache | None, strict: bool):
    """Records from the plaintext APL, by the payload kind of the transport layer's CI."""
    tpl = next((x for x in st.layers if isinstance(x, TransportLayer)), None)
    opaque = next((x for x in st.layers if isinstance(x, OpaquePayload)), None)
    if tpl is None and opaque is not None and st.payload:
        recs = vendor_payload_records(link.address, opaque.ci, st.payload)
        return (tuple(recs), "ok") if recs else ((), "none")
    if tpl is None or st.payload is None and tpl.info.payload in ("records", "compact", "format"):
        return (), "not_decrypted" if tpl is not None else "none"
    kind = tpl.info.payload
    apl = st.payload
    meter = (tpl.address or link.address).dll_bytes()
    to_meter = tpl.info.direction == "to device"
    try:
        if kind == "records":
            recs, err = parse_records(apl, to_meter=to_meter)
            if formats is not None and err is None and recs:
                formats.learn_records(meter, recs)
            if err is None and recs:
                recs = (*recs, *vendor_records(link.address, recs))
        elif kind == "compact":
            full, crc_ok = decode_compact(formats, meter, apl)
            if not crc_ok:
                st.notes.append("compact frame: full-frame CRC differs from the expanded records "
                                "(signature and length match)")
            recs, err = parse_records(full)
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
    if err is not None:
        if strict:
            raise err
        st.problems.append(str(err))
        return recs, "error"
    return recs, "ok"


def _decode_layers(st: _State, link: LinkHeader, keys: KeyStore | None, fragments: FragmentBuffer | None):
    buf = st.buf
    afl: AuthFragLayer | None = None
    while st.pos < len(buf):
        ci = buf[st.pos]
        start = st.pos
        if ci in ELL_CIS:
            ell = ExtendedLinkLayer.parse(buf, start)
            st.add(ell, start)
            st.pos = start + ell.header_size
            if ell.has_payload_crc:
                region = buf[st.pos:]
                if ell.encryption == 1 and _clear_crc_ok(region):
                    st.notes.append("ELL session number says AES-CTR but the payload CRC verifies in the clear: "
                                    "taken as already decrypted")
                    plain = region[2:]
                    st.in_clear = True
                elif ell.encryption == 1:
                    key = keys.lookup(link.address) if keys is not None else None
                    if key is None:
                        st.encrypted_offset = st.pos
                        raise MissingKeyError("ELL AES-CTR payload and no key", layer="ELL", offset=st.pos)
                    st.encrypted_offset = st.pos
                    plain = ell_ctr.decrypt(key, link.address.dll_bytes(), ell.cc, ell.session, region)
                    st.decryption = OK
                else:
                    plain = ell_ctr.check_payload_crc(region, decrypted=False)
                buf = st.buf = buf[:st.pos] + region[:2] + plain
                st.pos += 2
        elif ci == CI_AFL:
            afl = AuthFragLayer.parse(buf, start)
            st.add(afl, start)
            st.pos = start + afl.size
            if afl.fragment_id:
                if fragments is None:
                    st.notes.append(f"AFL fragment {afl.fragment_id}: reassembly needs the other "
                                       "fragments (pass a FragmentBuffer / feed them in order)")
                    st.payload = buf[st.pos:]
                    return
                done = fragments.add(link.address.dll_bytes(), afl, buf[st.pos:])
                if done is None:
                    st.notes.append(f"AFL fragment {afl.fragment_id} stored"
                                       + ("; more follow" if afl.more_fragments else "; earlier ones missing"))
                    st.payload = buf[st.pos:]
                    return
                afl, whole = done
                st.layers[-1] = afl
                buf = st.buf = buf[:st.pos] + whole
        elif ci in TPL_CIS:
            tpl = TransportLayer.parse(buf, start)
            st.add(tpl, start)
            st.pos = start + tpl.size
            _tpl_security(st, link, tpl, afl, keys, start)
            return
        else:
            opaque = opaque_for(ci)
            st.add(opaque, start)
            st.pos = start + 1
            if not opaque.known:
                st.problems.append(f"unknown CI 0x{ci:02X} at byte {start}; the rest is kept raw")
            st.payload = buf[st.pos:]
            return
    st.payload = buf[st.pos:]


def _clear_crc_ok(region: bytes) -> bool:
    return len(region) >= 2 and (region[0] | region[1] << 8) == crc16(region[2:])


def _tpl_security(st: _State, link: LinkHeader, tpl: TransportLayer, afl, keys, tpl_start: int) -> None:
    buf = st.buf
    mode = tpl.security_mode
    if not mode:
        st.payload = buf[st.pos:]
        if afl is not None and afl.mac is not None:
            st.notes.append("AFL MAC not verified: security mode 0 has no MAC key")
        return
    if mode not in SECURITY_MODES:
        st.notes.append(f"configuration field names reserved security mode {mode}: data taken as plaintext "
                        "(manufacturer use of the field)")
        st.payload = buf[st.pos:]
        st.in_clear = True
        return
    if mode in TPL_MODES and buf[st.pos:st.pos + 2] == b"\x2f\x2f":
        st.notes.append(f"security mode {mode} announced but the data starts 2F2F in the clear: "
                        "taken as already decrypted")
        st.payload = buf[st.pos:]
        st.in_clear = True
        return
    st.encrypted_offset = st.pos
    if mode not in TPL_MODES:
        raise UnsupportedModeError(f"security mode {mode} ({SECURITY_MODES.get(mode, 'reserved')}) "
                                   "is not supported", layer="TPL", offset=tpl_start)
    meter = tpl.address or link.address
    key = keys.lookup(meter, link.address) if keys is not None else None
    if key is None:
        raise MissingKeyError(f"mode {mode} payload and no key", layer="TPL", offset=st.pos)
    counter = afl.mcr if afl is not None and afl.mcr is not None else tpl.counter
    data = buf[st.pos:]
    blocks = tpl.config.encrypted_blocks
    short = blocks and len(data) < 16 * blocks
    if short:
        # Decrypt the whole blocks that did arrive (their 2F2F still proves the key), report the rest.
        whole = len(data) // 16
        if whole == 0:
            raise TruncatedError(f"{blocks} encrypted blocks announced, {len(data)} bytes present",
                                 layer="TPL", offset=len(buf))
        st.problems.append(f"{blocks} encrypted blocks announced, only {whole} whole blocks present "
                           f"({len(data)} bytes); decrypted those, dropped {len(data) - 16 * whole} bytes")
        blocks, data = whole, data[:16 * whole]
    ctx = SecurityContext(address=meter, acc=tpl.acc, encrypted_blocks=blocks,
                          from_meter=is_from_meter(link.c_field), counter=counter)
    module = TPL_MODES[mode]
    plain = module.decrypt(key, ctx, data)
    if short:
        st.buf = buf[:st.pos] + plain
        st.payload = plain
        st.decryption = TRUNCATED
        st.message = f"{meter.manufacturer_code} {meter.id}: key verified (2F2F) but the telegram is truncated"
        return
    if mode == 7:
        if afl is not None and afl.mac is not None:
            at = afl.auth_type
            if at is None or at > 7:
                raise UnsupportedModeError(f"AFL authentication type {at} is not supported", layer="AFL")
            mode7.verify_mac(key, ctx, afl, buf[tpl_start:])
        else:
            st.notes.append("mode 7 telegram without AFL MAC: not authenticated")
    elif afl is not None and afl.mac is not None:
        st.notes.append(f"AFL MAC not verified: security mode {mode} has no MAC key")
    st.buf = buf[:st.pos] + plain
    st.payload = plain
    st.decryption = OK


def _describe_success(link: LinkHeader, st: _State) -> str:
    tpl = next((x for x in st.layers if isinstance(x, TransportLayer)), None)
    meter = tpl.address if tpl is not None and tpl.address is not None else link.address
    who = f"{meter.manufacturer_code} {meter.id}"
    if st.decryption == OK:
        how = []
        ell = next((x for x in st.layers if isinstance(x, ExtendedLinkLayer)), None)
        if ell is not None and ell.encryption == 1:
            how.append("ELL AES-CTR, payload CRC verified")
        if tpl is not None and tpl.security_mode:
            how.append(f"mode {tpl.security_mode}, 2F2F verified")
            afl = next((x for x in st.layers if isinstance(x, AuthFragLayer)), None)
            if tpl.security_mode == 7 and afl is not None and afl.mac is not None:
                how.append("AFL MAC verified")
        return f"{who}: decrypted ({'; '.join(how)})"
    if st.decryption == TRUNCATED:
        return f"{who}: telegram is truncated"
    return f"{who}: not encrypted"


def _describe_failure(err: SecurityError, link: LinkHeader, st: _State) -> str:
    tpl = next((x for x in st.layers if isinstance(x, TransportLayer)), None)
    meter = tpl.address if tpl is not None and tpl.address is not None else link.address
    who = f"{meter.manufacturer_code} {meter.id}"
    reason = {
        NO_KEY: f"no key for meter {meter.id}",
        WRONG_KEY: f"wrong key for meter {meter.id}",
        MAC_MISMATCH: f"MAC mismatch for meter {meter.id} (the key decrypts, the message was altered "
                      "or the MAC key differs)",
        UNSUPPORTED_MODE: "unsupported security",
    }.get(err.reason, err.reason)
    return f"{who}: {reason} — {err.message}"


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
    tpl = next((x for x in layers if isinstance(x, TransportLayer)), None)
    afl = next((x for x in layers if isinstance(x, AuthFragLayer)), None)
    inner = bytes(payload)
    tpdu = b""
    for layer in reversed(layers):
        if isinstance(layer, TransportLayer):
            mode = layer.security_mode
            if mode and encrypt:
                if mode not in TPL_MODES:
                    raise UnsupportedModeError(f"cannot encrypt with security mode {mode}", layer="TPL")
                if key is None:
                    raise MissingKeyError(f"mode {mode} needs a key", layer="TPL")
                counter = afl.mcr if afl is not None and afl.mcr is not None else layer.counter
                ctx = SecurityContext(address=layer.address or address, acc=layer.acc,
                                      encrypted_blocks=layer.config.encrypted_blocks,
                                      from_meter=is_from_meter(c_field), counter=counter)
                inner = TPL_MODES[mode].encrypt(key, ctx, inner)
            inner = layer.to_bytes() + inner
            tpdu = inner
        elif isinstance(layer, AuthFragLayer):
            if layer.fcl & 0x0400 and encrypt:  # MAC present
                if tpl is None or tpl.security_mode != 7:
                    raise FieldError("an AFL MAC can only be computed for security mode 7", layer="AFL")
                if key is None:
                    raise MissingKeyError("AFL MAC needs a key", layer="AFL")
                counter = layer.mcr if layer.mcr is not None else tpl.counter
                ctx = SecurityContext(address=tpl.address or address, acc=tpl.acc,
                                      encrypted_blocks=tpl.config.encrypted_blocks,
                                      from_meter=is_from_meter(c_field), counter=counter)
                mac = mode7.compute_mac(key, ctx, layer, tpdu, AuthFragLayer.mac_length(layer.mcl))
                layer = replace(layer, mac=mac)
            inner = layer.to_bytes() + inner
        elif isinstance(layer, ExtendedLinkLayer):
            if layer.has_payload_crc:
                if layer.encryption == 1 and encrypt:
                    if key is None:
                        raise MissingKeyError("ELL encryption needs a key", layer="ELL")
                    inner = ell_ctr.encrypt(key, address.dll_bytes(), layer.cc, layer.session, inner)
                else:
                    inner = ell_ctr.with_crc(inner)
            inner = layer.to_bytes() + inner
        else:
            inner = layer.to_bytes() + inner
    length = 9 + len(inner)
    if length > 255:
        raise ValueError(f"telegram of {length + 1} bytes exceeds the L-field range")
    return LinkHeader(length=length, c_field=c_field, address=address).to_bytes() + inner
