"""paho with bulk reads and writes (flowgraphs/hub/paho_bulk.py), against a real mosquitto: the
hub's MQTT 5 persistent session with manual acknowledgement behaves as plain paho's (nothing
acknowledged comes again, everything unacknowledged does, what arrived while away is kept), while
one read serves many packets and one write carries many; the buffered socket on its own; the
packets' properties and reason codes decode as paho's own; other paho versions get plain paho."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from flowgraphs.hub.paho_bulk import TESTED_PAHO, BufferedSocket, _share_mqtt5_tables, make_client
from tests.test_hub import broker, wait_for  # noqa: F401 - broker: the mosquitto fixture

mqtt = pytest.importorskip("paho.mqtt.client")


class Session:
    """A bulk paho client in a persistent MQTT 5 session (the hub's settings), collecting
    (topic, payload, mid, qos) and acknowledging only when told."""

    def __init__(self, port: int, client_id: str, topic: str):
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        self.got: list[tuple[str, bytes, int, int]] = []
        self.present: bool | None = None
        self.ready = threading.Event()
        self.client = make_client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5,
                                  manual_ack=True)
        self.client.on_message = lambda c, u, m: self.got.append((m.topic, m.payload, m.mid, m.qos))
        self.client.on_subscribe = lambda *a: self.ready.set()

        def on_connect(client, userdata, flags, reason_code, properties):
            self.present = flags.session_present
            client.subscribe([(topic, mqtt.SubscribeOptions(qos=1))])
        self.client.on_connect = on_connect
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        props.ReceiveMaximum = 65535
        self.client.connect("127.0.0.1", port, clean_start=False, properties=props)
        self.client.loop_start()
        assert self.ready.wait(15), "no SUBACK"

    def ack_all(self) -> None:
        for _, _, mid, qos in self.got:
            self.client.ack(mid, qos)

    def close(self) -> None:
        # a disconnect right after acknowledging can lose them at the broker (plain paho as well): a
        # QoS 1 publish's PUBACK says the broker has read every packet sent before it
        self.client.publish("w/barrier", b"", qos=1).wait_for_publish(timeout=30)
        self.client.disconnect()
        self.client.loop_stop()


def publisher(port: int, client_id: str, *, bulk: bool):
    new = make_client if bulk else mqtt.Client
    client = new(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
    client.max_inflight_messages_set(1000)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def publish(client, topic: str, payloads: list[bytes]) -> None:
    for info in [client.publish(topic, p, qos=1) for p in payloads]:
        info.wait_for_publish(timeout=60)


def test_bulk_session_keeps_the_unacknowledged_and_reads_many_packets_at_once(broker):  # noqa: F811
    pub = publisher(broker, "bulk-pub", bulk=False)
    first = Session(broker, "bulk-1", "w/raw/+")
    sent = [f'{{"frame": {i}, "pad": "{"x" * 200}"}}'.encode() for i in range(3000)]
    first.close()  # the session is kept: the 3000 queue up and arrive together next time
    publish(pub, "w/raw/north", sent)
    again = Session(broker, "bulk-1", "w/raw/+")
    assert again.present
    wait_for(lambda: len(again.got) == 3000, "3000 messages")
    assert [p for _, p, _, _ in again.got] == sent and {(t, q) for t, _, _, q in again.got} == {("w/raw/north", 1)}
    sock = again.client.socket()
    assert isinstance(sock, BufferedSocket)
    assert sock.reads < 3000 / 10, f"{sock.reads} reads for 3000 packets"  # plain paho: 3 or more per packet
    again.ack_all()
    again.close()

    later = [f"later {i}".encode() for i in range(50)]
    publish(pub, "w/raw/south", later)  # while the session is away: the broker keeps them
    third = Session(broker, "bulk-1", "w/raw/+")
    wait_for(lambda: len(third.got) == 50, "the 50 kept messages")
    time.sleep(0.5)  # none of the 3000 acknowledged ones may follow
    assert [p for _, p, _, _ in third.got] == later
    third.close()  # nothing acknowledged this time

    fourth = Session(broker, "bulk-1", "w/raw/+")
    wait_for(lambda: len(fourth.got) == 50, "the 50 unacknowledged messages again")
    assert [p for _, p, _, _ in fourth.got] == later
    fourth.ack_all()
    fourth.close()
    pub.loop_stop()
    pub.disconnect()


def test_bulk_publishes_arrive_in_order_in_few_writes(broker):  # noqa: F811
    listener = Session(broker, "bulk-listen", "w/out/#")
    pub = publisher(broker, "bulk-out", bulk=True)
    payloads = [f'{{"n": {i}}}'.encode() for i in range(2000)]
    publish(pub, "w/out/meter", payloads)
    wait_for(lambda: len(listener.got) == 2000, "2000 messages")
    assert [p for _, p, _, _ in listener.got] == payloads
    assert pub.socket().writes < 2000 / 5, f"{pub.socket().writes} writes for 2000 publishes"
    listener.ack_all()
    listener.close()
    pub.loop_stop()
    pub.disconnect()


def test_buffered_socket_serves_small_reads_from_one_recv_and_writes_on_flush():
    a, b = socket.socketpair()
    a.setblocking(False)
    sock = BufferedSocket(a)
    with pytest.raises(BlockingIOError):
        sock.recv(1)  # nothing there: paho waits in select
    b.sendall(b"\x30\x03abc\x40\x02\x00\x01")
    assert sock.recv(1) == b"\x30" and sock.pending() == 8
    assert sock.recv(1) == b"\x03" and sock.recv(3) == b"abc"
    assert sock.recv(100) == b"\x40\x02\x00\x01" and sock.pending() == 0 and sock.reads == 1
    assert sock.send(b"one") == 3 and sock.send(b"two") == 3 and sock.unsent()
    b.setblocking(False)
    with pytest.raises(BlockingIOError):
        b.recv(10)  # nothing written before the flush
    sock.flush()
    assert not sock.unsent() and sock.writes == 1 and b.recv(10) == b"onetwo"
    sock.send(b"bye")
    sock.close()  # unsent bytes go out before the socket closes
    b.setblocking(True)
    assert b.recv(10) == b"bye" and b.recv(10) == b""
    b.close()


def test_other_paho_versions_get_plain_paho(monkeypatch):
    import paho.mqtt as paho

    bulk = make_client(mqtt.CallbackAPIVersion.VERSION2, client_id="v")
    assert paho.__version__ not in TESTED_PAHO or type(bulk) is not mqtt.Client
    monkeypatch.setattr(paho, "__version__", "9.9.9")
    assert type(make_client(mqtt.CallbackAPIVersion.VERSION2, client_id="v")) is mqtt.Client


def test_shared_tables_decode_packets_as_paho_does():
    """PUBLISH and PUBACK packets (with and without properties and reason codes) decode to the
    same values through the shared-table classes as through paho's own; a wrong name still fails."""
    import struct

    from paho.mqtt import _packet
    from paho.mqtt.enums import MQTTProtocolVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties
    from paho.mqtt.reasoncodes import ReasonCode

    _share_mqtt5_tables()
    assert _packet.Properties is not Properties and issubclass(_packet.Properties, Properties)
    assert issubclass(_packet.ReasonCode, ReasonCode)
    v5 = MQTTProtocolVersion.MQTTv5
    props = Properties(PacketTypes.PUBLISH)
    props.MessageExpiryInterval = 60
    props.ContentType = "application/json"
    props.UserProperty = ("rx", "north")
    props.UserProperty = ("fw", "1.2")
    topic = b"w/raw/north"
    with_props = struct.pack("!H", len(topic)) + topic + struct.pack("!H", 7) + props.pack() + b'{"v":1}'
    plain = struct.pack("!H", len(topic)) + topic + struct.pack("!H", 8) + b"\x00" + b'{"v":2}'
    for body in (with_props, plain):
        got = _packet.decode_publish(0x32, body, v5)
        own = Properties(PacketTypes.PUBLISH)
        own.unpack(body[2 + len(topic) + 2:])
        assert type(got.properties) is _packet.Properties
        assert got.properties.json() == own.json() and str(got.properties) == str(own)
        assert got.properties.pack() == own.pack() and got.properties.isEmpty() == own.isEmpty()
    assert got.payload == b'{"v":2}' and got.mid == 8 and got.topic == topic
    assert _packet.decode_publish(0x32, with_props, v5).properties.UserProperty == [("rx", "north"), ("fw", "1.2")]
    reason = Properties(PacketTypes.PUBACK)
    reason.ReasonString = "quota"
    for body, value in ((b"\x00\x05", 0), (b"\x00\x06\x10", 16), (b"\x00\x07\x97" + reason.pack(), 0x97)):
        got = _packet.decode_puback(0x40, body, v5)
        own = ReasonCode(PacketTypes.PUBACK)
        if len(body) > 2:
            own.unpack(body[2:])
        assert got.reason == own and got.reason.value == value and str(got.reason) == str(own)
        assert got.reason.is_failure == own.is_failure and repr(got.reason) == repr(own)
    assert got.properties.ReasonString == "quota" and got.mid == 7
    assert _packet.ReasonCode(PacketTypes.DISCONNECT).getName() == "Normal disconnection"
    assert _packet.ReasonCode(PacketTypes.SUBACK, identifier=1) == ReasonCode(PacketTypes.SUBACK, identifier=1)
    with pytest.raises(KeyError):
        _packet.ReasonCode(PacketTypes.PUBACK, "Server moved")
    with pytest.raises(Exception, match="Property name"):
        _packet.Properties(PacketTypes.PUBLISH).NoSuchProperty = 1
