"""Security mode 10: AES-128-CCM (OMS security profile D). The configuration-field layout is
known and parsed; decryption is not implemented (decoding reports ``unsupported_mode``).

Configuration field: CC(15-14) Z(13) mode(12-8) number of encrypted bytes(7-0), then a 2-byte CFE
and, when Z is set, the 4-byte message counter.
"""

from __future__ import annotations

from . import ConfigExtension, SecurityMode
from .common import need

MODE = 10


class Mode10(SecurityMode):
    number = MODE
    name = "AES-128-CCM"
    implemented = False
    cfe_size = 2

    def flags(self, cf: int) -> dict:
        return {"content": (cf >> 14) & 3, "counter_present": bool(cf & 0x2000), "encrypted_bytes": cf & 0xFF}

    def has_counter(self, cf: int) -> bool:
        return bool(cf & 0x2000)

    def parse_extension(self, cf: int, data: bytes, pos: int) -> ConfigExtension:
        need(data, pos, 2, "mode 10 CF extension")
        cfe = data[pos] | data[pos + 1] << 8
        counter = None
        if cf & 0x2000:
            need(data, pos + 2, 4, "mode 10 message counter")
            counter = int.from_bytes(data[pos + 2:pos + 6], "little")
        return ConfigExtension(cfe=cfe, counter=counter)

    def extension_bytes(self, cf: int, ext: ConfigExtension) -> bytes:
        out = (ext.cfe or 0).to_bytes(2, "little")
        if cf & 0x2000:
            out += (ext.counter or 0).to_bytes(4, "little")
        return out


SECURITY_MODE = Mode10()
