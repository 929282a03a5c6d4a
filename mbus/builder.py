"""Frame builder: link-layer dialogue frames of both directions from a small, readable spec.

A spec is a mapping (from a TOML / JSON file or ``--set field=value`` options)::

    kind = "SND-IR"                 # see KINDS
    manufacturer = "ELS"
    id = "12345678"
    version = 0x33
    device_type = 7
    security = 5                    # 0 (default), 2, 5, 7 or 10
    access = "limited"              # none | no-window | limited | unlimited
    data = "0C13 78563412"          # plaintext application data (records), hex
    acc = 0x2A

    [ell]                           # optional extended link layer
    ci = 0x8D                       # 0x8C .. 0x8F
    encrypt = true                  # AES-CTR (needs a session number: ci 0x8D / 0x8F)
    session = 0x12345

Every field has a default that fits the kind (see :data:`KINDS` and :func:`build`); a field that is
wrong is named in the :class:`~mbus.errors.FieldError`. The link address is always the meter's
(EN 13757-4: in frames from the other station it names the meter addressed).

Encryption, MACs, CRC-free canonical bytes and the L-field come from :func:`mbus.telegram.encode`;
this module only decides which layers and header fields a frame of a kind carries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .dll import Address
from .ell import ELL_CIS, ExtendedLinkLayer
from .errors import FieldError
from .keys import parse_key
from .security import can_decrypt, tpl_mode
from .tpl import TPL_CIS, TransportLayer


@dataclass(frozen=True, slots=True)
class FrameKind:
    name: str
    c_field: int
    from_meter: bool
    data_ci: int  # default CI when the frame carries application data
    bare_ci: int  # default CI without application data
    carries_data: bool  # whether the kind normally carries records
    answer: str  # what the other side sends back (for logs and the session flowgraphs)


# link.md §3 (C-field values) and phy.md §6.4 (dialogue); CIs from link.md §6.
KINDS: dict[str, FrameKind] = {k.name: k for k in (
    FrameKind("SND-NR", 0x44, True, 0x7A, 0x8A, True, "none (REQ/SND-UD if access offered)"),
    FrameKind("SND-IR", 0x46, True, 0x7A, 0x8A, True, "CNF-IR"),
    FrameKind("ACC-NR", 0x47, True, 0x7A, 0x8A, False, "optional"),
    FrameKind("ACC-DMD", 0x48, True, 0x7A, 0x8A, False, "ACK"),
    FrameKind("RSP-UD", 0x08, True, 0x7A, 0x8A, True, "none"),
    FrameKind("SND-UD", 0x53, False, 0x5A, 0x80, True, "ACK"),
    FrameKind("SND-UD2", 0x43, False, 0x5A, 0x80, True, "RSP-UD"),
    FrameKind("SND-NKE", 0x40, False, 0x5A, 0x80, False, "none"),
    FrameKind("REQ-UD1", 0x4A, False, 0x5A, 0x80, False, "RSP-UD or ACK"),
    FrameKind("REQ-UD2", 0x4B, False, 0x5A, 0x80, False, "RSP-UD"),
    FrameKind("CNF-IR", 0x06, False, 0x5A, 0x80, False, "none"),
    FrameKind("ACK", 0x00, False, 0x5A, 0x80, False, "none"),
)}
KIND_BY_C = {k.c_field: k for k in KINDS.values()}

# (B, A) of the configuration field (link.md §9.2); ELL CC carries them as bits 7 and 2.
ACCESS = {"none": (0, 0), "no-window": (0, 1), "limited": (1, 0), "unlimited": (1, 1)}

KNOWN_FIELDS = {"kind", "manufacturer", "id", "version", "device_type", "c_field", "fcb", "direction", "ci",
                "header", "acc", "status", "security", "access", "synchronous", "content", "blocks", "data",
                "counter", "key_id", "tag", "afl", "ell", "fast_response"}
ELL_FIELDS = {"ci", "cc", "acc", "session", "encrypt", "receiver"}
RECEIVER_FIELDS = {"manufacturer", "id", "version", "device_type"}


def kind_of(c_field: int) -> FrameKind | None:
    """The frame kind of a C-field (ignoring FCB/FCV and ACD/DFC bits where the kind allows)."""
    if c_field in KIND_BY_C:
        return KIND_BY_C[c_field]
    if c_field & 0x40 == 0:  # responses: ACD (0x20) / DFC (0x10) flags
        return KIND_BY_C.get(c_field & 0x0F)
    return KIND_BY_C.get(c_field & ~0x20)  # SND-UD with FCB toggled (0x73)


def kind_name(telegram: bytes) -> str:
    """The frame kind of a canonical telegram, for logs ("C0x12" when the C-field is no kind)."""
    kind = kind_of(telegram[1])
    return kind.name if kind else f"C0x{telegram[1]:02X}"


@dataclass(frozen=True, slots=True)
class BuiltFrame:
    kind: FrameKind
    telegram: bytes  # canonical (no CRCs)


def build(spec: dict[str, Any], key: bytes | None = None) -> BuiltFrame:
    """Build the canonical telegram a spec describes; ``key`` encrypts / authenticates when the spec
    asks for security (a ``key`` inside the spec is used when the argument is None)."""
    from .telegram import encode  # telegram imports the whole stack; keep this module light

    spec = dict(spec)
    _check_names(spec, KNOWN_FIELDS | {"key"}, "")
    kind = KINDS.get(str(_req(spec, "kind")).upper())
    if kind is None:
        raise FieldError(f"kind {spec['kind']!r}: use one of {', '.join(KINDS)}")
    if key is None and spec.get("key"):
        try:
            key = parse_key(str(spec["key"]), where="key")
        except ValueError as err:
            raise FieldError(str(err)) from None
    address = Address.make(str(_req(spec, "manufacturer")), str(_req(spec, "id")),
                           _int(spec.get("version", 1), "version", 255),
                           _int(spec.get("device_type", 7), "device_type", 255))
    from_meter = kind.from_meter
    if "direction" in spec:
        if kind.name != "ACK":
            raise FieldError(f"direction: only an ACK can be sent by either side, not a {kind.name}")
        if spec["direction"] not in ("meter", "other"):
            raise FieldError(f"direction {spec['direction']!r}: use 'meter' or 'other'")
        from_meter = spec["direction"] == "meter"
    c_field = _c_field(spec, kind)

    data = _hex(spec.get("data", ""), "data")
    security = _int(spec.get("security", 0), "security", 31)
    if security and not can_decrypt(security):
        raise FieldError(f"security {security}: the builder makes mode 0 and the modes of mbus.security "
                         "(2, 3, 5, 7, 10)")
    access = str(spec.get("access", "limited" if kind.name in ("SND-IR", "ACC-NR", "ACC-DMD") else "none"))
    if access not in ACCESS:
        raise FieldError(f"access {access!r}: use one of {', '.join(ACCESS)}")
    b_bit, a_bit = ACCESS[access]
    sync = bool(spec.get("synchronous", False))
    content = _int(spec.get("content", 0), "content", 3)

    ci = _tpl_ci(spec, kind, from_meter, data)
    layers: list = []
    ell = spec.get("ell")
    if ell is not None:
        layers.append(_ell(ell, b_bit, a_bit, sync, bool(spec.get("fast_response", False))))
    acc = _int(spec.get("acc", 0), "acc", 255)
    payload = data
    if ci is None:
        if security:
            raise FieldError("security needs a transport header; do not set ci = 'none'")
        if data:
            raise FieldError("data needs a CI; do not set ci = 'none'")
    else:
        info = TPL_CIS[ci]
        if info.header == "none":
            if security:
                raise FieldError(f"ci 0x{ci:02X} has no transport header, so no security")
            layers.append(TransportLayer(ci=ci))
        else:
            cf, cfe, counter, afl, payload = _security(spec, security, data, b_bit, a_bit, sync, content)
            if afl is not None:
                layers.append(afl)
            layers.append(TransportLayer(ci=ci, address=address if info.header == "long" else None, acc=acc,
                                         status=_int(spec.get("status", 0), "status", 255), cf=cf, cfe=cfe,
                                         counter=counter))
    ell_needs_key = ell is not None and bool(ell.get("encrypt"))
    if (security or ell_needs_key) and key is None:
        raise FieldError(f"security {security}{' + ELL encryption' if ell_needs_key else ''} needs a key "
                         "(--key or key = ... in the spec)")
    try:
        telegram = encode(c_field=c_field, address=address, layers=layers, payload=payload, key=key)
    except ValueError as err:  # L-field overflow, missing header fields
        raise FieldError(str(err)) from None
    return BuiltFrame(kind=kind, telegram=telegram)


# ----------------------------------------------------------------------------------------------
# pieces


def _c_field(spec: dict, kind: FrameKind) -> int:
    if "c_field" in spec:
        return _int(spec["c_field"], "c_field", 255)
    c = kind.c_field
    if kind.name == "SND-UD" and spec.get("fcb"):
        c |= 0x20
    elif "fcb" in spec and kind.name != "SND-UD":
        raise FieldError(f"fcb: only SND-UD toggles the frame count bit, not {kind.name}")
    return c


def _tpl_ci(spec: dict, kind: FrameKind, from_meter: bool, data: bytes) -> int | None:
    if "ci" in spec:
        if spec["ci"] == "none":
            return None
        ci = _int(spec["ci"], "ci", 255)
        if ci not in TPL_CIS:
            raise FieldError(f"ci 0x{ci:02X} is not a transport-layer CI the builder knows")
        return ci
    header = spec.get("header", "short")
    if header not in ("short", "long"):
        raise FieldError(f"header {header!r}: use 'short' or 'long'")
    if from_meter:
        if data or kind.carries_data:
            return 0x72 if header == "long" else 0x7A
        return 0x8B if header == "long" else 0x8A
    if data or kind.carries_data:
        return 0x5B if header == "long" else 0x5A
    return 0x80


def _security(spec, security, data, b_bit, a_bit, sync, content):
    """(cf, cfe, tpl counter, AFL or None, payload) for the transport header."""
    if security == 0:
        if "blocks" in spec:
            raise FieldError("blocks: only meaningful with security 5 or 7")
        cf = b_bit << 15 | a_bit << 14 | int(sync) << 13 | content << 2
        return cf, None, None, None, data
    mode = tpl_mode(security)
    try:  # the mode shapes its plaintext: 2F2F + 2F padding to N blocks (CBC modes), as is (mode 10)
        plain, blocks = mode.prepare_plain(data, _int(spec["blocks"], "blocks", 255) if "blocks" in spec else None)
    except ValueError as err:
        raise FieldError(str(err)) from None
    cf, ext, afl = mode.build_config(blocks=blocks, b_bit=b_bit, a_bit=a_bit, sync=sync, content=content,
                                     options=_Options(spec))
    return cf, ext.cfe, ext.counter, afl, plain


class _Options:
    """The frame spec as a security mode's ``build_config`` reads it (mbus.security)."""

    __slots__ = ("spec",)

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec

    def int(self, name: str, default: int, maximum: int, value: Any = None) -> int:
        """Field ``name`` of the spec (``value`` when the mode read it from a sub-table)."""
        if value is None:
            value = self.spec.get(name, default)
        return _int(value, name, maximum)

    def table(self, name: str, known: set[str]) -> dict[str, Any]:
        table = self.spec.get(name, {})
        if not isinstance(table, dict):
            raise FieldError(f"{name}: give a table ({', '.join(sorted(known))})")
        _check_names(table, known, f"{name}.")
        return table


def _ell(ell: Any, b_bit: int, a_bit: int, sync: bool, fast: bool) -> ExtendedLinkLayer:
    if not isinstance(ell, dict):
        raise FieldError("ell: give a table (ci, cc, acc, session, encrypt, receiver)")
    _check_names(ell, ELL_FIELDS, "ell.")
    encrypt = bool(ell.get("encrypt", False))
    ci = _int(ell.get("ci", 0x8D if encrypt else 0x8C), "ell.ci", 255)
    if ci not in ELL_CIS:
        raise FieldError(f"ell.ci 0x{ci:02X}: use 0x8C, 0x8D, 0x8E or 0x8F")
    has_rx, has_sn = ELL_CIS[ci]
    if encrypt and not has_sn:
        raise FieldError(f"ell.encrypt: ELL 0x{ci:02X} has no session number; use 0x8D or 0x8F")
    cc = ell.get("cc")
    cc = (b_bit << 7 | a_bit << 2 | int(sync) << 5 | int(fast) << 6) if cc is None else _int(cc, "ell.cc", 255)
    session = None
    if has_sn:
        session = _int(ell.get("session", 1), "ell.session", (1 << 29) - 1) | (int(encrypt) << 29)
    receiver = None
    if has_rx:
        r = ell.get("receiver")
        if not isinstance(r, dict):
            raise FieldError(f"ell.receiver: ELL 0x{ci:02X} needs the receiver's manufacturer, id, version, "
                             "device_type")
        _check_names(r, RECEIVER_FIELDS, "ell.receiver.")
        receiver = Address.make(str(_req(r, "manufacturer", "ell.receiver.")), str(_req(r, "id", "ell.receiver.")),
                                _int(r.get("version", 0), "ell.receiver.version", 255),
                                _int(r.get("device_type", 0x31), "ell.receiver.device_type", 255))
    return ExtendedLinkLayer(ci=ci, cc=cc, acc=_int(ell.get("acc", 0), "ell.acc", 255), receiver=receiver,
                             session=session)


# ----------------------------------------------------------------------------------------------
# value parsing (spec values come from TOML, JSON or the command line, so accept ints and strings)


def _check_names(d: dict, known: set[str], prefix: str) -> None:
    unknown = sorted(set(d) - known)
    if unknown:
        raise FieldError(f"unknown field {prefix}{unknown[0]}; known: {', '.join(sorted(known))}")


def _req(d: dict, name: str, prefix: str = ""):
    if name not in d or d[name] in (None, ""):
        raise FieldError(f"{prefix}{name} is required")
    return d[name]


def _int(value: Any, name: str, maximum: int) -> int:
    if isinstance(value, bool):
        raise FieldError(f"{name}: expected a number, not {value!r}")
    if isinstance(value, str):
        try:
            value = int(value, 0)
        except ValueError:
            raise FieldError(f"{name}: {value!r} is not a number (use 12 or 0x0C)") from None
    if not isinstance(value, int) or not 0 <= value <= maximum:
        raise FieldError(f"{name}: {value!r} is outside 0..{maximum}")
    return value


def _hex(value: Any, name: str, size: int | None = None) -> bytes:
    if isinstance(value, list):
        value = "".join(str(v) for v in value)
    text = "".join(str(value).split())
    try:
        out = bytes.fromhex(text)
    except ValueError:
        raise FieldError(f"{name}: {text[:24]!r} is not hex") from None
    if size is not None and len(out) != size:
        raise FieldError(f"{name}: {len(out)} bytes, expected {size}")
    return out


def parse_assignments(items: list[str]) -> dict[str, Any]:
    """``--set a=b`` options as a nested mapping (``ell.ci=0x8D`` -> {"ell": {"ci": "0x8D"}})."""
    out: dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise FieldError(f"--set {item!r}: write field=value")
        parts = name.strip().split(".")
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise FieldError(f"--set {item!r}: {p} is not a table")
        v: Any = value.strip()
        if v.lower() in ("true", "false"):
            v = v.lower() == "true"
        node[parts[-1]] = v
    return out


def merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out
