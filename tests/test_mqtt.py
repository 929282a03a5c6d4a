"""MQTT that survives the real world, against a real mosquitto that the tests start, kill and start
again on the same port: ``rx`` starts without a broker, keeps receiving through broker outages, queues
(bounded, drops counted) and publishes in order when the broker is back; the raw edge schema the hub
reads; mqtts with a CA, a client certificate and a password that never shows.

The harness here (:class:`Mosquitto`, :class:`Subscriber`, :class:`RxRun`) is also what
``benchmarks/mqtt_outage.py`` runs, for 5 minutes instead of 16 s."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from flowgraphs.sinks.mqtt_link import MqttSettings, redact_url

REPO = Path(__file__).resolve().parent.parent
RECORDING = REPO / "recordings" / "example_868.625M_2M4.sigmf-meta"
LOOP_S = 2.0  # the bundled recording: 8 frames in 2.0 s at 2.4 Msps
RAW_FIELDS = {"v", "receiver", "telegram", "mode", "format", "time", "time_ns", "sample", "sample_rate_hz",
              "rssi_dbfs", "snr_db", "freq_offset_hz", "chip_rate_hz", "channel_hz", "ppm", "dropped_samples"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition, timeout_s: float, what: str, step_s: float = 0.05):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(step_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


class Mosquitto:
    """A real mosquitto on ``port`` with persistence (sessions and queued QoS 1 messages survive a
    stop with SIGTERM), logging to ``dir/mosquitto.log``; ``stop()`` / ``start()`` on the same port.
    ``extra`` adds listener options (TLS, passwords)."""

    def __init__(self, directory: Path, port: int | None = None, extra: str = ""):
        exe = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin")
        if exe is None:
            pytest.skip("mosquitto is not installed (Debian package mosquitto; make test installs it)")
        self.exe, self.dir = exe, Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.conf = self.dir / "mosquitto.conf"
        # user root: as root, mosquitto would otherwise switch to its own user, which cannot write here
        self.conf.write_text(f"user root\nlistener {self.port} 127.0.0.1\n{extra or 'allow_anonymous true'}\n"
                             f"persistence true\npersistence_location {self.dir}/\nautosave_interval 1\n"
                             "max_queued_messages 100000\nlog_dest stderr\nlog_type all\n")
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> Mosquitto:
        log = (self.dir / "mosquitto.log").open("ab")
        self.proc = subprocess.Popen([self.exe, "-c", str(self.conf)], stdout=log, stderr=log)
        log.close()
        self.starts += 1

        def listening():
            if self.proc.poll() is not None:
                raise AssertionError(f"mosquitto exited with {self.proc.returncode}: {self.log()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return True
            except OSError:
                return False
        wait_for(listening, 20, f"mosquitto on port {self.port}")
        return self

    def stop(self) -> None:
        """Kill the broker (SIGTERM: it saves its sessions and queues, as on a service restart)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None

    def log(self) -> str:
        p = self.dir / "mosquitto.log"
        return p.read_text(errors="replace") if p.exists() else ""


class Subscriber:
    """A QoS 1 (or ``qos``) subscriber with a persistent session (fixed client id, clean_session
    False): the broker keeps what arrives while it is away, also across a broker restart.
    ``messages``: (topic, payload bytes, dup flag) in arrival order."""

    def __init__(self, port: int, topics: list[str], *, client_id: str = "test-subscriber", tls: dict | None = None,
                 username: str | None = None, password: str | None = None, qos: int = 1):
        paho = pytest.importorskip("paho.mqtt.client")
        self.messages: list[tuple[str, bytes, bool]] = []
        self.lock = threading.Lock()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
        self.client.reconnect_delay_set(min_delay=1, max_delay=2)
        if tls:
            self.client.tls_set(**tls)
        if username:
            self.client.username_pw_set(username, password)
        self.subscribed = threading.Event()
        self.topics = topics

        def on_connect(c, u, flags, rc, props=None):
            if not rc.is_failure:
                for t in topics:
                    c.subscribe(t, qos=qos)

        def on_message(c, u, msg):
            with self.lock:
                self.messages.append((msg.topic, msg.payload, bool(msg.dup)))

        self.client.on_connect = on_connect
        self.client.on_message = on_message
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.port = port

    def start(self) -> Subscriber:
        self.client.connect_async("127.0.0.1", self.port, keepalive=10)
        self.client.loop_start()
        wait_for(self.subscribed.is_set, 20, "the subscription")
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def raw(self) -> list[dict]:
        with self.lock:
            return [json.loads(p) for t, p, _ in self.messages if "/raw/" in t]

    def status(self) -> list[str]:
        with self.lock:
            return [p.decode() for t, p, _ in self.messages if "/status/" in t]

    def raw_with_dup(self) -> list[tuple[dict, bool]]:
        with self.lock:
            return [(json.loads(p), dup) for t, p, dup in self.messages if "/raw/" in t]


class RxRun:
    """``wmbus-sdr rx`` over an rtl_tcp stream of the bundled recording (looped), JSON lines on stdout
    collected as they come (what rx received), stderr kept."""

    def __init__(self, mqtt_url: str, *extra: str, seconds: float, env: dict | None = None, verbose: bool = False):
        from sdr.rtltcp import RtlTcpServer

        self.server = RtlTcpServer(str(RECORDING), port=0, loop=True)
        self.server.start()
        cmd = [sys.executable, "-m", "flowgraphs.cli", *(["-v", "-v"] if verbose else []), "rx",
               "--device", f"rtltcp://127.0.0.1:{self.server.port}", "--rate", "2.4e6", "--output", "jsonl",
               "--mqtt", mqtt_url, "--duration", str(seconds), "--quiet", *extra]
        self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})
        self.frames: list[dict] = []
        self.stdout_text: list[str] = []
        self.stderr = b""
        self._out = threading.Thread(target=self._read_out, daemon=True)
        self._err = threading.Thread(target=self._read_err, daemon=True)
        self._out.start()
        self._err.start()

    def _read_out(self) -> None:
        for line in self.proc.stdout:
            text = line.decode()
            self.stdout_text.append(text)
            self.frames.append(json.loads(text))

    def _read_err(self) -> None:
        self.stderr = self.proc.stderr.read()

    def wait(self, timeout_s: float) -> int:
        try:
            rc = self.proc.wait(timeout=timeout_s)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.server.stop()
            self._out.join(timeout=10)
            self._err.join(timeout=10)
        return rc

    def summary_count(self, what: str) -> int:
        m = re.search(rb"mqtt \S+: (\d+) messages published, (\d+) dropped \(queue \d+, max depth (\d+)\)",
                      self.stderr)
        assert m, self.stderr.decode(errors="replace")
        return int(m[{"published": 1, "dropped": 2, "max_depth": 3}[what]])


def expected_telegrams(loops: int) -> list[str]:
    notes = json.loads(RECORDING.read_text())["annotations"]
    return [n["wmbus:telegram"] for n in notes] * loops


def check_heard_the_recording(rx: RxRun, loops: int) -> None:
    """rx's frames are the recording's, each where the looped recording has it; all of them unless
    rx reports samples dropped (a machine too busy to keep up: not what these tests are about)."""
    notes = json.loads(RECORDING.read_text())["annotations"]
    loop_samples = int(LOOP_S * 2.4e6)
    for f in rx.frames:
        within = f["sample"] % loop_samples
        note = [n for n in notes if n["core:sample_start"] <= within][-1]
        assert f["telegram"] == note["wmbus:telegram"], (f["sample"], f["telegram"])
    assert len({f["sample"] for f in rx.frames}) == len(rx.frames)
    if re.search(rb", 0 samples dropped", rx.stderr):
        assert [f["telegram"] for f in rx.frames] == expected_telegrams(loops)
    else:
        assert len(rx.frames) >= 4 * loops, rx.stderr.decode(errors="replace")


def key(msg: dict) -> tuple[str, int]:
    return msg["telegram"], msg["sample"]


def register_session(broker: Mosquitto, topics: list[str], **kw) -> None:
    """Make the subscriber's persistent session on the broker, then leave: the broker queues for it."""
    sub = Subscriber(broker.port, topics, **kw).start()
    sub.stop()


# --- settings: URL, credentials, masking ----------------------------------------------------------

def test_settings_from_url_credentials_and_masking(tmp_path):
    s = MqttSettings.from_url("mqtts://edge:s3cr%2Ft@broker.example:8884/site/a", receiver_id="roof", env={})
    assert (s.host, s.port, s.prefix, s.tls, s.username, s.password) == ("broker.example", 8884, "site/a", True,
                                                                          "edge", "s3cr/t")
    assert "s3cr" not in repr(s) and "s3cr" not in s.url and s.url == "mqtts://edge:***@broker.example:8884/site/a"
    assert (s.status_topic, s.raw_topic) == ("site/a/status/roof", "site/a/raw/roof")
    pw = tmp_path / "pw"
    pw.write_text("from-file\n")
    s = MqttSettings.from_url("mqtt://edge:from-url@h", password_file=str(pw), env={"WMBUS_MQTT_PASSWORD": "env"})
    assert (s.port, s.prefix, s.password) == (1883, "wmbus", "from-file")
    assert MqttSettings.from_url("mqtt://edge@h", env={"WMBUS_MQTT_PASSWORD": "env"}).password == "env"
    assert MqttSettings.from_url("mqtts://h", env={}).port == 8883
    assert redact_url("mqtt://u:pw@h:1/x") == "mqtt://u:***@h:1/x" and redact_url("mqtt://h/x") == "mqtt://h/x"


@pytest.mark.parametrize(("url", "kw", "message"), [
    ("http://h", {}, "use mqtt://"),
    ("mqtt://u:pw@h:99999", {}, "not a URL"),
    ("mqtt://h", {"qos": 3}, "--mqtt-qos 3"),
    ("mqtt://h", {"queue_size": 0}, "--mqtt-queue 0"),
    ("mqtt://h", {"receiver_id": "a/b"}, "--receiver-id 'a/b'"),
    ("mqtt://h", {"ca_file": "ca.pem"}, "--mqtt-ca needs an mqtts://"),
    ("mqtts://h", {"cert_file": "c.pem"}, "--mqtt-cert and --mqtt-key go together"),
    ("mqtts://h", {"ca_file": "/nonexistent/ca.pem"}, "--mqtt-ca /nonexistent/ca.pem: no such file"),
    ("mqtt://h/a+b", {}, "may not hold"),
])
def test_settings_errors_name_the_option_and_never_the_password(url, kw, message):
    with pytest.raises(ValueError, match=re.escape(message)) as err:
        MqttSettings.from_url(url, env={}, **kw)
    assert ":pw@" not in str(err.value)


def test_password_file_errors_name_the_file(tmp_path):
    with pytest.raises(ValueError, match="--mqtt-password-file .*missing"):
        MqttSettings.from_url("mqtt://u@h", password_file=str(tmp_path / "missing"), env={})
    (tmp_path / "empty").write_text("")
    with pytest.raises(ValueError, match="is empty"):
        MqttSettings.from_url("mqtt://u@h", password_file=str(tmp_path / "empty"), env={})


def test_rx_raw_without_broker_url_is_one_clear_line():
    p = subprocess.run([sys.executable, "-m", "flowgraphs.cli", "rx", "--device", "rtltcp://127.0.0.1:9", "--raw"],
                       capture_output=True, cwd=REPO, timeout=60)
    assert p.returncode == 2 and b"--raw publishes to a broker" in p.stderr and b"Traceback" not in p.stderr


# --- against a real broker --------------------------------------------------------------------------

def test_rx_starts_without_a_broker_and_delivers_when_it_comes(tmp_path):
    """(a) No broker at start: rx warns naming host:port and keeps receiving; when the broker comes
    up, everything queued arrives, in order, as raw messages with exactly the hub's fields."""
    broker = Mosquitto(tmp_path / "broker").start()
    register_session(broker, ["test/raw/#", "test/status/#"])
    broker.stop()
    rx = RxRun(f"mqtt://127.0.0.1:{broker.port}/test", "--raw", "--receiver-id", "edge1", seconds=8.05)
    wait_for(lambda: len(rx.frames) >= 6 or rx.proc.poll() is not None, 60, "rx receiving without a broker")
    assert rx.proc.poll() is None, "rx exited without a broker"
    broker.start()
    sub = Subscriber(broker.port, ["test/raw/#", "test/status/#"]).start()
    try:
        assert rx.wait(90) == 0, rx.stderr.decode(errors="replace")
        sent = [key(f) for f in rx.frames]
        wait_for(lambda: len(sub.raw()) >= len(sent), 30, f"{len(sent)} raw messages")
        got = sub.raw()
    finally:
        sub.stop()
        broker.stop()
    err = rx.stderr.decode(errors="replace")
    assert f"mqtt 127.0.0.1:{broker.port}: cannot connect" in err
    check_heard_the_recording(rx, 4)
    assert [key(m) for m in got] == sent  # all of them, once each, in order
    for m, f in zip(got, rx.frames, strict=True):
        assert set(m) == RAW_FIELDS
        assert (m["v"], m["receiver"], m["mode"], m["format"], m["time"], m["ppm"]) == (
            1, "edge1", f["mode"], f["format"], f["time"], None)
        assert m["time"].endswith("Z") and isinstance(m["time_ns"], int) and m["sample_rate_hz"] == 2.4e6
        assert (m["rssi_dbfs"], m["snr_db"], m["chip_rate_hz"], m["channel_hz"]) == (
            f["rssi_dbfs"], f["snr_db"], f["chip_rate_hz"], f["channel_hz"])
    assert rx.summary_count("dropped") == 0 and rx.summary_count("published") == len(sent)
    assert sub.status()[-1] == "offline"


def test_broker_killed_twice_every_frame_arrives_exactly_once(tmp_path):
    """(b) The acceptance run: rx over rtl_tcp of the bundled recording (8 loops); the broker is
    killed twice for 4 s and started again on the same port. A QoS 1 subscriber with a persistent
    session gets every frame rx received, in order, and rx sends none twice; rx never exits early,
    drops 0.

    What QoS 1 allows: a broker killed between handing a message to the subscriber and reading the
    subscriber's PUBACK delivers it again after its restart, with the DUP flag (the subscriber's
    acknowledgement died with the broker). A copy that rx itself sent twice would reach the
    subscriber as a new message, without the flag (the flag is never passed on). So: the first
    arrivals are exactly rx's frames in order, and every further copy is a flagged redelivery.
    Exactly once at the subscriber through any broker restart is QoS 2 end to end (next test)."""
    broker = Mosquitto(tmp_path / "broker").start()
    sub = Subscriber(broker.port, ["test/raw/#"]).start()
    loops = 8
    rx = RxRun(f"mqtt://127.0.0.1:{broker.port}/test", "--raw", "--receiver-id", "edge1", seconds=loops * LOOP_S + 0.05)
    try:
        for after_frames in (3, 20):
            wait_for(lambda n=after_frames: len(rx.frames) >= n, 60, f"{after_frames} frames")
            broker.stop()
            down_from = len(rx.frames)
            time.sleep(4.0)
            assert rx.proc.poll() is None, rx.proc.stderr
            wait_for(lambda n=down_from: len(rx.frames) >= n + 4, 30, "frames while the broker is down")
            broker.start()
        assert rx.wait(120) == 0, rx.stderr.decode(errors="replace")
        sent = [key(f) for f in rx.frames]
        wait_for(lambda: len({key(m) for m in sub.raw()}) >= len(sent), 60, f"{len(sent)} raw messages")
        time.sleep(0.5)  # a duplicate would come now
        arrivals = [(key(m), dup) for m, dup in sub.raw_with_dup()]
    finally:
        sub.stop()
        broker.stop()
    assert broker.starts == 3
    check_heard_the_recording(rx, loops)
    first = list(dict.fromkeys(k for k, _ in arrivals))
    assert first == sent
    seen: set = set()
    for k, dup in arrivals:
        assert k not in seen or dup, f"frame at sample {k[1]} arrived twice without the DUP flag: rx sent it twice"
        seen.add(k)
    assert rx.summary_count("dropped") == 0 and rx.summary_count("max_depth") >= 4
    assert b"2 disconnects" in rx.stderr or b"3 disconnects" in rx.stderr, rx.stderr


def test_qos2_end_to_end_exactly_once_through_broker_kills(tmp_path):
    """--mqtt-qos 2 and a QoS 2 subscriber: exactly once at the subscriber, in order, also when the
    broker is killed the moment the subscriber got the latest frame (its acknowledgement still on the
    way) and the outage queues more frames than mosquitto holds between PUBREC and PUBREL for one
    client (20 by default: beyond it a 3.1.1 client's messages are dropped with "quota exceeded";
    rx keeps its QoS 2 window below that)."""
    broker = Mosquitto(tmp_path / "broker").start()
    sub = Subscriber(broker.port, ["test/raw/#"], qos=2).start()
    loops = 12
    rx = RxRun(f"mqtt://127.0.0.1:{broker.port}/test", "--raw", "--receiver-id", "edge2", "--mqtt-qos", "2",
               seconds=loops * LOOP_S + 0.05)
    try:
        for after_frames in (3, 40):
            wait_for(lambda n=after_frames: len(rx.frames) >= n, 60, f"{after_frames} frames")
            wait_for(lambda: len(sub.raw()) >= len(rx.frames), 30, "the subscriber to hold every frame so far")
            broker.stop()
            down_from = len(rx.frames)
            wait_for(lambda n=down_from: len(rx.frames) >= n + 24 or rx.proc.poll() is not None, 60,
                     "24 frames while the broker is down")
            assert rx.proc.poll() is None, rx.stderr
            broker.start()
        assert rx.wait(120) == 0, rx.stderr.decode(errors="replace")
        sent = [key(f) for f in rx.frames]
        wait_for(lambda: len(sub.raw()) >= len(sent), 60, f"{len(sent)} raw messages")
        time.sleep(0.5)  # a duplicate would come now
        got = [key(m) for m in sub.raw()]
    finally:
        sub.stop()
        broker.stop()
    assert broker.starts == 3
    check_heard_the_recording(rx, loops)
    assert got == sent  # none lost, none twice, in order
    assert rx.summary_count("dropped") == 0 and rx.summary_count("max_depth") >= 24


def test_queue_overflow_drops_the_oldest_counted_and_reported(tmp_path):
    """(c) --mqtt-queue 3 with the broker away: the oldest messages are dropped, each counted; the
    summary and a warning say so; the rest arrive in order once the broker is up."""
    broker = Mosquitto(tmp_path / "broker").start()
    register_session(broker, ["test/raw/#"])
    broker.stop()
    rx = RxRun(f"mqtt://127.0.0.1:{broker.port}/test", "--raw", "--mqtt-queue", "3", seconds=6.05)
    wait_for(lambda: len(rx.frames) >= 8 or rx.proc.poll() is not None, 60, "8 frames without a broker")
    broker.start()
    sub = Subscriber(broker.port, ["test/raw/#"]).start()
    try:
        assert rx.wait(90) == 0, rx.stderr.decode(errors="replace")
        dropped = rx.summary_count("dropped")
        sent = [key(f) for f in rx.frames]
        wait_for(lambda: len(sub.raw()) >= len(sent) - dropped, 30, "the messages kept")
        time.sleep(0.5)
        got = [key(m) for m in sub.raw()]
    finally:
        sub.stop()
        broker.stop()
    assert dropped >= 5  # at least 8 frames were queued while the broker was away
    assert got == sent[dropped:]  # the oldest went; what was kept came in order
    assert rx.summary_count("max_depth") == 3
    assert b"queue full (3 messages): dropped the oldest" in rx.stderr


def _make_pki(d: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files."""
    import datetime
    import ipaddress

    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def cert(subject, key, issuer, issuer_key, *, ca=False, san=None):
        b = (x509.CertificateBuilder().subject_name(name(subject)).issuer_name(name(issuer))
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if san:
            b = b.add_extension(x509.SubjectAlternativeName(san), critical=False)
        if ca:
            b = b.add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                              content_commitment=False, key_encipherment=False,
                                              data_encipherment=False, key_agreement=False, encipher_only=False,
                                              decipher_only=False), critical=True)
            b = b.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        else:
            b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                                critical=False)
        return b.sign(issuer_key, hashes.SHA256())

    out = {}

    def write(stem, key, c):
        out[stem + "_key"] = d / f"{stem}.key"
        out[stem + "_key"].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                         serialization.PrivateFormat.TraditionalOpenSSL,
                                                         serialization.NoEncryption()))
        out[stem] = d / f"{stem}.pem"
        out[stem].write_bytes(c.public_bytes(serialization.Encoding.PEM))

    ca_key = ec.generate_private_key(ec.SECP256R1())
    write("ca", ca_key, cert("wmbus-sdr test CA", ca_key, "wmbus-sdr test CA", ca_key, ca=True))
    k = ec.generate_private_key(ec.SECP256R1())
    write("server", k, cert("127.0.0.1", k, "wmbus-sdr test CA", ca_key,
                            san=[x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]))
    k = ec.generate_private_key(ec.SECP256R1())
    write("client", k, cert("edge1", k, "wmbus-sdr test CA", ca_key))
    return out


def test_mqtts_with_ca_client_certificate_and_a_password_that_never_shows(tmp_path):
    """(d) mqtts to a TLS listener that checks our client certificate and password: the frames arrive;
    the password (file, URL or environment) is in no output, also at debug level; a wrong password
    is a warning without it, and rx keeps receiving."""
    passwd = shutil.which("mosquitto_passwd")
    if passwd is None:
        pytest.skip("mosquitto_passwd is not installed (Debian package mosquitto)")
    pki = _make_pki(tmp_path)
    secret = "pw-Ax7-never-shown"
    subprocess.run([passwd, "-b", "-c", str(tmp_path / "passwords"), "edge", secret], check=True, capture_output=True)
    tls = (f"cafile {pki['ca']}\ncertfile {pki['server']}\nkeyfile {pki['server_key']}\nrequire_certificate true\n"
           f"allow_anonymous false\npassword_file {tmp_path / 'passwords'}")
    broker = Mosquitto(tmp_path / "broker", extra=tls).start()
    files = ["--mqtt-ca", str(pki["ca"]), "--mqtt-cert", str(pki["client"]), "--mqtt-key", str(pki["client_key"])]
    (tmp_path / "pw.txt").write_text(secret + "\n")
    sub = Subscriber(broker.port, ["test/raw/#", "test/status/#"], username="edge", password=secret,
                     tls={"ca_certs": str(pki["ca"]), "certfile": str(pki["client"]), "keyfile": str(pki["client_key"])}
                     ).start()
    url = f"mqtts://edge@127.0.0.1:{broker.port}/test"
    try:
        runs = [RxRun(url, "--raw", "--mqtt-password-file", str(tmp_path / "pw.txt"), *files, seconds=2.05,
                      verbose=True)]
        assert runs[0].wait(90) == 0, runs[0].stderr.decode(errors="replace")
        wait_for(lambda: len(sub.raw()) >= len(runs[0].frames), 30, "the raw messages over TLS")
        check_heard_the_recording(runs[0], 1)
        assert [key(m) for m in sub.raw()] == [key(f) for f in runs[0].frames]
        runs.append(RxRun(f"mqtts://edge:{secret}@127.0.0.1:{broker.port}/test", "--raw", *files, seconds=2.05))
        assert runs[1].wait(90) == 0
        assert f"mqtts://edge:***@127.0.0.1:{broker.port}/test".encode() in runs[1].stderr
        runs.append(RxRun(url, "--raw", *files, seconds=2.05, verbose=True, env={"WMBUS_MQTT_PASSWORD": "wrong-Qz9"}))
        assert runs[2].wait(90) == 0
        check_heard_the_recording(runs[2], 1)
        assert b"refused" in runs[2].stderr, runs[2].stderr
        n = len(runs[0].frames) + len(runs[1].frames)
        wait_for(lambda: len(sub.raw()) >= n, 30, "the second run's messages")
        time.sleep(0.5)
    finally:
        sub.stop()
        broker.stop()
    assert len(sub.raw()) == n  # not the third run's
    for run in runs:
        out = run.stderr + "".join(run.stdout_text).encode()
        assert secret.encode() not in out and b"wrong-Qz9" not in out and b"Traceback" not in out


def test_last_will_says_offline_when_rx_dies(tmp_path):
    """The availability topic: retained ``online`` on connect; when rx dies without closing (SIGKILL),
    the broker publishes its last will ``offline``."""
    broker = Mosquitto(tmp_path / "broker").start()
    sub = Subscriber(broker.port, ["test/status/#"]).start()
    rx = RxRun(f"mqtt://127.0.0.1:{broker.port}/test", "--raw", "--receiver-id", "edge9", seconds=60)
    try:
        wait_for(lambda: sub.status() == ["online"], 60, "online")
        rx.proc.kill()
        rx.wait(30)
        wait_for(lambda: sub.status() == ["online", "offline"], 30, "the last will")
        with sub.lock:
            assert {t for t, _, _ in sub.messages} == {"test/status/edge9"}
    finally:
        sub.stop()
        broker.stop()


def test_link_checks_the_broker_certificate_unless_insecure(tmp_path, caplog):
    """The link as a library (the hub reuses it): without the CA the broker's certificate is refused
    (a warning, no crash, the message stays queued); with insecure=True it connects and delivers."""
    from flowgraphs.sinks.mqtt_link import MqttLink

    pki = _make_pki(tmp_path)
    broker = Mosquitto(tmp_path / "broker", extra=f"cafile {pki['ca']}\ncertfile {pki['server']}\n"
                                                  f"keyfile {pki['server_key']}\nallow_anonymous true").start()
    sub = Subscriber(broker.port, ["t/#"], tls={"ca_certs": str(pki["ca"])}).start()
    url = f"mqtts://127.0.0.1:{broker.port}/t"
    strict = MqttLink(MqttSettings.from_url(url, receiver_id="strict", env={}), availability=False).start()
    loose = MqttLink(MqttSettings.from_url(url, receiver_id="loose", insecure=True, env={}), availability=False).start()
    try:
        with caplog.at_level("WARNING", logger="flowgraphs.sinks.mqtt_link"):
            strict.publish("t/strict", "must not arrive")
            loose.publish("t/loose", "hello")
            wait_for(lambda: [p for _, p, _ in sub.messages] == [b"hello"], 30, "the insecure link's message")
            wait_for(lambda: "cannot connect" in caplog.text, 30, "the strict link's warning")
        assert loose.close().published == 1
        stats = strict.close(timeout_s=0.5)
        assert (stats.published, stats.unsent, stats.connects) == (0, 1, 0)
    finally:
        sub.stop()
        broker.stop()
    assert [t for t, _, _ in sub.messages] == ["t/loose"]


def test_link_as_an_mqtt5_subscriber_for_the_hub(tmp_path):
    """The link the hub reuses: MQTT 5 with a persistent session and subscriptions made again on
    every connect; what is published to it while it is away (the broker restarted meanwhile) is
    delivered when it is back."""
    from flowgraphs.sinks.mqtt_link import MqttLink

    broker = Mosquitto(tmp_path / "broker").start()
    url = f"mqtt://127.0.0.1:{broker.port}/t"
    got: list[bytes] = []
    hub = MqttLink(MqttSettings.from_url(url, receiver_id="hub", mqtt5=True, env={}), role="hub",
                   subscriptions=[("t/raw/+", 1)], on_message=lambda topic, payload: got.append(payload)).start()
    edge = MqttLink(MqttSettings.from_url(url, receiver_id="edge", env={}), availability=False).start()
    try:
        wait_for(hub.subscribed.is_set, 30, "the hub's subscription")
        edge.publish("t/raw/edge", "1")
        wait_for(lambda: got == [b"1"], 30, "the first message")
        wait_for(lambda: hub.stats().connects == 1, 10, "the hub connected")
        broker.stop()
        edge.publish("t/raw/edge", "2")
        broker.start()
        wait_for(lambda: got == [b"1", b"2"], 30, "the message sent while the broker was away")
        hub.close()
        edge.publish("t/raw/edge", "3")  # the hub is away: its session keeps this
        wait_for(lambda: edge.stats().published == 3, 30, "the edge's third message acknowledged")
        hub = MqttLink(MqttSettings.from_url(url, receiver_id="hub", mqtt5=True, env={}), role="hub",
                       subscriptions=[], on_message=lambda topic, payload: got.append(payload)).start()
        wait_for(lambda: got == [b"1", b"2", b"3"], 30, "the message kept by the hub's session")
    finally:
        hub.close()
        edge.close()
        broker.stop()


def test_the_live_status_reaches_raw_messages_and_the_ha_receiver_device(tmp_path):
    """The MQTT output hears the live status (LiveStatus): the tuner ppm goes into the raw messages of
    an edge, and with discovery the receiver device gets its diagnostics."""
    from flowgraphs.pipelines.live import LiveStatus
    from flowgraphs.sinks.mqtt import MqttSink
    from flowgraphs.sinks.mqtt_link import MqttSettings
    from tests.support import sample_frame

    broker = Mosquitto(tmp_path / "broker").start()
    try:
        sub = Subscriber(broker.port, ["edge/#", "homeassistant/#"], client_id="status-subscriber").start()
        status = LiveStatus(seconds=61.0, frames=12, frames_per_min=11.8, rejected=1, duplicates=0, bursts=20,
                            meters=3, cpu_percent=8.0, dropped_samples=5, gaps=0, restarts=0, stalls=0,
                            signal_s=61.0, ppm=12.345, ppm_spread=0.8, ppm_meters=3, final=True)
        raw = MqttSink(MqttSettings.from_url(f"mqtt://127.0.0.1:{broker.port}/edge", receiver_id="attic", raw=True))
        wait_for(raw.link.subscribed.is_set, 20, "the edge's connection")
        raw(sample_frame(), None)  # before any status: no estimate yet
        raw.on_status(status)
        raw(sample_frame(sample=2_500_000), None)
        raw.close()
        wait_for(lambda: len(sub.raw()) == 2, 20, "two raw messages")
        assert [m["ppm"] for m in sub.raw()] == [None, 12.35]
        assert [m["dropped_samples"] for m in sub.raw()] == [None, 5]  # the hub's receiver health
        ha = MqttSink(MqttSettings.from_url(f"mqtt://127.0.0.1:{broker.port}/edge", receiver_id="attic"),
                      discovery=True)
        wait_for(ha.link.subscribed.is_set, 20, "the sink's connection (it listens for HA's birth message)")
        ha.on_status(status)
        ha.close()

        def receiver_state():
            with sub.lock:
                return [json.loads(p) for t, p, _ in sub.messages if t == "edge/receiver/attic"]
        state = wait_for(receiver_state, 20, "the receiver device's state")[-1]
        assert state.get("frames_per_minute") == 11.8 and state.get("dropped_samples") == 5
        assert any(str(v).startswith("12.3") for v in state.values())  # the tuner ppm
        with sub.lock:
            configs = [json.loads(p) for t, p, _ in sub.messages if t.startswith("homeassistant/") and p]
        assert configs and all(c["device"]["identifiers"] == ["wmbus_receiver_attic"] for c in configs)
        sub.stop()
    finally:
        broker.stop()
