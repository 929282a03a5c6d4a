"""paho-mqtt made cheap at thousands of messages a second: one ``recv`` serves many packets, the
packets of one write pass (a commit's PUBACKs, the republished readings) leave in one ``send``.

paho reads a packet in three ``recv`` calls at least (the command byte, each byte of the remaining
length, the body), runs ``select`` and its housekeeping once per packet, and writes each queued
packet with a ``send`` of its own; at the hub's rates that was about half of an intake process.

This adapter changes no MQTT behaviour; it uses three of paho's own seams (``paho.mqtt.client``):

- ``Client._create_socket()`` returns the connected socket paho then reads through
  ``Client._sock_recv`` (``sock.recv(n)``) and writes through ``Client._sock_send``
  (``sock.send(buf)``). :class:`BufferedSocket` wraps it: ``recv`` serves from a buffer refilled
  by one large read; ``send`` appends to an outgoing buffer that :meth:`BufferedSocket.flush`
  writes at the end of each ``loop_write`` pass.
- ``sock.pending()``: paho asks a socket for it (it is there for TLS sockets) and, when bytes
  are pending, reads without waiting in ``select``; the buffered bytes are reported there.
- ``Client.loop_read()`` / ``loop_write()`` / ``want_write()`` (public): :class:`BulkClient`
  reads every complete packet the buffer holds (up to :data:`READ_PACKETS`) per pass, flushes
  after each write pass, and wants to write while flushed bytes are still unsent.

With MQTT 5, paho makes a ``Properties`` object for every PUBLISH and PUBACK it reads (and a
``ReasonCode`` for every PUBACK), and each one builds paho's tables of property and reason code
names again: about a fifth of an intake process. :func:`_share_mqtt5_tables` gives
``paho.mqtt._packet`` (where packets are decoded) subclasses that take one copy of those
constant tables instead; the objects handed out behave as paho's own (same class tree, same
attributes, same values).

Tested with the paho-mqtt versions in :data:`TESTED_PAHO` (``tests/test_hub_paho_bulk.py``);
with any other version :func:`make_client` gives paho's plain ``Client`` (a log line says so).
TLS, websockets and proxies are not used by the hub and are left to plain paho as well."""

from __future__ import annotations

import functools
import logging
import socket

log = logging.getLogger(__name__)

TESTED_PAHO = ("2.2.0",)
READ_BYTES = 256 * 1024  # one recv: a few thousand raw frames
READ_PACKETS = 2000  # packets handled per loop_read pass before paho's loop writes and does its housekeeping
CLOSE_FLUSH_S = 2.0  # at close (after DISCONNECT): how long the unsent bytes may take


class BufferedSocket:
    """A connected, non-blocking socket read in large pieces and written in batches (see the module)."""

    __slots__ = ("_sock", "_in", "_pos", "_out", "reads", "writes")

    def __init__(self, sock: socket.socket):
        self._sock = sock
        self._in = b""
        self._pos = 0
        self._out = bytearray()
        self.reads = 0  # system calls made (the tests check that one serves many packets)
        self.writes = 0

    # --- what paho calls ----------------------------------------------------------------------------
    def recv(self, bufsize: int) -> bytes:
        pos = self._pos
        if pos >= len(self._in):
            data = self._sock.recv(READ_BYTES)  # BlockingIOError when nothing came: paho waits for more
            self.reads += 1
            if not data:
                return data  # the broker closed the connection
            self._in, pos = data, 0
        out = self._in[pos:pos + bufsize]
        self._pos = pos + len(out)
        return out

    def pending(self) -> int:
        """Bytes read and not yet taken (paho then reads again without waiting in select)."""
        return len(self._in) - self._pos

    def send(self, data) -> int:
        self._out += data
        return len(data)

    def flush(self) -> None:
        """Write what the last pass queued, as far as the socket takes it now."""
        out = self._out
        while out:
            try:
                sent = self._sock.send(out)
                self.writes += 1
            except BlockingIOError:
                return
            except OSError as err:  # the connection broke: paho's next read finds out and reconnects
                log.debug("MQTT send: %s (%d bytes dropped)", err, len(out))
                out.clear()
                return
            del out[:sent]

    def unsent(self) -> bool:
        return bool(self._out)

    def close(self) -> None:
        if self._out:  # DISCONNECT (and the PUBACKs before it) leave before the socket closes
            try:
                self._sock.settimeout(CLOSE_FLUSH_S)
                self._sock.sendall(self._out)
            except OSError as err:
                log.debug("MQTT close: %s (%d bytes unsent)", err, len(self._out))
            self._out.clear()
        self._sock.close()

    def fileno(self) -> int:
        return self._sock.fileno()

    def setblocking(self, flag: bool) -> None:
        self._sock.setblocking(flag)

    def settimeout(self, value: float | None) -> None:
        self._sock.settimeout(value)

    def __getattr__(self, name: str):  # the rest of the socket API (getpeername, setsockopt, ...)
        return getattr(self._sock, name)


_PROPERTIES_OWN = frozenset(("packetType", "types", "names", "properties"))


@functools.cache
def _share_mqtt5_tables() -> None:
    """Properties and reason codes of decoded packets without rebuilding paho's constant tables
    per object (see the module). paho sets these four attributes to the same values in every
    ``Properties`` and copies the read-only name table in every ``ReasonCode``; nothing in paho
    changes them afterwards."""
    from paho.mqtt import _packet  # noqa: PLC0415 - optional dependency
    from paho.mqtt.packettypes import PacketTypes  # noqa: PLC0415
    from paho.mqtt.properties import Properties  # noqa: PLC0415
    from paho.mqtt.reasoncodes import ReasonCode  # noqa: PLC0415

    ref = Properties(PacketTypes.PUBLISH)
    tables = {"types": ref.types, "names": ref.names, "properties": ref.properties}

    class SharedTablesProperties(Properties):
        def __init__(self, packetType):  # noqa: N803 - paho's name
            d = self.__dict__
            d["packetType"] = packetType
            d.update(tables)

        def clear(self):
            for name in [n for n in self.__dict__ if n not in _PROPERTIES_OWN]:  # the properties set
                delattr(self, name)

    names = dict(ReasonCode.names)
    ids: dict[tuple[int, str], int] = {}

    class SharedTablesReasonCode(ReasonCode):
        def __init__(self, packetType: int, aName: str = "Success", identifier: int = -1):  # noqa: N803
            self.names = names
            self.packetType = packetType
            if identifier != -1:
                self.value = identifier
                self.getName()  # check it's good
                return
            if packetType == PacketTypes.DISCONNECT and aName == "Success":
                aName = "Normal disconnection"
            value = ids.get((packetType, aName))
            if value is None:
                self.set(aName)  # KeyError for a name that does not apply, as paho's
                value = ids[(packetType, aName)] = self.value
            self.value = value

    _packet.Properties = SharedTablesProperties
    _packet.ReasonCode = SharedTablesReasonCode


@functools.cache
def _bulk_client_class():
    import paho.mqtt.client as mqtt  # noqa: PLC0415 - optional dependency

    _share_mqtt5_tables()

    class BulkClient(mqtt.Client):
        """paho's ``Client`` reading and writing through a :class:`BufferedSocket` (see the module)."""

        def _create_socket(self):
            sock = super()._create_socket()
            return BufferedSocket(sock) if isinstance(sock, socket.socket) else sock

        def loop_read(self, max_packets: int = 1):
            rc = super().loop_read(max_packets)
            n = 1
            while rc == mqtt.MQTT_ERR_SUCCESS and n < READ_PACKETS:
                sock = self._sock
                if not isinstance(sock, BufferedSocket) or not sock.pending():
                    break
                rc = super().loop_read(max_packets)
                n += 1
            return rc

        def loop_write(self):
            rc = super().loop_write()
            sock = self._sock
            if isinstance(sock, BufferedSocket):
                sock.flush()
            return rc

        def want_write(self) -> bool:
            sock = self._sock
            return super().want_write() or (isinstance(sock, BufferedSocket) and sock.unsent())

    return BulkClient


def make_client(*args, **kwargs):
    """A :class:`BulkClient` (paho's ``Client`` arguments) with a tested paho, else paho's ``Client``."""
    import paho.mqtt as paho  # noqa: PLC0415 - optional dependency
    import paho.mqtt.client as mqtt  # noqa: PLC0415

    if paho.__version__ not in TESTED_PAHO:
        log.info("paho-mqtt %s is not one tested with the bulk adapter (%s): plain paho", paho.__version__,
                 ", ".join(TESTED_PAHO))
        return mqtt.Client(*args, **kwargs)
    return _bulk_client_class()(*args, **kwargs)
