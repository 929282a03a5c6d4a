"""The hub on MQTT (paho-mqtt, MQTT 5): a persistent session (fixed client id, clean_start off, a
session expiry) subscribed with QoS 1 to ``PREFIX/raw/+`` (``$share/GROUP/PREFIX/raw/+`` with
``share``), and optionally to a topic of rtl_433 / rtlwmbus lines; messages are acknowledged by
hand, after the hub stored them (:class:`flowgraphs.hub.core.Hub`). paho reads and writes in bulk
through :mod:`.paho_bulk`.

A hub with ``--workers N`` runs N of these, one per worker process, all in one shared subscription
(the ``--share`` group, else one named after the hub's client id); only the first (``main``) also
takes the receivers' status and the lines topic."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from urllib.parse import urlparse

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class BrokerUrl:
    host: str
    port: int
    prefix: str
    username: str | None = None
    password: str | None = None


def parse_broker_url(url: str) -> BrokerUrl:
    u = urlparse(url)
    if u.scheme not in ("mqtt", "tcp"):
        raise ValueError(f"--mqtt {url!r}: use mqtt://HOST[:PORT][/PREFIX]")
    try:
        port = u.port or 1883
    except ValueError:
        raise ValueError(f"--mqtt {url!r}: bad port") from None
    prefix = (u.path or "/wmbus").strip("/") or "wmbus"
    return BrokerUrl(host=u.hostname or "localhost", port=port, prefix=prefix, username=u.username,
                     password=u.password)


class HubBus:
    def __init__(self, url: str, hub, *, client_id: str, share: str | None = None, lines_topic: str | None = None,
                 session_expiry_s: int = 7 * 86400, main: bool = True, raw: bool = True,
                 stale_groups: tuple[str, ...] = ()):
        try:
            import paho.mqtt.client as mqtt  # noqa: PLC0415 - optional
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties

            from .paho_bulk import make_client
        except ImportError:
            raise ValueError("hub --mqtt needs paho-mqtt: pip install 'wmbus-sdr[mqtt]'") from None
        self.broker = parse_broker_url(url)
        self.hub = hub
        prefix = self.broker.prefix
        plain = f"{prefix}/raw/+"
        self.raw_topic = plain
        if share:
            if any(c in share for c in "/+#$"):
                raise ValueError(f"--share {share!r}: a group name may not contain / + # $")
            self.raw_topic = f"$share/{share}/{plain}"
        self.main = main
        self.raw = raw  # False: intake processes take the raw frames (flowgraphs.hub.intake)
        # a session kept from a run with another layout (shared or not, intake processes or not):
        # the other forms of the raw subscription go, or the broker would go on sending (or
        # queueing) frames to them as well
        forms = [plain, *(f"$share/{g}/{plain}" for g in (*stale_groups, share) if g)]
        self._stale_topics = [t for t in dict.fromkeys(forms) if not raw or t != self.raw_topic]
        self.lines_topic = lines_topic if main else None
        self._raw_prefix = f"{prefix}/raw/"
        # not shared: every hub keeps the receivers' availability, and shared subscriptions get no retained
        self.status_topic = f"{prefix}/status/+"
        self._status_prefix = f"{prefix}/status/"
        self.connected = threading.Event()
        self._mqtt = mqtt
        # paho with bulk reads and writes (.paho_bulk): thousands of frames a second
        self.client = make_client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5,
                                  manual_ack=True)
        if self.broker.username:
            self.client.username_pw_set(self.broker.username, self.broker.password)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_disconnect = self._on_disconnect
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = session_expiry_s
        props.ReceiveMaximum = 65535  # acks wait for the store: let the broker keep sending meanwhile
        try:
            self.client.connect(self.broker.host, self.broker.port, keepalive=30, clean_start=False, properties=props)
        except OSError as err:
            raise ValueError(f"--mqtt {self.broker.host}:{self.broker.port}: cannot connect to the broker: "
                             f"{err.strerror or err}") from None
        hub.ack = self._ack
        hub.publish = self._publish

    def start(self) -> None:
        self.client.loop_start()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("broker refused the connection: %s", reason_code)
            return
        topics = [(self.raw_topic, self._mqtt.SubscribeOptions(qos=1))] if self.raw else []
        if self.main:
            topics.append((self.status_topic, self._mqtt.SubscribeOptions(qos=1)))
        if self.lines_topic:
            topics.append((self.lines_topic, self._mqtt.SubscribeOptions(qos=1)))
        stale = self._stale_topics if self.main else [*self._stale_topics, self.status_topic]
        if flags.session_present and stale:
            client.unsubscribe(stale)
        client.subscribe(topics)
        log.info("hub subscribed to %s (session present: %s)", ", ".join(t for t, _ in topics),
                 flags.session_present)
        self.connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connected.clear()
        if reason_code.is_failure:
            log.warning("disconnected from the broker (%s); reconnecting", reason_code)

    def _on_message(self, client, userdata, msg) -> None:
        topic = msg.topic
        token = (msg.mid, msg.qos)
        if topic.startswith(self._raw_prefix):
            self.hub.submit("raw", msg.payload, topic[len(self._raw_prefix):], token)
        elif topic.startswith(self._status_prefix):
            self.hub.submit("status", msg.payload, topic[len(self._status_prefix):], token)
        else:
            self.hub.submit("line", msg.payload, topic.rsplit("/", 1)[-1], token)

    def _ack(self, token) -> None:
        mid, qos = token
        if qos:
            self.client.ack(mid, qos)

    def _publish(self, subtopic: str, payload: str, retain: bool) -> None:
        self.client.publish(f"{self.broker.prefix}/{subtopic}", payload, qos=1, retain=retain)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
