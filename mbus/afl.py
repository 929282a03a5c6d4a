"""Authentication and fragmentation layer, CI 0x90 (EN 13757-7).

    CI AFLL FCL(2) [MCL] [KI(2)] [MCR(4)] [MAC(n)] [ML(2)]

FCL flags say which optional fields are present; MCL.AT gives the MAC type and length. All
multi-byte fields are little-endian except the MAC, which is sent in CMAC output order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import FieldError, TruncatedError, UnsupportedModeError

CI_AFL = 0x90

FCL_MF = 1 << 14  # more fragments
FCL_MCLP = 1 << 13
FCL_MLP = 1 << 12
FCL_MCRP = 1 << 11
FCL_MACP = 1 << 10
FCL_KIP = 1 << 9

# MCL.AT -> (name, MAC length)
AUTH_TYPES = {0: ("none", 0), 3: ("AES-CMAC-128", 2), 4: ("AES-CMAC-128", 4), 5: ("AES-CMAC-128", 8),
              6: ("AES-CMAC-128", 12), 7: ("AES-CMAC-128", 16), 8: ("AES-GMAC-128", 12),
              9: ("AES-GMAC-128", 16)}


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthFragLayer:
    fcl: int
    mcl: int | None = None
    ki: int | None = None
    mcr: int | None = None
    mac: bytes | None = None
    ml: int | None = None

    ci = CI_AFL
    name = "AFL"

    @property
    def more_fragments(self) -> bool:
        return bool(self.fcl & FCL_MF)

    @property
    def fragment_id(self) -> int:
        return self.fcl & 0xFF

    @property
    def auth_type(self) -> int | None:
        return None if self.mcl is None else self.mcl & 0x0F

    @property
    def size(self) -> int:
        return 2 + len(self._body())

    @staticmethod
    def mac_length(mcl: int | None) -> int:
        if mcl is None:
            raise FieldError("MAC present but no MCL gives its type", layer="AFL")
        at = mcl & 0x0F
        if at not in AUTH_TYPES:
            raise UnsupportedModeError(f"AFL authentication type {at} is reserved", layer="AFL")
        return AUTH_TYPES[at][1]

    @classmethod
    def parse(cls, data: bytes, offset: int) -> AuthFragLayer:
        if len(data) < offset + 4:
            raise TruncatedError("AFL needs at least CI, AFLL and FCL", layer="AFL", offset=len(data))
        afll = data[offset + 1]
        end = offset + 2 + afll
        if len(data) < end:
            raise TruncatedError(f"AFLL {afll} runs past the end of the frame", layer="AFL", offset=len(data))
        pos = offset + 2

        def take(n: int, name: str) -> bytes:
            nonlocal pos
            if pos + n > end:
                raise FieldError(f"AFLL {afll} leaves no room for {name}", layer="AFL", offset=pos)
            chunk = data[pos:pos + n]
            pos += n
            return chunk

        fcl = int.from_bytes(take(2, "FCL"), "little")
        mcl = take(1, "MCL")[0] if fcl & FCL_MCLP else None
        ki = int.from_bytes(take(2, "KI"), "little") if fcl & FCL_KIP else None
        mcr = int.from_bytes(take(4, "MCR"), "little") if fcl & FCL_MCRP else None
        mac = None
        if fcl & FCL_MACP:
            try:
                n = cls.mac_length(mcl)
            except FieldError as err:
                raise FieldError(err.message, layer="AFL", offset=offset + 4) from None
            mac = bytes(take(n, "MAC"))
        ml = int.from_bytes(take(2, "ML"), "little") if fcl & FCL_MLP else None
        if pos != end:
            raise FieldError(f"AFLL {afll} but the FCL flags describe {pos - offset - 2} bytes",
                             layer="AFL", offset=pos)
        return cls(fcl=fcl, mcl=mcl, ki=ki, mcr=mcr, mac=mac, ml=ml)

    @classmethod
    def split(cls, data: bytes) -> tuple[AuthFragLayer, bytes]:
        """(layer, rest) for data starting at the CI."""
        layer = cls.parse(data, 0)
        return layer, data[2 + data[1]:]

    def _body(self) -> bytes:
        out = bytearray(self.fcl.to_bytes(2, "little"))
        if self.fcl & FCL_MCLP:
            out.append(_need(self.mcl, "MCL"))
        if self.fcl & FCL_KIP:
            out += _need(self.ki, "KI").to_bytes(2, "little")
        if self.fcl & FCL_MCRP:
            out += _need(self.mcr, "MCR").to_bytes(4, "little")
        if self.fcl & FCL_MACP:
            mac = self.mac if self.mac is not None else bytes(self.mac_length(self.mcl))
            out += mac
        if self.fcl & FCL_MLP:
            out += _need(self.ml, "ML").to_bytes(2, "little")
        return bytes(out)

    def to_bytes(self) -> bytes:
        body = self._body()
        return bytes((CI_AFL, len(body))) + body

    def mac_input_prefix(self) -> bytes:
        """MCL || KI || MCR || ML, the fields the CMAC covers before the TPDU."""
        out = bytearray()
        if self.mcl is not None:
            out.append(self.mcl)
        if self.ki is not None:
            out += self.ki.to_bytes(2, "little")
        if self.mcr is not None:
            out += self.mcr.to_bytes(4, "little")
        if self.ml is not None:
            out += self.ml.to_bytes(2, "little")
        return bytes(out)

    def fields(self, offset: int) -> list[tuple[int, int, str, str]]:
        flags = [n for b, n in ((FCL_MF, "more fragments"), (FCL_MCLP, "MCL"), (FCL_KIP, "KI"),
                                (FCL_MCRP, "MCR"), (FCL_MACP, "MAC"), (FCL_MLP, "ML")) if self.fcl & b]
        out = [(offset, 1, "CI", "0x90 authentication and fragmentation layer"),
               (offset + 1, 1, "AFLL", f"{self.size - 2} bytes follow"),
               (offset + 2, 2, "FCL", f"0x{self.fcl:04X} fragment {self.fragment_id}; " + ", ".join(flags))]
        pos = offset + 4
        if self.mcl is not None:
            name, n = AUTH_TYPES.get(self.mcl & 0x0F, ("reserved", 0))
            out.append((pos, 1, "MCL", f"0x{self.mcl:02X} {name}" + (f" ({n}-byte MAC)" if n else "")))
            pos += 1
        if self.ki is not None:
            out.append((pos, 2, "KI", f"key version {self.ki >> 8}, KDF {(self.ki >> 4) & 3}, key id {self.ki & 15}"))
            pos += 2
        if self.mcr is not None:
            out.append((pos, 4, "MCR", f"message counter {self.mcr}"))
            pos += 4
        if self.mac is not None:
            out.append((pos, len(self.mac), "MAC", self.mac.hex()))
            pos += len(self.mac)
        if self.ml is not None:
            out.append((pos, 2, "ML", f"message length {self.ml}"))
        return out

    def to_json(self) -> dict:
        d = {"ci": CI_AFL, "fcl": self.fcl, "fragment_id": self.fragment_id,
             "more_fragments": self.more_fragments}
        for k in ("mcl", "ki", "mcr", "ml"):
            v = getattr(self, k)
            if v is not None:
                d[k] = v
        if self.mac is not None:
            d["mac"] = self.mac.hex()
        return d


def _need(value, name: str):
    if value is None:
        raise ValueError(f"AFL FCL announces {name} but it is not set")
    return value


@dataclass(slots=True)
class FragmentBuffer:
    """Reassembles AFL-fragmented messages, keyed by the sender's link address.

    ``add`` returns the first fragment's AFL and the concatenated payload once the last fragment
    (MF = 0) arrives, or None while fragments are missing.
    """

    pending: dict = field(default_factory=dict)
    max_messages: int = 64

    def add(self, sender: bytes, afl: AuthFragLayer, payload: bytes):
        if afl.fragment_id == 0:
            return afl, payload
        key = sender
        entry = self.pending.get(key)
        if afl.fragment_id == 1 or entry is None:
            if afl.fragment_id != 1:
                return None  # a middle fragment whose start we never saw
            entry = self.pending[key] = [afl, bytearray(), 0]
            if len(self.pending) > self.max_messages:
                self.pending.pop(next(iter(self.pending)))
        first, data, last_id = entry
        if afl.fragment_id != last_id + 1:
            self.pending.pop(key, None)
            return None
        data += payload
        entry[2] = afl.fragment_id
        if afl.more_fragments:
            return None
        self.pending.pop(key, None)
        return first, bytes(data)
