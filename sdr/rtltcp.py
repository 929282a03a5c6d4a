"""The rtl_tcp protocol: our own client and a server that plays recordings.

Facts of the protocol: after connecting, the server sends 12 bytes — ``RTL0``, the tuner type and
the number of gain steps (big-endian uint32) — then unsigned 8-bit I/Q for ever. The client sends
5-byte commands ``struct.pack(">BI", command, value)``: 0x01 centre frequency (Hz), 0x02 sample rate,
0x03 gain mode (0 auto, 1 manual), 0x04 gain (tenths of a dB), 0x05 frequency correction (ppm),
0x08 AGC mode. No command is acknowledged, so the client checks the data rate it actually gets —
over a window of continuous flow only (a stall, a reconnect or a server catching up is not a rate),
and once: a rate found right stays right, since every connection asks for it again.
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
import time
from pathlib import Path

from .errors import SDRError
from .source import Source
from .types import StreamInfo

log = logging.getLogger(__name__)

CMD_FREQ, CMD_RATE, CMD_GAIN_MODE, CMD_GAIN, CMD_PPM, CMD_AGC = 0x01, 0x02, 0x03, 0x04, 0x05, 0x08
TUNERS = {0: "unknown", 1: "E4000", 2: "FC0012", 3: "FC0013", 4: "FC2580", 5: "R820T", 6: "R828D"}
HEADER = struct.Struct(">4sII")


def parse_address(text: str, default_port: int = 1234) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host:
        return text, default_port
    try:
        return host.strip("[]"), int(port)
    except ValueError:
        raise ValueError(f"bad rtl_tcp address {text!r}; use HOST:PORT") from None


class RtlTcpSource(Source):
    """rtl_tcp client with reconnection (back-off 0.5 s doubling to 8 s, ``retries`` times, default
    the watchdog's ``max_restarts``). A connection that stays open but brings no samples is the
    watchdog's: after ``stall_timeout_s`` the client connects anew.

    ``read_blocks(seconds)`` (rx: 0.1 s): after the first samples of each connection the socket's
    low-water mark (SO_RCVLOWAT) keeps the reader thread asleep until a whole block is there, so
    it wakes ten times a second whatever size the server sends in (rtl_tcp: 256 KiB, serve-rtltcp:
    20 ms); what came of a block within POLL_S is taken as it is. The first read of a connection
    is taken as soon as anything comes: it places the stream on the sample clock after a break.
    """

    fmt = "cu8"
    CONNECT_TIMEOUT_S = 5.0  # to connect and to receive the 12-byte header
    POLL_S = 0.25  # a recv waits this long (for a block) before taking what came and looking at the watchdog
    FLOW_GAP_S = 0.5  # a pause longer than this ends a window of continuous flow (rate check; > POLL_S)

    def __init__(self, address: str, *, sample_rate_hz: float, center_freq_hz: float, gain: float | None = None,
                 ppm: int = 0, retries: int | None = None, read_size: int = 1 << 16, rate_check_s: float = 3.0):
        host, port = parse_address(address)
        info = StreamInfo(sample_rate_hz=sample_rate_hz, center_freq_hz=center_freq_hz,
                          source=f"rtltcp://{host}:{port}")
        super().__init__(info, queue_chunks=self.queue_chunks_for(info, read_size))
        self.host, self.port = host, port
        self.gain, self.ppm = gain, ppm
        if retries is not None:
            self.watchdog(max_restarts=retries)
        self.read_size = read_size
        self.rate_check_s = rate_check_s
        self.tuner: str | None = None
        self.gain_count = 0
        self.reconnects = 0
        self._sock: socket.socket | None = None
        self._flow_t0: float | None = None  # start of the current window of continuous flow
        self._flow_bytes = 0  # bytes received in it after its first block
        self._last_recv = 0.0
        self._rate_checked = False
        self._blocks = False  # read_blocks: wait for whole blocks (SO_RCVLOWAT)
        self._waiting_for_blocks = False  # the low-water mark is set on this connection

    def _connect(self) -> None:
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.CONNECT_TIMEOUT_S)
        except OSError as err:
            raise SDRError(f"{self.info.source}: cannot connect: {err.strerror or err}") from err
        header = b""
        while len(header) < HEADER.size:
            try:
                part = sock.recv(HEADER.size - len(header))
            except OSError as err:
                sock.close()
                why = f"no 12-byte rtl_tcp header within {self.CONNECT_TIMEOUT_S:g} s" if isinstance(
                    err, TimeoutError) else f"reading the rtl_tcp header failed: {err.strerror or err}"
                raise SDRError(f"{self.info.source}: {why}") from err
            if not part:
                sock.close()
                raise SDRError(f"{self.info.source}: connection closed before the 12-byte rtl_tcp header")
            header += part
        magic, tuner, gains = HEADER.unpack(header)
        if magic != b"RTL0":
            sock.close()
            raise SDRError(f"{self.info.source}: not an rtl_tcp server (header {header[:4]!r})")
        self.tuner, self.gain_count = TUNERS.get(tuner, f"type {tuner}"), gains
        cmds = [(CMD_RATE, int(self.info.sample_rate_hz)), (CMD_FREQ, int(self.info.center_freq_hz))]
        if self.ppm:
            cmds.append((CMD_PPM, self.ppm & 0xFFFFFFFF))
        if self.gain is None:
            cmds.append((CMD_GAIN_MODE, 0))
        else:
            cmds += [(CMD_GAIN_MODE, 1), (CMD_GAIN, int(round(self.gain * 10)))]
        try:
            sock.sendall(b"".join(struct.pack(">BI", c, v) for c, v in cmds))
        except OSError as err:
            sock.close()
            raise SDRError(f"{self.info.source}: sending the tuning commands failed: {err.strerror or err}") from err
        sock.settimeout(self.POLL_S)
        self._sock = sock
        self._waiting_for_blocks = False
        self._flow_t0 = None
        log.info("%s: connected, tuner %s, %d gain steps", self.info.source, self.tuner, gains)

    def _set_block(self, seconds: float) -> int:
        self.read_size = self.block_bytes(self.info.sample_rate_hz, seconds)
        self._blocks = getattr(socket, "SO_RCVLOWAT", None) is not None
        return self.read_size

    def _wait_for_blocks(self) -> None:
        """Wake the reader only when a block is there (SO_RCVLOWAT), in a receive buffer that holds
        several blocks: the TCP window must stay well open while a block gathers, or the server
        waits for it and samples arrive late (a buffer grown by the low-water mark alone, as Linux
        does, closes the window at one block). The system's ceiling (net.core.rmem_max) may give a
        smaller buffer: the low-water mark is then a quarter of it. Not fatal when refused: the
        reads are then as small as the server's sends."""
        self._waiting_for_blocks = True
        sock = self._sock
        try:
            if sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) < 8 * self.read_size:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * self.read_size)  # Linux doubles it
            room = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, max(1, min(self.read_size, room // 4)))
        except OSError as err:
            log.debug("%s: receive buffer or low-water mark refused: %s", self.info.source, err)

    def _open(self) -> None:
        self._connect()

    def _read(self) -> bytes | None:
        """A block of samples, what came of one within POLL_S, or b"" when nothing came (the
        watchdog counts that silence); a closed or broken connection is reconnected here."""
        while True:
            try:
                data = self._sock.recv(self.read_size) if self._sock else b""
            except TimeoutError:
                data = self._partial()
                if data:
                    self._check_rate(len(data))
                return data
            except OSError:
                data = b""
            if data:
                self._check_rate(len(data))
                if self._blocks and not self._waiting_for_blocks:
                    self._wait_for_blocks()  # after the connection's first samples: they came at once
                return data
            if self._stop.is_set():
                return None
            self._reconnect()

    def _partial(self) -> bytes:
        """What arrived short of a block (a slow server, the end of a stream), without waiting: with
        a timeout set, recv waits for the low-water mark first."""
        sock = self._sock
        sock.settimeout(0.0)
        try:
            return sock.recv(self.read_size)
        except OSError:  # nothing there (BlockingIOError), or a broken connection: the next recv says which
            return b""
        finally:
            sock.settimeout(self.POLL_S)

    def _check_rate(self, n_bytes: int) -> None:
        """The rate over ``rate_check_s`` of continuous flow: a pause longer than FLOW_GAP_S (a
        stall, a reconnect) starts the window again, so only a steady stream is judged."""
        if self._rate_checked:
            return
        now = time.monotonic()
        if self._flow_t0 is None or now - self._last_recv > self.FLOW_GAP_S:
            self._flow_t0, self._flow_bytes = now, 0  # this block arrived by now: count what comes after
        else:
            self._flow_bytes += n_bytes
        self._last_recv = now
        elapsed = now - self._flow_t0
        if elapsed < self.rate_check_s:
            return
        self._rate_checked = True
        got = self._flow_bytes / 2 / elapsed
        want = self.info.sample_rate_hz
        if got < 0.8 * want or got > 1.25 * want:
            raise SDRError(f"{self.info.source}: the server streams about {got / 1e6:.2f} Msps, not the "
                           f"{want / 1e6:.2f} Msps asked for (sample rate refused?)")

    def _reconnect(self) -> None:
        if self._sock:
            self._sock.close()
            self._sock = None
        if self.recover(self._connect, None, "connection lost"):
            self.reconnects += 1

    def _close(self) -> None:
        if self._sock:
            try:
                self._sock.close()
            finally:
                self._sock = None


class RtlTcpServer:
    """Serves a recording (cu8 at its own rate) to rtl_tcp clients at real-time pace.

    Client commands are logged; a client asking for another sample rate or frequency gets the
    recording unchanged, with a warning (rtl_433 and SDR++ ask for their defaults first)."""

    def __init__(self, path: str, *, host: str = "127.0.0.1", port: int = 1234, loop: bool = False,
                 sample_rate_hz: float | None = None, center_freq_hz: float | None = None, tuner: int = 5,
                 chunk_s: float = 0.02, speed: float = 1.0):
        from .file import FileSource

        self.source = FileSource(path, sample_rate_hz=sample_rate_hz, center_freq_hz=center_freq_hz)
        if self.source.fmt not in ("cu8",):
            raise ValueError(f"{path}: serve-rtltcp plays cu8 recordings (rtl_tcp's format), not {self.source.fmt}")
        self.path = Path(self.source.data_path)
        self.rate = self.source.info.sample_rate_hz
        self.loop, self.tuner, self.chunk_s, self.speed = loop, tuner, chunk_s, speed
        self._sock = socket.create_server((host, port))
        self.port = self._sock.getsockname()[1]
        self.clients = 0
        self._stop = threading.Event()
        self.commands: list[tuple[int, int]] = []

    def serve_forever(self) -> None:
        self._sock.settimeout(0.5)
        while not self._stop.is_set():
            try:
                conn, peer = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                break
            self.clients += 1
            log.info("serve-rtltcp: client %s:%d", *peer[:2])
            threading.Thread(target=self._client, args=(conn,), daemon=True).start()

    def start(self) -> threading.Thread:
        t = threading.Thread(target=self.serve_forever, daemon=True)
        t.start()
        return t

    def stop(self) -> None:
        self._stop.set()
        self._sock.close()

    def _commands(self, conn: socket.socket) -> None:
        buf = b""
        while not self._stop.is_set():
            try:
                data = conn.recv(64)
            except OSError:
                return
            if not data:
                return
            buf += data
            while len(buf) >= 5:
                cmd, value = struct.unpack(">BI", buf[:5])
                buf = buf[5:]
                self.commands.append((cmd, value))
                if cmd == CMD_RATE and abs(value - self.rate) > 1:
                    log.warning("serve-rtltcp: client asks for %d sps; the recording is at %d sps and is sent as is",
                                value, int(self.rate))
                elif cmd == CMD_FREQ and abs(value - self.source.info.center_freq_hz) > 1:
                    log.warning("serve-rtltcp: client tunes to %d Hz; the recording is centred at %d Hz",
                                value, int(self.source.info.center_freq_hz))

    def _client(self, conn: socket.socket) -> None:
        threading.Thread(target=self._commands, args=(conn,), daemon=True).start()
        step = int(self.rate * self.chunk_s) * 2
        try:
            # every piece goes out when due: Nagle's rule would hold a piece back until the client
            # acknowledges the last one, which a client waiting for whole blocks does late
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.sendall(HEADER.pack(b"RTL0", self.tuner, 29))
            t_next = time.monotonic()
            while not self._stop.is_set():
                with self.path.open("rb") as f:
                    while not self._stop.is_set():
                        block = f.read(step)
                        if not block:
                            break
                        conn.sendall(block)
                        t_next += len(block) / 2 / self.rate / self.speed
                        delay = t_next - time.monotonic()
                        if delay > 0:
                            time.sleep(delay)
                if not self.loop:
                    break
        except OSError:
            pass
        finally:
            conn.close()
