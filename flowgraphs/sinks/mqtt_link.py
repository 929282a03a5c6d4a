"""A connection to an MQTT broker that survives the real world: it starts without the broker,
reconnects with back-off, keeps what it could not send in a bounded queue and sends it in order
when the broker is back, and never makes the receive loop wait.

:class:`MqttSettings` is what the options say (broker, TLS files, credentials, QoS, queue size,
receiver id); :class:`MqttLink` is the running connection. ``link.publish(topic, payload)`` only
appends to the queue; a sender thread hands messages to paho-mqtt (whose own thread does the
network) as long as the broker is connected and fewer than ``window`` messages wait for their
acknowledgement. A message dropped because the queue is full is counted (``stats().dropped``) and
logged; the oldest queued message goes first, so what the broker gets after an outage is the newest
``queue_size`` messages, in order.

Ordering across a reconnect: paho resends the messages that were in flight when the connection
dropped (QoS 1/2); the sender waits until those are acknowledged before it sends anything newer.

The session is persistent (MQTT 3.1.1 ``clean_session=False``, MQTT 5 ``clean_start=False`` with a
session expiry) under a client id derived from the receiver id, so the broker keeps it across our
reconnects. The availability topic ``PREFIX/status/RECEIVER`` carries ``online`` (retained, sent on
every connect) and ``offline`` (the last will, and sent on a clean close).

The password never appears in any message, ``repr`` or log: :attr:`MqttSettings.url` shows it as
``***``."""

from __future__ import annotations

import logging
import os
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

from .base import DEFAULT_QUEUE, PASSWORD_ENV  # noqa: F401 (their home is base: the CLI's help needs no ssl)

log = logging.getLogger(__name__)

# A broker holds only so many QoS 2 messages of one client between PUBREC and PUBREL (mosquitto's
# max_inflight_messages, 20 by default; MQTT 5 brokers announce it as Receive Maximum, MQTT 3.1.1 ones
# cannot) and drops the rest with "quota exceeded", silently on 3.1.1. After an outage the queue goes
# out in one burst, so a QoS 2 window stays below that default.
QOS2_WINDOW = 16
SCHEMES = {"mqtt": False, "tcp": False, "mqtts": True, "ssl": True}
_TOPIC_FORBIDDEN = set("/+#\0")


def default_receiver_id() -> str:
    """The host name (its first label), the receiver id when none is given."""
    name = socket.gethostname().split(".")[0] or "wmbus-sdr"
    return "".join(c if c not in _TOPIC_FORBIDDEN else "_" for c in name)


def check_receiver_id(name: str, *, where: str = "--receiver-id") -> str:
    if not name or _TOPIC_FORBIDDEN & set(name) or len(name) > 64:
        raise ValueError(f"{where} {name!r}: give 1 to 64 characters without '/', '+', '#'")
    return name


@dataclass(frozen=True, slots=True, kw_only=True)
class MqttSettings:
    """Where and how to publish. Build with :meth:`from_url`; ``password`` is kept out of ``repr``."""

    host: str
    port: int
    prefix: str = "wmbus"
    tls: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    insecure: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    qos: int = 1
    queue_size: int = DEFAULT_QUEUE
    receiver_id: str = field(default_factory=default_receiver_id)
    raw: bool = False  # rx --raw: publish undecoded frames to PREFIX/raw/RECEIVER
    mqtt5: bool = False

    @classmethod
    def from_url(cls, url: str, *, password_file: str | None = None, env: dict | None = None,
                 **options) -> MqttSettings:
        """``mqtt[s]://[USER[:PASSWORD]@]HOST[:PORT][/PREFIX]``. The password comes from
        ``password_file`` (first line), else the URL, else ``$WMBUS_MQTT_PASSWORD``. ValueError
        naming the option for a bad URL, file or value (never showing the password)."""
        try:
            u = urlparse(url)
            port = u.port
        except ValueError:
            raise ValueError(f"--mqtt {redact_url(url)}: not a URL (mqtt[s]://[USER@]HOST[:PORT][/PREFIX])") from None
        if u.scheme not in SCHEMES or not u.hostname:
            raise ValueError(f"--mqtt {redact_url(url)}: use mqtt://HOST[:PORT][/PREFIX] or mqtts://...")
        tls = SCHEMES[u.scheme]
        password = unquote(u.password) if u.password is not None else None
        if password_file:
            try:
                text = Path(password_file).read_text(encoding="utf-8")
            except OSError as err:
                raise ValueError(f"--mqtt-password-file {password_file}: {err.strerror or err}") from None
            password = text.splitlines()[0] if text.strip() else ""
            if not password:
                raise ValueError(f"--mqtt-password-file {password_file}: the file is empty")
        if password is None:
            password = (os.environ if env is None else env).get(PASSWORD_ENV) or None
        username = unquote(u.username) if u.username else None
        if password is not None and username is None:
            raise ValueError(f"--mqtt {redact_url(url)}: a password needs a user name (mqtt://USER@HOST/...)")
        prefix = (u.path or "").strip("/") or "wmbus"
        if {"+", "#"} & set(prefix):
            raise ValueError(f"--mqtt {redact_url(url)}: the prefix {prefix!r} may not hold '+' or '#'")
        settings = cls(host=u.hostname, port=port or (8883 if tls else 1883), prefix=prefix, tls=tls,
                       username=username, password=password, **options)
        settings.check()
        return settings

    def check(self) -> None:
        """ValueError naming the option at fault."""
        if self.qos not in (0, 1, 2):
            raise ValueError(f"--mqtt-qos {self.qos}: give 0, 1 or 2")
        if self.queue_size < 1:
            raise ValueError(f"--mqtt-queue {self.queue_size}: give at least 1")
        check_receiver_id(self.receiver_id)
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("--mqtt-cert and --mqtt-key go together (the client certificate and its key)")
        tls_files = [(o, f) for o, f in (("--mqtt-ca", self.ca_file), ("--mqtt-cert", self.cert_file),
                                         ("--mqtt-key", self.key_file)) if f]
        if (tls_files or self.insecure) and not self.tls:
            raise ValueError(f"{(tls_files[0][0] if tls_files else '--mqtt-insecure')} needs an mqtts:// broker URL")
        for option, path in tls_files:
            if not Path(path).is_file():
                raise ValueError(f"{option} {path}: no such file")

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """The broker URL for messages: the password as ``***``."""
        user = f"{self.username}{':***' if self.password is not None else ''}@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.address}/{self.prefix}"

    @property
    def status_topic(self) -> str:
        return f"{self.prefix}/status/{self.receiver_id}"

    @property
    def raw_topic(self) -> str:
        return f"{self.prefix}/raw/{self.receiver_id}"


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (also for URLs that do not parse)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    netloc, slash, path = rest.partition("/")
    cred, at, hostport = netloc.rpartition("@")
    if at and ":" in cred:
        netloc = f"{cred.split(':', 1)[0]}:***@{hostport}"
    return f"{scheme}://{netloc}{slash}{path}"


@dataclass(frozen=True, slots=True, kw_only=True)
class MqttStats:
    """What the link did: messages queued, acknowledged (``published``), dropped because the queue
    was full, still waiting at the end (``unsent``), the deepest the queue got, connections made."""

    queued: int
    published: int
    dropped: int
    unsent: int
    max_depth: int
    connects: int
    disconnects: int
    connected: bool


@dataclass(slots=True)
class _Message:
    topic: str
    payload: bytes
    qos: int
    retain: bool


class MqttLink:
    """A running connection (see the module doc). ``role`` names the program in the client id
    (``wmbus-sdr-ROLE-RECEIVER``, so an rx and a hub on one host do not take each other's
    session); ``subscriptions`` (topic, qos) are (re)made on every connect and ``on_message(topic,
    payload)`` gets what arrives (the hub's side; it runs on paho's thread). ``window``: messages
    in flight at once (at most :data:`QOS2_WINDOW` at QoS 2)."""

    def __init__(self, settings: MqttSettings, *, role: str = "rx", subscriptions: Sequence[tuple[str, int]] = (),
                 on_message: Callable[[str, bytes], None] | None = None, window: int = 32,
                 reconnect_min_s: int = 1, reconnect_max_s: int = 8, availability: bool = True):
        try:
            import paho.mqtt.client as mqtt  # noqa: PLC0415 - optional dependency
        except ImportError:
            raise ValueError("--mqtt needs paho-mqtt: pip install 'wmbus-sdr[mqtt]'") from None
        self.settings = settings
        self.window = min(window, QOS2_WINDOW) if settings.qos == 2 else window
        self.availability = availability
        self._subscriptions = list(subscriptions)
        self._on_message = on_message
        self._queue: deque[_Message] = deque()
        self._cond = threading.Condition()
        self._inflight: set[int] = set()
        self._early_acks: set[int] = set()
        self._sending = False
        self._pending_subs: set[int] = set()
        self.subscribed = threading.Event()  # set once the broker granted every subscription
        self._carried = False  # messages in flight when the connection dropped: resent first
        self._connected = False
        self._closing = False
        self._counts = {"queued": 0, "published": 0, "dropped": 0, "max_depth": 0, "connects": 0, "disconnects": 0}
        self._down_since: float | None = time.monotonic()
        self._last_problem: str | None = None
        client_id = f"wmbus-sdr-{role}-{settings.receiver_id}"
        if settings.mqtt5:
            self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                                      protocol=mqtt.MQTTv5)
        else:
            self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
        self._mqtt = mqtt
        c = self.client
        if settings.username:
            c.username_pw_set(settings.username, settings.password)
        if settings.tls:
            self._set_tls()
        if availability:
            c.will_set(settings.status_topic, "offline", qos=1, retain=True)
        c.max_inflight_messages_set(self.window)
        c.reconnect_delay_set(min_delay=reconnect_min_s, max_delay=reconnect_max_s)
        c.on_connect = self._connected_cb
        c.on_connect_fail = self._connect_failed_cb
        c.on_disconnect = self._disconnected_cb
        c.on_publish = self._published_cb
        c.on_message = self._message_cb
        c.on_subscribe = self._subscribed_cb
        self._sender = threading.Thread(target=self._send_loop, name=f"mqtt-sender-{settings.address}", daemon=True)

    def __repr__(self) -> str:
        return f"MqttLink({self.settings.url}, receiver {self.settings.receiver_id!r})"

    def _set_tls(self) -> None:
        s = self.settings
        try:
            self.client.tls_set(ca_certs=s.ca_file, certfile=s.cert_file, keyfile=s.key_file,
                                cert_reqs=ssl.CERT_NONE if s.insecure else ssl.CERT_REQUIRED)
        except (ssl.SSLError, OSError) as err:
            files = ", ".join(f for f in (s.ca_file, s.cert_file, s.key_file) if f) or "the system CA store"
            raise ValueError(f"--mqtt {s.url}: cannot use the TLS files ({files}): {err}") from None
        if s.insecure:
            self.client.tls_insecure_set(True)

    # --- life cycle ---------------------------------------------------------------------------
    def start(self) -> MqttLink:
        """Connect in the background: returns at once, also when the broker is not there (a
        warning names it; the link keeps trying with back-off)."""
        s = self.settings
        kwargs = {}
        if s.mqtt5:
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties

            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 3600
            kwargs = {"clean_start": False, "properties": props}
        try:
            self.client.connect_async(s.host, s.port, keepalive=30, **kwargs)
        except (OSError, ValueError) as err:
            raise ValueError(f"--mqtt {s.url}: {err}") from None
        self.client.loop_start()
        self._sender.start()
        return self

    def close(self, timeout_s: float = 5.0) -> MqttStats:
        """Send what is queued (until nothing moved for ``timeout_s``; not at all when the broker
        was never reached), publish ``offline``, disconnect. What could not be sent is counted as
        ``unsent`` (and logged)."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            done = self._counts["published"]
            # a broker that was there may be restarting: wait for it too; one never seen, not
            while ((self._queue or self._inflight or self._sending)
                   and (self._connected or self._counts["connects"]) and time.monotonic() < deadline):
                self._cond.wait(0.05)
                if self._counts["published"] > done:  # still moving (a long decode run): keep waiting
                    done = self._counts["published"]
                    deadline = time.monotonic() + timeout_s
            self._closing = True
            self._cond.notify_all()
        self._sender.join(timeout=2)
        if self._connected and self.availability:
            info = self.client.publish(self.settings.status_topic, "offline", qos=1, retain=True)
            try:
                info.wait_for_publish(timeout=max(deadline - time.monotonic(), 0.5))
            except (RuntimeError, ValueError) as err:
                log.info("mqtt %s: 'offline' not confirmed: %s", self.settings.address, err)
        self.client.disconnect()
        self.client.loop_stop()
        stats = self.stats()
        if stats.unsent:
            log.warning("mqtt %s: %d messages not sent (the broker was %s at exit)", self.settings.address,
                        stats.unsent, "connected but slow" if stats.connected else "unreachable")
        return stats

    def stats(self) -> MqttStats:
        with self._cond:
            return MqttStats(**self._counts, unsent=len(self._queue) + len(self._inflight), connected=self._connected)

    def summary(self) -> str:
        """One line for the end-of-run summary."""
        st = self.stats()
        text = (f"mqtt {self.settings.url}: {st.published} messages published, {st.dropped} dropped "
                f"(queue {self.settings.queue_size}, max depth {st.max_depth}), {st.connects} connects, "
                f"{st.disconnects} disconnects")
        return text + (f", {st.unsent} not sent" if st.unsent else "")

    # --- the hot path ---------------------------------------------------------------------------
    def publish(self, topic: str, payload: str | bytes, *, retain: bool = False, qos: int | None = None) -> bool:
        """Queue one message; never blocks on the network. False when the queue was full and the
        oldest message was dropped to make room."""
        msg = _Message(topic, payload.encode() if isinstance(payload, str) else payload,
                       self.settings.qos if qos is None else qos, retain)
        dropped = None
        with self._cond:
            if len(self._queue) >= self.settings.queue_size:
                dropped = self._queue.popleft()
                self._counts["dropped"] += 1
            self._queue.append(msg)
            self._counts["queued"] += 1
            depth = len(self._queue) + len(self._inflight)
            if depth > self._counts["max_depth"]:
                self._counts["max_depth"] = depth
            self._cond.notify_all()
            n_dropped = self._counts["dropped"]
        if dropped is not None and (n_dropped == 1 or n_dropped % 1000 == 0):
            log.warning("mqtt %s: queue full (%d messages): dropped the oldest (%s); %d dropped so far",
                        self.settings.address, self.settings.queue_size, dropped.topic, n_dropped)
        return dropped is None

    # --- the sender thread ------------------------------------------------------------------------
    def _send_loop(self) -> None:
        # paho's publish is called without our lock held: paho calls back (on_publish) holding its
        # own locks, and both orders of taking the two would deadlock
        while True:
            with self._cond:
                while not self._closing and not self._can_send():
                    self._cond.wait(0.5)
                if self._closing:
                    return
                msg = self._queue.popleft()
                self._sending = True
            info = self.client.publish(msg.topic, msg.payload, qos=msg.qos, retain=msg.retain)
            with self._cond:
                self._sending = False
                # paho keeps a QoS 1/2 message it could not send and resends it on reconnect; a
                # QoS 0 message it could not send goes back to the front of our queue
                if msg.qos > 0:
                    if info.mid in self._early_acks:
                        self._early_acks.discard(info.mid)
                        self._counts["published"] += 1
                    else:
                        self._inflight.add(info.mid)
                elif info.rc == self._mqtt.MQTT_ERR_SUCCESS:
                    self._counts["published"] += 1
                else:
                    self._queue.appendleft(msg)
                    self._cond.wait(0.2)
                self._early_acks.clear()  # any other early ack was a status message's
                self._cond.notify_all()

    def _can_send(self) -> bool:
        if not self._connected or not self._queue:
            return False
        if self._carried:
            if self._inflight:
                return False
            self._carried = False
        return len(self._inflight) < self.window

    # --- paho callbacks (paho's thread) -----------------------------------------------------------
    def _connected_cb(self, client, userdata, flags, reason_code, properties=None) -> None:
        s = self.settings
        if reason_code.is_failure:
            self._problem(f"the broker refused the connection: {reason_code}")
            return
        if self.availability:
            client.publish(s.status_topic, "online", qos=1, retain=True)
        self.subscribed.clear()
        with self._cond:
            self._pending_subs = {client.subscribe(topic, qos=qos)[1] for topic, qos in self._subscriptions}
        if not self._subscriptions:
            self.subscribed.set()
        with self._cond:
            self._connected = True
            self._carried = bool(self._inflight)  # paho resends these right after this callback
            self._counts["connects"] += 1
            down = time.monotonic() - self._down_since if self._down_since is not None else 0.0
            self._down_since = None
            waiting = len(self._queue) + len(self._inflight)
            self._cond.notify_all()
        if self._last_problem is not None or self._counts["connects"] > 1:
            log.warning("mqtt %s: connected after %.1f s; sending %d waiting messages", s.address, down, waiting)
        else:
            log.info("mqtt %s: connected", s.address)
        self._last_problem = None

    def _connect_failed_cb(self, client, userdata) -> None:
        self._problem("cannot connect")

    def _disconnected_cb(self, client, userdata, flags, reason_code, properties=None) -> None:
        with self._cond:
            was = self._connected
            self._connected = False
            if was:
                self._counts["disconnects"] += 1
                self._down_since = time.monotonic()
            self._cond.notify_all()
        if was and not self._closing:
            self._problem(f"connection lost ({reason_code})")

    def _published_cb(self, client, userdata, mid, reason_code=None, properties=None) -> None:
        with self._cond:
            if mid in self._inflight:
                self._inflight.discard(mid)
                self._counts["published"] += 1
                self._cond.notify_all()
            elif self._sending:  # acknowledged before the sender thread noted it as in flight
                self._early_acks.add(mid)

    def _subscribed_cb(self, client, userdata, mid, reason_codes, properties=None) -> None:
        refused = [str(rc) for rc in reason_codes if rc.is_failure]
        if refused:
            log.warning("mqtt %s: the broker refused a subscription: %s", self.settings.address, ", ".join(refused))
        with self._cond:
            self._pending_subs.discard(mid)
            done = not self._pending_subs
        if done:
            self.subscribed.set()

    def _message_cb(self, client, userdata, message) -> None:
        if self._on_message is not None:
            self._on_message(message.topic, message.payload)

    def _problem(self, what: str) -> None:
        """Log a connection problem once per outage (then at debug level), never the password."""
        if what == self._last_problem or self._closing:
            log.debug("mqtt %s: %s", self.settings.address, what)
            return
        first = self._last_problem is None
        self._last_problem = what
        log.warning("mqtt %s: %s; %s, queueing up to %d messages", self.settings.address, what,
                    "retrying with back-off" if first else "still retrying", self.settings.queue_size)
