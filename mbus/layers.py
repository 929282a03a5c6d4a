"""The CI -> layer registry: which layer a CI byte selects, how it parses, opens and seals.

Each layer is a frozen dataclass with ``split(data) -> (layer, rest)`` (``data`` starts at its CI),
``to_bytes()``, ``fields(offset)`` and ``to_json()``. A :class:`LayerKind` adds two hooks:

    open(layer, state)            after parsing: payload CRC, decryption, reassembly (DecodeState)
    seal(layer, inner, state)     when building: ``inner`` = everything after the layer; returns
                                  (layer, inner) with MAC / encryption / CRC applied (EncodeState)

Security itself lives in :mod:`mbus.security` (modes by number); these hooks only find the mode,
the key and the context. A CI nobody registered gives an unknown :class:`~mbus.tpl.OpaquePayload`
and a problem (see :func:`mbus.telegram.decode`).

    0x8C-0x8F  ELL        open: payload CRC / AES-CTR (ELL_MODES)   seal: the same, reversed
    0x90       AFL        open: fragment reassembly                  seal: MAC by the TPL's mode
    TPL_CIS    TPL        open: TPL security mode (decrypt, verify)  seal: encrypt        (final)
    0x81, 0xA0-0xB7       network layer, manufacturer specific: raw payload              (final)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .afl import CI_AFL, FCL_MACP, AuthFragLayer, FragmentBuffer
from .crc import crc16
from .dll import Address, LinkHeader, is_from_meter
from .ell import ELL_CIS, ExtendedLinkLayer
from .errors import FieldError, MissingKeyError, TruncatedError, UnsupportedModeError, WrongKeyError
from .keys import KeyStore
from .security import ELL_MODES, TPL_MODES, SecurityContext, can_decrypt, ell_ctr, is_known, mode_name
from .security.manufacturer import ManufacturerFrame, open_frame
from .tpl import TPL_CIS, OpaquePayload, TransportLayer

NOT_ENCRYPTED = "not_encrypted"
OK = "ok"
TRUNCATED = "truncated"


@dataclass(slots=True)
class DecodeState:
    """The working state of one decode, handed to the ``open`` hooks (mutable on purpose)."""

    buf: bytes  # canonical frame; replaced by the plaintext as layers are opened
    link: LinkHeader
    keys: KeyStore | None = None
    fragments: FragmentBuffer | None = None
    pos: int = 10
    layers: list = field(default_factory=list)
    offsets: list = field(default_factory=list)
    problems: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    verified: list = field(default_factory=list)  # what authentication succeeded ("AFL MAC verified")
    decryption: str = NOT_ENCRYPTED
    message: str = ""
    payload: bytes | None = None
    encrypted_offset: int | None = None
    in_clear: bool = False
    afl: AuthFragLayer | None = None
    done: bool = False  # set by a hook: nothing after this point is a layer
    wired: bool = False  # wired M-Bus: a reserved CF mode is the old "signature" field, data in the clear

    def add(self, layer, offset: int) -> None:
        self.layers.append(layer)
        self.offsets.append(offset)

    def finish(self, payload: bytes) -> None:
        self.payload = payload
        self.done = True


@dataclass(slots=True, kw_only=True)
class EncodeState:
    """What the ``seal`` hooks need: the link fields, the key and the layers being built."""

    c_field: int
    address: Address  # link address
    key: bytes | None
    encrypt: bool
    tpl: TransportLayer | None = None
    afl: AuthFragLayer | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class LayerKind:
    name: str
    split: Callable[[bytes], tuple[Any, bytes]]
    open: Callable[[Any, DecodeState], None] | None = None
    seal: Callable[[Any, bytes, EncodeState], tuple[Any, bytes]] | None = None
    final: bool = False  # the rest of the frame is this layer's payload, not more layers


LAYERS: dict[int, LayerKind] = {}


def register(cis: int | Iterable[int], kind: LayerKind, *, replace: bool = False) -> LayerKind:
    """Register ``kind`` under one CI or several; a CI already taken raises unless ``replace``."""
    cis = (cis,) if isinstance(cis, int) else tuple(cis)
    for ci in cis:
        if not 0 <= ci <= 255:
            raise ValueError(f"CI {ci!r} is outside 0..255")
        if ci in LAYERS and not replace:
            raise ValueError(f"CI 0x{ci:02X} is already registered ({LAYERS[ci].name})")
    for ci in cis:
        LAYERS[ci] = kind
    return kind


def unknown_layer(ci: int) -> OpaquePayload:
    return OpaquePayload(ci=ci, known=False, name="unknown CI")


# ----------------------------------------------------------------------------------------------
# security contexts (the same for decode and encode)


def tpl_context(tpl: TransportLayer, link_address: Address, c_field: int, afl: AuthFragLayer | None,
                blocks: int | None = None) -> SecurityContext:
    mode = TPL_MODES.get(tpl.security_mode or 0)
    counter = tpl.counter if mode is not None and not mode.uses_blocks else None  # mode 10: its own counter
    if counter is None:
        counter = afl.mcr if afl is not None and afl.mcr is not None else tpl.counter
    return SecurityContext(address=tpl.address or link_address, acc=tpl.acc,
                           encrypted_blocks=tpl.config.encrypted_blocks if blocks is None else blocks,
                           from_meter=is_from_meter(c_field), counter=counter, header=tpl.to_bytes(),
                           cfe=tpl.cfe, encrypted_bytes=tpl.cf & 0xFF if tpl.cf is not None else None)


def _check_key_size(key: bytes, mode, meter: Address) -> None:
    if len(key) != mode.key_size:
        raise WrongKeyError(f"the key for meter {meter.id} has {len(key)} bytes, security mode {mode.number} "
                            f"takes {mode.key_size}", layer=mode.layer)


def ell_context(ell: ExtendedLinkLayer, link_address: Address) -> SecurityContext:
    return SecurityContext(address=link_address, cc=ell.cc, session=ell.session)


# ----------------------------------------------------------------------------------------------
# ELL


def _clear_crc_ok(region: bytes) -> bool:
    return len(region) >= 2 and (region[0] | region[1] << 8) == crc16(region[2:])


def open_ell(ell: ExtendedLinkLayer, st: DecodeState) -> None:
    if not ell.has_payload_crc:
        return
    region = st.buf[st.pos:]
    if ell.encryption and _clear_crc_ok(region):
        st.notes.append("ELL session number says AES-CTR but the payload CRC verifies in the clear: "
                        "taken as already decrypted")
        plain = region[2:]
        st.in_clear = True
    elif ell.encryption:
        mode = ELL_MODES.get(ell.encryption)
        if mode is None:
            raise UnsupportedModeError(f"ELL encryption {ell.encryption} is not supported", layer="ELL")
        key = st.keys.lookup(st.link.address) if st.keys is not None else None
        st.encrypted_offset = st.pos
        if key is None:
            raise MissingKeyError("ELL AES-CTR payload and no key", layer="ELL", offset=st.pos)
        _check_key_size(key, mode, st.link.address)
        plain = mode.decrypt(key, ell_context(ell, st.link.address), region)
        st.decryption = OK
    else:
        plain = ell_ctr.check_payload_crc(region, decrypted=False)
    st.buf = st.buf[:st.pos] + region[:2] + plain
    st.pos += 2


def seal_ell(ell: ExtendedLinkLayer, inner: bytes, es: EncodeState) -> tuple[ExtendedLinkLayer, bytes]:
    if not ell.has_payload_crc:
        return ell, inner
    if ell.encryption and es.encrypt:
        if es.key is None:
            raise MissingKeyError("ELL encryption needs a key", layer="ELL")
        mode = ELL_MODES.get(ell.encryption)
        if mode is None:
            raise UnsupportedModeError(f"cannot encrypt with ELL encryption {ell.encryption}", layer="ELL")
        return ell, mode.encrypt(es.key, ell_context(ell, es.address), inner)
    return ell, ell_ctr.with_crc(inner)


# ----------------------------------------------------------------------------------------------
# AFL


def open_afl(afl: AuthFragLayer, st: DecodeState) -> None:
    st.afl = afl
    if not afl.fragment_id:
        return
    if st.fragments is None:
        st.notes.append(f"AFL fragment {afl.fragment_id}: reassembly needs the other "
                        "fragments (pass a FragmentBuffer / feed them in order)")
        st.finish(st.buf[st.pos:])
        return
    done = st.fragments.add(st.link.address.dll_bytes(), afl, st.buf[st.pos:])
    if done is None:
        st.notes.append(f"AFL fragment {afl.fragment_id} stored"
                        + ("; more follow" if afl.more_fragments else "; earlier ones missing"))
        st.finish(st.buf[st.pos:])
        return
    first, whole = done
    st.layers[-1] = st.afl = first
    st.buf = st.buf[:st.pos] + whole


def seal_afl(afl: AuthFragLayer, inner: bytes, es: EncodeState) -> tuple[AuthFragLayer, bytes]:
    if not afl.fcl & FCL_MACP or not es.encrypt:
        return afl, inner
    tpl = es.tpl
    if tpl is None or not tpl.security_mode:
        raise FieldError("an AFL MAC needs a transport layer with a security mode", layer="AFL")
    mode = TPL_MODES.get(tpl.security_mode)
    if mode is None:
        raise FieldError(f"an AFL MAC cannot be computed for security mode {tpl.security_mode}", layer="AFL")
    if es.key is None:
        raise MissingKeyError("AFL MAC needs a key", layer="AFL")
    ctx = tpl_context(tpl, es.address, es.c_field, afl)
    return mode.authenticate(es.key, ctx, afl, inner), inner


# ----------------------------------------------------------------------------------------------
# TPL


def open_tpl(tpl: TransportLayer, st: DecodeState) -> None:
    """The transport layer's security mode: decrypt, verify (2F2F, CCM tag, AFL MAC), set the payload.

    Mode 0 is plaintext. A mode this stack cannot decrypt (manufacturer, specific usage, 8, 9, 13,
    reserved numbers) is offered to the manufacturer openers (:mod:`mbus.security.manufacturer`);
    when none opens it, UnsupportedModeError: no records are ever parsed from undecrypted bytes."""
    tpl_start = st.offsets[-1]
    buf, afl = st.buf, st.afl
    number = tpl.security_mode
    if not number:
        if afl is not None and afl.mac is not None:
            st.notes.append("AFL MAC not verified: security mode 0 has no MAC key")
        st.finish(buf[st.pos:])
        return
    meter = tpl.address or st.link.address
    data = buf[st.pos:]
    st.encrypted_offset = st.pos
    if st.wired and not is_known(number):
        # EN 13757-3:2004 wired frames carry a 2-byte "signature" here that many meters fill with
        # status bits or FF FF (libmbus ignores it): a reserved number there is not a cipher.
        st.notes.append(f"wired frame whose signature / configuration field names reserved mode {number}: "
                        "data taken as plaintext (pre-EN 13757-7 use of the field)")
        st.in_clear = True
        st.encrypted_offset = None
        st.finish(data)
        return
    if not can_decrypt(number):
        key = st.keys.lookup(meter, st.link.address) if st.keys is not None else None
        opened = open_frame(ManufacturerFrame(link_address=st.link.address, c_field=st.link.c_field, ci=tpl.ci,
                                              mode=number, tpl=tpl, header=buf[:st.pos], data=data, key=key))
        if opened is None:
            raise UnsupportedModeError(f"security mode {number} ({mode_name(number)}) is not supported; "
                                       "no records are decoded from its encrypted bytes", layer="TPL",
                                       offset=tpl_start)
        st.buf = buf[:st.pos] + opened.payload
        if opened.in_clear:
            st.notes.append(f"security mode {number}: {opened.how}; taken as plaintext")
            st.in_clear = True
            st.encrypted_offset = None
        else:
            st.verified.append(opened.how)
            st.decryption = OK
        st.finish(opened.payload)
        return
    mode = TPL_MODES[number]
    if mode.filler_check and data[:2] == b"\x2f\x2f":
        st.notes.append(f"security mode {number} announced but the data starts 2F2F in the clear: "
                        "taken as already decrypted")
        st.in_clear = True
        st.encrypted_offset = None
        st.finish(data)
        return
    key = st.keys.lookup(meter, st.link.address) if st.keys is not None else None
    if key is None:
        raise MissingKeyError(f"mode {number} payload and no key", layer="TPL", offset=st.pos)
    _check_key_size(key, mode, meter)
    blocks = tpl.config.encrypted_blocks
    short = mode.uses_blocks and blocks and len(data) < 16 * blocks
    if short:
        # Decrypt the whole blocks that did arrive (their 2F2F still proves the key), report the rest.
        whole = len(data) // 16
        if whole == 0:
            raise TruncatedError(f"{blocks} encrypted blocks announced, {len(data)} bytes present",
                                 layer="TPL", offset=len(buf))
        st.problems.append(f"{blocks} encrypted blocks announced, only {whole} whole blocks present "
                           f"({len(data)} bytes); decrypted those, dropped {len(data) - 16 * whole} bytes")
        blocks, data = whole, data[:16 * whole]
    ctx = tpl_context(tpl, st.link.address, st.link.c_field, afl, blocks)
    plain = mode.decrypt(key, ctx, data)  # verifies 2F2F / the CCM tag before anything is parsed
    st.buf = buf[:st.pos] + plain
    if short:
        st.decryption = TRUNCATED
        st.message = f"{meter.manufacturer_code} {meter.id}: key verified (2F2F) but the telegram is truncated"
        st.finish(plain)
        return
    check = mode.verify(key, ctx, afl, buf[tpl_start:])
    if check.note:
        st.notes.append(check.note)
    st.verified.append(mode.verified_text())
    if check.verified:
        st.verified.append(check.verified)
    st.decryption = OK
    st.finish(plain)


def seal_tpl(tpl: TransportLayer, inner: bytes, es: EncodeState) -> tuple[TransportLayer, bytes]:
    number = tpl.security_mode
    if not number or not es.encrypt:
        return tpl, inner
    if not can_decrypt(number):
        raise UnsupportedModeError(f"cannot encrypt with security mode {number} ({mode_name(number)})",
                                   layer="TPL")
    if es.key is None:
        raise MissingKeyError(f"mode {number} needs a key", layer="TPL")
    mode = TPL_MODES[number]
    if len(es.key) != mode.key_size:
        raise FieldError(f"security mode {number} takes a {mode.key_size}-byte key, not {len(es.key)} bytes",
                         layer="TPL")
    ctx = tpl_context(tpl, es.address, es.c_field, es.afl)
    return tpl, mode.encrypt(es.key, ctx, inner)
# ----------------------------------------------------------------------------------------------
# the table

ELL = register(ELL_CIS, LayerKind(name="ELL", split=ExtendedLinkLayer.split, open=open_ell, seal=seal_ell))
AFL = register(CI_AFL, LayerKind(name="AFL", split=AuthFragLayer.split, open=open_afl, seal=seal_afl))
TPL = register(TPL_CIS, LayerKind(name="TPL", split=TransportLayer.split, open=open_tpl, seal=seal_tpl, final=True))
RAW = register((0x81, *range(0xA0, 0xB8)), LayerKind(name="raw", split=OpaquePayload.split, final=True))
