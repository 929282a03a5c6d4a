"""Security modes, one module per mode, registered by number (EN 13757-7 and the ELL).

Every mode is a :class:`SecurityMode`: it owns its configuration-field layout (which bits mean
what, which extension bytes follow CF), ``decrypt`` / ``encrypt`` and ``verify`` (MAC). Decryption
checks its plaintext (2F2F filler, ELL payload CRC) and raises :class:`~mbus.errors.WrongKeyError`;
a MAC that differs raises :class:`~mbus.errors.MACMismatchError`. AES and CMAC come from
``cryptography`` (see :mod:`.aes`).

Two tables share the one API: :data:`TPL_MODES` (the CF mode number of the transport layer) and
:data:`ELL_MODES` (the ENC field of the ELL session number). A new mode is one module with a
``SECURITY_MODE`` object plus one line in :data:`_BUILTIN`; tests and plug-ins call :func:`register`.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import Any

from ..dll import Address
from ..errors import FieldError, UnsupportedModeError

# The standard's names for every mode number, implemented or not (security.md §1).
MODE_NAMES = {
    0: "no encryption", 1: "manufacturer specific", 2: "DES-CBC, IV = 0", 3: "DES-CBC, IV != 0",
    4: "specific usage", 5: "AES-128-CBC, IV from address and ACC", 6: "reserved",
    7: "AES-128-CBC, IV = 0, KDF keys", 8: "AES-CTR + CMAC", 9: "AES-GCM",
    10: "AES-128-CCM", 11: "reserved", 12: "reserved", 13: "TLS", 14: "reserved", 15: "specific usage",
    **{n: "reserved / manufacturer use" for n in range(16, 32)},
}


@dataclass(frozen=True, slots=True, kw_only=True)
class SecurityContext:
    """What a security mode needs besides the key and the data."""

    address: Address  # the meter's address: long TPL header if present, else the link header
    acc: int | None = None  # TPL access number
    encrypted_blocks: int = 0  # N from the configuration field (0 = all whole blocks)
    from_meter: bool = True  # direction: meter -> partner (Kenc/Kmac) or partner -> meter (Lenc/Lmac)
    counter: int | None = None  # message counter for KDF (AFL MCR or TPL counter)
    cc: int | None = None  # ELL communication control (ELL modes)
    session: int | None = None  # ELL session number (ELL modes)
    header: bytes = b""  # the TPL header as on air, CI to the last CF extension byte (mode 10's AAD)
    cfe: int | None = None  # configuration-field extension (modes 7 and 10)
    encrypted_bytes: int | None = None  # mode 10: CF bits 7-0 (0xFF = all)
    date: _dt.date | None = None  # mode 3: the day the meter encrypted (not in the telegram)


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigExtension:
    """The bytes a mode adds after the configuration field (CFE, counter, key version)."""

    cfe: int | None = None
    counter: int | None = None
    key_version: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Verification:
    """What :meth:`SecurityMode.verify` established: text for the success message, or a note."""

    verified: str = ""  # e.g. "AFL MAC verified"
    note: str = ""  # e.g. "mode 7 telegram without AFL MAC: not authenticated"


class SecurityMode:
    """Base class of every security mode. Subclasses set ``number`` and ``name`` and override
    what differs; the defaults are the layout of modes 0-5 (EN 13757-7 CF bits) and no MAC."""

    number: int = -1
    name: str = ""
    layer: str = "TPL"
    implemented: bool = True  # False: the layout is known, decryption is not (-> unsupported_mode)
    cfe_size: int = 0  # bytes of the CF extension (CFE); 0: no extension, the hooks below are not called
    key_size: int = 16  # bytes of the meter key the mode takes (DES: 8)
    uses_blocks: bool = True  # CF bits 7-4 count 16-byte encrypted blocks (mode 10: bytes, no blocks)
    filler_check: bool = True  # the plaintext starts 2F 2F (and 2F 2F in the clear means "not encrypted")

    # --- configuration field -------------------------------------------------------------------

    def flags(self, cf: int) -> dict:
        d = {"bidirectional": bool(cf & 0x8000), "accessibility": bool(cf & 0x4000),
             "synchronous": bool(cf & 0x2000), "content": (cf >> 2) & 3,
             "repeated_access": bool(cf & 2), "hop_count": cf & 1}
        if self.number != 0:
            d["encrypted_blocks"] = (cf >> 4) & 0x0F
        return d

    def has_counter(self, cf: int) -> bool:
        return False

    def parse_extension(self, cf: int, data: bytes, pos: int) -> ConfigExtension:
        """Extension fields after CF at ``pos``; raise TruncatedError when they are cut."""
        return ConfigExtension()

    def extension_bytes(self, cf: int, ext: ConfigExtension) -> bytes:
        return b""

    def cfe_meaning(self, cfe: int) -> str:
        """The explain text of the configuration-field extension byte(s)."""
        return f"0x{cfe:0{2 * self.cfe_size}X}"

    def extension_fields(self, cf: int, ext: ConfigExtension, offset: int) -> list[tuple[int, int, str, str]]:
        """Explain rows (offset, size, name, meaning) of the extension bytes."""
        out, pos = [], offset
        if ext.cfe is not None:
            out.append((pos, self.cfe_size, "CFE", self.cfe_meaning(ext.cfe)))
            pos += self.cfe_size
        if ext.counter is not None:
            out.append((pos, 4, "counter", f"message counter {ext.counter}"))
            pos += 4
        if ext.key_version is not None:
            out.append((pos, 1, "key version", str(ext.key_version)))
        return out

    def build_config(self, *, blocks: int, b_bit: int, a_bit: int, sync: bool, content: int,
                     options: dict[str, Any]) -> tuple[int, ConfigExtension, Any]:
        """(CF, extension, AFL layer or None) for the frame builder; ``options`` is the frame spec."""
        cf = b_bit << 15 | a_bit << 14 | int(sync) << 13 | self.number << 8 | blocks << 4 | content << 2
        return cf, ConfigExtension(), None

    def prepare_plain(self, data: bytes, blocks: int | None) -> tuple[bytes, int]:
        """(plaintext to encrypt, CF block count) for the frame builder: the CBC modes put 2F 2F in
        front and pad with 2F to ``blocks`` (None: as few as the data needs)."""
        plain = b"\x2f\x2f" + data
        need = -(-len(plain) // 16)
        if blocks is None:
            blocks = need
        if blocks < need:
            raise ValueError(f"blocks {blocks}: the data needs {need} blocks of 16 bytes")
        if blocks == 0:
            raise ValueError("blocks 0: give at least one encrypted block")
        if blocks > 15:
            raise ValueError(f"blocks {blocks}: the configuration field holds at most 15")
        return plain + b"\x2f" * (16 * blocks - len(plain)), blocks

    def verified_text(self) -> str:
        """How a successful decryption was checked, for the telegram's message."""
        return f"mode {self.number}, 2F2F verified"

    # --- crypto --------------------------------------------------------------------------------

    def decrypt(self, key: bytes, ctx: SecurityContext, data: bytes) -> bytes:
        raise UnsupportedModeError(f"security mode {self.number} ({self.name}) is not supported",
                                   layer=self.layer)

    def encrypt(self, key: bytes, ctx: SecurityContext, plain: bytes) -> bytes:
        raise UnsupportedModeError(f"cannot encrypt with security mode {self.number}", layer=self.layer)

    def verify(self, key: bytes, ctx: SecurityContext, afl, tpdu: bytes) -> Verification:
        """Check the message authentication after decryption; raise MACMismatchError."""
        if afl is not None and afl.mac is not None:
            return Verification(note=f"AFL MAC not verified: security mode {self.number} has no MAC key")
        return Verification()

    def authenticate(self, key: bytes, ctx: SecurityContext, afl, tpdu: bytes):
        """The AFL with its MAC computed over ``tpdu`` (the builder's side of :meth:`verify`)."""
        raise FieldError(f"an AFL MAC cannot be computed for security mode {self.number}", layer="AFL")


class _Plain(SecurityMode):
    """Mode 0 and the modes without an implementation: the layout only."""

    implemented = False

    def __init__(self, number: int) -> None:
        self.number = number
        self.name = MODE_NAMES.get(number, "reserved")


TPL_MODES: dict[int, SecurityMode] = {}
ELL_MODES: dict[int, SecurityMode] = {}
_TABLES = {"TPL": TPL_MODES, "ELL": ELL_MODES}


def register(mode: SecurityMode, *, replace: bool = False) -> SecurityMode:
    """Add a mode under its number in the table of its layer ("TPL" or "ELL")."""
    table = _TABLES.get(mode.layer)
    if table is None:
        raise ValueError(f"security mode layer {mode.layer!r}: use one of {', '.join(_TABLES)}")
    if not isinstance(mode.number, int) or not 0 <= mode.number <= 31:
        raise ValueError(f"security mode number {mode.number!r} is outside 0..31")
    if mode.number in table and not replace:
        raise ValueError(f"{mode.layer} security mode {mode.number} is already registered")
    table[mode.number] = mode
    return mode


def tpl_mode(number: int) -> SecurityMode:
    """The registered TPL mode, or a layout-only stand-in (decrypt raises UnsupportedModeError)."""
    mode = TPL_MODES.get(number)
    return mode if mode is not None else _plain(number)


def is_known(number: int) -> bool:
    """A mode number the standard gives a meaning (not reserved), or a registered mode."""
    return number in TPL_MODES or (number in MODE_NAMES and "reserved" not in MODE_NAMES[number])


def can_decrypt(number: int) -> bool:
    mode = TPL_MODES.get(number)
    return mode is not None and mode.implemented


def mode_name(number: int) -> str:
    mode = TPL_MODES.get(number)
    return mode.name if mode is not None else MODE_NAMES.get(number, "reserved")


_PLAIN_CACHE: dict[int, SecurityMode] = {}


def _plain(number: int) -> SecurityMode:
    mode = _PLAIN_CACHE.get(number)
    if mode is None:
        mode = _PLAIN_CACHE[number] = _Plain(number)
    return mode


# --- the registry: one line per mode module -----------------------------------------------------
from . import des, ell_ctr, mode5, mode7, mode10  # noqa: E402  (the modules import the base class above)

_BUILTIN = (des.MODE_2, des.MODE_3, mode5.SECURITY_MODE, mode7.SECURITY_MODE, mode10.SECURITY_MODE,
            ell_ctr.SECURITY_MODE)
for _mode in _BUILTIN:
    register(_mode)
