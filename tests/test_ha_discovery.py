"""Home Assistant MQTT discovery (flowgraphs/sinks/ha.py): every payload checked against a written list
of HA's rules, the bundled recording's meters (7 devices from 8 frames, templates rendered with Jinja2
as HA does), unit conversions, history and null values, forgetting, and a real mosquitto broker."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
from dataclasses import replace
from datetime import date, datetime
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowgraphs.sinks.ha import HaDiscovery, Message, ReceiverStats, record_key
from mbus.compact import FormatCache
from mbus.keys import KeyStore
from mbus.records import decode_records
from mbus.telegram import Telegram, decode

from .conftest import REPO

RECORDING = REPO / "recordings" / "example_868.625M_2M4.sigmf-meta"
KEYS = REPO / "recordings" / "keys.txt"
PREFIX = "wmbus"
STATUS = "wmbus/status/rx1"

# --- Home Assistant's rules, as written down from its sources -----------------------------------------
# homeassistant/components/sensor/const.py (DEVICE_CLASS_UNITS, DEVICE_CLASS_STATE_CLASSES; the unit
# sets of the 2024 releases, a subset of today's: what every recent HA accepts), the sensor entity
# documentation (developers.home-assistant.io/docs/core/entity/sensor), and the MQTT integration
# (discovery.py TOPIC_MATCHER, the sensor platform schema, the device schema).
HA_UNITS: dict[str, set[str | None]] = {
    "energy": {"J", "kJ", "MJ", "GJ", "mWh", "Wh", "kWh", "MWh", "GWh", "TWh", "cal", "kcal", "Mcal", "Gcal"},
    "water": {"L", "gal", "m³", "ft³", "CCF"},
    "gas": {"m³", "ft³", "CCF"},
    "volume": {"L", "mL", "gal", "fl. oz.", "m³", "ft³", "CCF"},
    "volume_flow_rate": {"m³/h", "ft³/min", "L/min", "gal/min", "mL/s"},
    "power": {"W", "kW", "MW", "GW", "TW"},
    "temperature": {"°C", "°F", "K"},
    "temperature_delta": {"°C", "°F", "K"},
    "pressure": {"Pa", "kPa", "hPa", "bar", "cbar", "mbar", "mmHg", "inHg", "psi"},
    "voltage": {"V", "mV", "µV", "kV", "MV"},
    "current": {"A", "mA"},
    "frequency": {"Hz", "kHz", "MHz", "GHz"},
    "weight": {"kg", "g", "mg", "µg", "oz", "lb", "st"},
    "reactive_power": {"var"},
    "apparent_power": {"VA"},
    "humidity": {"%"},
    "moisture": {"%"},
    "signal_strength": {"dB", "dBm"},
    "duration": {"d", "h", "min", "s", "ms"},
    "date": {None},
    "timestamp": {None},
}
_ALL = {"measurement", "total", "total_increasing"}
HA_STATE_CLASSES: dict[str, set[str]] = {
    "energy": {"total", "total_increasing"}, "water": {"total", "total_increasing"},
    "gas": {"total", "total_increasing"}, "volume": {"total", "total_increasing"},
    "weight": _ALL, "duration": _ALL, "date": set(), "timestamp": set(),
    **{c: {"measurement"} for c in ("volume_flow_rate", "power", "temperature", "temperature_delta", "pressure",
                                    "voltage", "current", "frequency", "reactive_power", "apparent_power",
                                    "humidity", "moisture", "signal_strength")},
}
TOPIC = re.compile(r"(?P<prefix>[a-zA-Z0-9_-]+)/(?P<component>\w+)/(?P<node>[a-zA-Z0-9_-]+)"
                   r"/(?P<object>[a-zA-Z0-9_-]+)/config")
SENSOR_KEYS = {"name", "unique_id", "state_topic", "value_template", "device_class", "state_class",
               "unit_of_measurement", "suggested_display_precision", "entity_category", "enabled_by_default",
               "availability", "expire_after", "device", "origin"}
DEVICE_KEYS = {"identifiers", "name", "manufacturer", "model", "serial_number", "via_device", "sw_version",
               "hw_version"}
# the two shapes we emit: a meter's reading, a receiver's field; "" when the key is absent
TEMPLATE = re.compile(r"\{\{ (?:\(value_json\['readings'\] \| default\(\{\}\)\)|value_json)"
                      r"\['([a-z0-9_]+)'\] \| default\(''\) \}\}")


def _key(config: dict) -> str:
    return TEMPLATE.fullmatch(config["value_template"])[1]


def ha_violations(configs: list[Message]) -> list[str]:
    """Every rule a set of discovery configs breaks (empty payloads are removals and skipped)."""
    bad: list[str] = []
    uids: set[str] = set()
    names: dict[str, set[str]] = {}
    device_names: dict[str, str] = {}
    for m in configs:
        if m.payload == "":
            continue
        where = m.topic
        match = TOPIC.fullmatch(m.topic)
        if match is None or match["component"] != "sensor":
            bad.append(f"{where}: topic is not <prefix>/sensor/<node>/<object>/config in [a-zA-Z0-9_-]")
        if not m.retain:
            bad.append(f"{where}: config not retained")
        c = json.loads(m.payload)
        if set(c) - SENSOR_KEYS:
            bad.append(f"{where}: keys HA's sensor schema does not know: {set(c) - SENSOR_KEYS}")
        for key in ("name", "unique_id", "state_topic", "value_template", "device"):
            if not c.get(key):
                bad.append(f"{where}: no {key}")
        if c.get("unique_id") in uids:
            bad.append(f"{where}: unique_id {c.get('unique_id')} repeated")
        uids.add(c.get("unique_id"))
        if any(ch in c.get("state_topic", "+") for ch in "+#"):
            bad.append(f"{where}: state_topic with a wildcard")
        if not TEMPLATE.fullmatch(c.get("value_template", "")):
            bad.append(f"{where}: template {c.get('value_template')!r} is not a subscript read of one key")
        dev = c.get("device", {})
        if set(dev) - DEVICE_KEYS or not dev.get("identifiers") or not all(isinstance(i, str) for i in
                                                                              dev.get("identifiers", [None])):
            bad.append(f"{where}: device block {dev}")
        ident = (dev.get("identifiers") or ["?"])[0]
        if device_names.setdefault(ident, dev.get("name")) != dev.get("name"):
            bad.append(f"{where}: device {ident} announced with two names")
        name = c.get("name", "")
        if name in names.setdefault(ident, set()):
            bad.append(f"{where}: name {name!r} repeated within device {ident}")
        names[ident].add(name)
        if dev.get("name") and name.lower().startswith(dev["name"].lower()):
            bad.append(f"{where}: entity name repeats the device name")
        cls, state_class, unit = c.get("device_class"), c.get("state_class"), c.get("unit_of_measurement")
        if state_class is not None and state_class not in _ALL:
            bad.append(f"{where}: state_class {state_class}")
        if cls is not None:
            if cls not in HA_UNITS:
                bad.append(f"{where}: device_class {cls} is not on the list")
            else:
                if unit not in HA_UNITS[cls]:
                    bad.append(f"{where}: unit {unit!r} not accepted for {cls}")
                if state_class is not None and state_class not in HA_STATE_CLASSES[cls]:
                    bad.append(f"{where}: state_class {state_class} not allowed for {cls}")
        if c.get("entity_category") not in (None, "diagnostic"):
            bad.append(f"{where}: a sensor's entity_category must be diagnostic")
        if not isinstance(c.get("enabled_by_default", True), bool):
            bad.append(f"{where}: enabled_by_default not a boolean")
        for a in c.get("availability", []):
            if any(ch in a.get("topic", "+") for ch in "+#"):
                bad.append(f"{where}: availability topic {a}")
        precision = c.get("suggested_display_precision")
        if precision is not None and (not isinstance(precision, int) or precision < 0):
            bad.append(f"{where}: suggested_display_precision {precision}")
    return bad


# --- HA's template engine --------------------------------------------------------------------------------


def render(template: str, payload: str) -> str:
    """The sensor state HA computes: the template rendered with the JSON payload as ``value_json``
    (Jinja2's sandbox, as HA uses; ``pip install jinja2`` — without it, the one shape we emit)."""
    value_json = json.loads(payload)
    try:
        from jinja2.sandbox import ImmutableSandboxedEnvironment
    except ImportError:
        value = value_json
        for k in re.findall(r"\['([a-z0-9_]+)'\]", template):
            if not isinstance(value, dict) or k not in value:
                return ""
            value = value[k]
        return str(value)
    return ImmutableSandboxedEnvironment().from_string(template).render(value_json=value_json)


def check_state(config: dict, state: str, cls_kind: str | None = None) -> None:
    """The rendered state is what HA's MQTT sensor accepts for the config's class."""
    got = render(config["value_template"], state)
    assert got != "", (config["unique_id"], "the key is not in the state")
    if got == "None":  # HA's PAYLOAD_NONE: the sensor becomes "unknown"
        return
    cls = config.get("device_class")
    if cls == "timestamp":
        assert datetime.fromisoformat(got).tzinfo is not None, got
    elif cls == "date":
        date.fromisoformat(got)
    elif cls or "state_class" in config or "unit_of_measurement" in config:
        float(got)


# --- fixtures --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def recording_telegrams() -> list[Telegram]:
    """The bundled recording through the receiver and the stack, as ``wmbus-sdr decode --keys`` does."""
    from flowgraphs.pipelines.receive import receive
    from sdr.file import FileSource

    src = FileSource(str(RECORDING))
    keys, formats = KeyStore.from_file(KEYS), FormatCache()
    return [decode(f.telegram, keys=keys, frame_format=None, formats=formats)
            for f in receive(src, src.info) if f.crc_ok]


def _ha(**kw) -> HaDiscovery:
    return HaDiscovery(prefix=PREFIX, receiver_id="rx1", availability_topic=STATUS, **kw)


def _records(hex_apl: str):
    result = decode_records(bytes.fromhex(hex_apl))
    assert not result.errors
    return result.records


def _configs(messages: list[Message]) -> dict[str, dict]:
    return {m.topic: json.loads(m.payload) for m in messages if m.payload}


# --- the bundled recording -------------------------------------------------------------------------------


def test_recording_gives_seven_meter_devices_that_follow_ha_rules(recording_telegrams):
    assert len(recording_telegrams) == 8
    ha = _ha()
    configs: list[Message] = []
    states: dict[str, str] = {}
    for i, t in enumerate(recording_telegrams):
        configs += ha.on_telegram(t, heard_s=float(i))
        state = {"id": t.meter.id, **ha.state(t)}
        states[f"{PREFIX}/{t.meter.id}"] = json.dumps(state)
        # every template of this meter renders to the value of the record it stands for, this frame
        by_key = {c["value_template"]: c for c in _configs(configs).values()
                  if c["state_topic"] == f"{PREFIX}/{t.meter.id}"}
        for r in t.records:
            c = next(c for tpl, c in by_key.items() if f"'{record_key(r)}'" in tpl)
            got = render(c["value_template"], states[c["state_topic"]])
            if r.value is not None:
                assert Decimal(got) == r.value, (c["unique_id"], got, r.value)
            else:
                assert got.startswith(r.text[:16]), (c["unique_id"], got, r.text)
    receiver = ha.receiver(ReceiverStats(frames_per_minute=240.0, dropped_samples=0, freq_error_ppm=10.4,
                                         last_frame_ns=1_764_619_200_000_000_000))
    configs += receiver[:-1]
    states[receiver[-1].topic] = receiver[-1].payload
    assert ha_violations(configs) == []
    meters = {json.loads(m.payload)["device"]["identifiers"][0] for m in configs if "wmbus_receiver" not in m.topic}
    assert len(meters) == 7 and len(ha.meters()) == 7
    assert "wmbus_wsm_20261126" in meters  # its full frame (CI 7A) and compact frame (CI 7B): one device
    cfgs = _configs(configs)
    for topic, c in cfgs.items():
        if "wmbus_receiver" in topic:
            assert c["device"]["identifiers"] == ["wmbus_receiver_rx1"]
        else:
            assert c["device"]["via_device"] == "wmbus_receiver_rx1"
        assert c["availability"] == [{"topic": STATUS, "payload_available": "online",
                                      "payload_not_available": "offline"}]
        check_state(c, states[c["state_topic"]])
    # every current total: a class for HA's Energy dashboard and total_increasing (HCA units have no HA class)
    totals = [c for c in cfgs.values()
              if re.search(r"'(volume|energy|energy_backward_flow|hca_units)'", c["value_template"])]
    assert len(totals) == 9
    for c in totals:
        assert c["state_class"] == "total_increasing", c
        if "hca_units" not in c["unique_id"]:
            assert c["device_class"] in ("water", "gas", "volume", "energy")
            assert c["unit_of_measurement"] in ("m³", "kWh")
    by_uid = {c["unique_id"]: c for c in cfgs.values()}
    assert by_uid["wmbus_wsm_20261125_volume"]["device_class"] == "water"
    assert by_uid["wmbus_gsm_55443322_volume"]["device_class"] == "gas"
    assert by_uid["wmbus_hms_31415926_volume"]["device_class"] == "volume"  # heating water, not consumption
    assert by_uid["wmbus_hms_31415926_flow_temperature"]["unit_of_measurement"] == "°C"
    assert by_uid["wmbus_hms_31415926_temperature_difference"]["device_class"] == "temperature_delta"
    assert by_uid["wmbus_hms_31415926_volume_flow"]["state_class"] == "measurement"
    assert by_uid["wmbus_hms_31415926_power"]["state_class"] == "measurement"
    assert by_uid["wmbus_esm_88990011_energy_backward_flow"]["name"] == "Energy (backward flow)"
    hist = by_uid["wmbus_wsm_20261125_volume_s1"]
    assert hist["enabled_by_default"] is False and "state_class" not in hist and hist["device_class"] == "water"
    wsm = by_uid["wmbus_wsm_20261125_volume"]["device"]
    assert wsm["model"] == "water meter v0x12" and wsm["manufacturer"] == "WSM" and wsm["name"] == "WSM 20261125"
    assert by_uid["wmbus_els_12345678_volume"]["device"]["manufacturer"] == "Elster"
    assert json.loads(states["wmbus/20261125"])["readings"]["datetime"] == "2026-11-25T06:00:00+00:00"
    # the compact frame of the cold-water meter brings no new config, and its values replace the full frame's
    assert json.loads(states["wmbus/20261126"])["readings"] == {"volume": 4.25, "volume_flow": 0.009}


READ_VOLUME = "{{ (value_json['readings'] | default({}))['volume'] | default('') }}"


def test_rule_checker_catches_each_broken_rule():
    """The rule list is not vacuous: each deliberately broken config is reported."""
    good = {"name": "Volume", "unique_id": "u1", "state_topic": "wmbus/1", "device_class": "water",
            "value_template": READ_VOLUME, "state_class": "total_increasing",
            "unit_of_measurement": "m³", "device": {"identifiers": ["wmbus_x_1"], "name": "X 1"}}
    assert ha_violations([Message("homeassistant/sensor/wmbus_x_1/volume/config", json.dumps(good))]) == []
    broken = [({"unit_of_measurement": "m3"}, "not accepted"), ({"unit_of_measurement": "kWh"}, "not accepted"),
              ({"state_class": "measurement"}, "not allowed"), ({"device_class": "volume_flow"}, "not on the list"),
              ({"device_class": "temperature", "unit_of_measurement": "C", "state_class": "measurement"},
               "not accepted"), ({"value_template": "{{ value_json.values.volume }}"}, "template"),
              ({"value_template": "{{ value_json.records[0].value }}"}, "template"),
              ({"value_template": "{{ value_json['readings']['volume'] }}"}, "template"),
              ({"device": {"name": "X 1"}}, "device block"), ({"entity_category": "config"}, "diagnostic"),
              ({"name": "X 1 volume"}, "repeats the device name"), ({"icon": "mdi:water"}, "does not know"),
              ({"device_class": "timestamp", "state_class": None, "unit_of_measurement": None}, None)]
    for change, reason in broken:
        cfg = {k: v for k, v in {**good, **change}.items() if v is not None}
        found = ha_violations([Message("homeassistant/sensor/wmbus_x_1/volume/config", json.dumps(cfg))])
        assert (reason is None and not found) or any(reason in f for f in found), (change, found)
    two = [Message("homeassistant/sensor/wmbus_x_1/volume/config", json.dumps(good))] * 2
    assert any("repeated" in f for f in ha_violations(two))
    assert any("topic" in f for f in ha_violations([Message("homeassistant/sensor/wmbus x/volume/config",
                                                            json.dumps(good))]))
    assert any("retained" in f for f in ha_violations([Message("homeassistant/sensor/a/b/config", json.dumps(good),
                                                               retain=False)]))


def test_templates_in_jinja():
    """Why the state field is ``readings`` read by subscripts: ``value_json.values`` is dict.values.
    Our template renders the value, "None" for null, and "" (ignored by HA) when the key is absent."""
    pytest.importorskip("jinja2")
    assert render("{{ value_json.values.volume }}", '{"values": {"volume": 1.5}}') == ""
    assert render(READ_VOLUME, '{"readings": {"volume": 1.5}}') == "1.5"
    assert render(READ_VOLUME, '{"readings": {"volume": null}}') == "None"
    assert render(READ_VOLUME, '{"readings": {"volume_flow": 1}}') == ""
    assert render(READ_VOLUME, '{"telegram": "2e44"}') == ""


# --- records over time -----------------------------------------------------------------------------------


def test_new_record_later_gets_its_entity_and_keys_are_not_positions(recording_telegrams):
    heat = next(t for t in recording_telegrams if t.meter.id == "31415926")
    ha = _ha()
    first = ha.on_telegram(replace(heat, records=heat.records[2:4]))
    assert sorted(_configs(first)) == ["homeassistant/sensor/wmbus_hms_31415926/flow_temperature/config",
                                       "homeassistant/sensor/wmbus_hms_31415926/return_temperature/config"]
    later = ha.on_telegram(replace(heat, records=heat.records[::-1]))  # all, in another order
    assert len(later) == len(heat.records) - 2
    assert ha.on_telegram(heat) == []
    state = json.dumps(ha.state(replace(heat, records=heat.records[::-1])))
    for c in _configs(first + later).values():
        r = next(r for r in heat.records if record_key(r) == _key(c))
        got = render(c["value_template"], state)
        assert Decimal(got) == r.value if r.value is not None else got == "2026-11-25T06:15:00+00:00"
    # a frame without some records keeps their last values, so every template finds its key
    assert ha.state(replace(heat, records=heat.records[:1]))["readings"]["flow_temperature"] == 65.43


def test_units_ha_does_not_accept_are_converted(recording_telegrams):
    gas = next(t for t in recording_telegrams if t.meter.id == "55443322")
    # m3/min, J/h, GJ/h, Mcal, t, kVAR, kVA, m3/s: the values as the stack decodes these VIFs
    apl = "04460a000000" "0433100e0000" "04fb310a000000" "04fb0e0a000000" "04fb190a000000" "04fb150a000000" \
          "04fb350a000000" "044f05000000"
    recs = _records(apl)
    assert [r.unit for r in recs] == ["m3/min", "J/h", "GJ/h", "Mcal", "t", "kVAR", "kVA", "m3/s"]
    ha = _ha()
    t = replace(gas, records=recs)
    configs = ha.on_telegram(t)
    assert ha_violations(configs) == []
    got = {_key(c): (c.get("device_class"), c.get("unit_of_measurement"))
           for c in _configs(configs).values()}
    readings = ha.state(t)["readings"]
    # two records of one identity in a frame (J/h and GJ/h power): both kept, the second as "_2"
    assert got == {"volume_flow": ("volume_flow_rate", "m³/h"), "power": ("power", "W"), "power_2": ("power", "kW"),
                   "energy": ("energy", "MJ"), "mass": ("weight", "kg"), "reactive_power": ("reactive_power", "var"),
                   "apparent_power": ("apparent_power", "VA"), "volume_flow_2": ("volume_flow_rate", "m³/h")}
    assert Decimal(str(readings["volume_flow"])) == 60 * recs[0].value  # 1.0 m3/min
    assert Decimal(str(readings["power"])) == 1000  # 3.6e6 J/h
    assert Decimal(str(readings["power_2"])) == Decimal("2777.77778")  # 10 GJ/h in kW
    assert Decimal(str(readings["energy"])) == Decimal("418.68")  # 100 Mcal
    assert readings["mass"] == 10_000_000 and readings["reactive_power"] == 100 and readings["apparent_power"] == 100
    assert Decimal(str(readings["volume_flow_2"])) == 3600 * recs[7].value
    names = [c["name"] for c in _configs(configs).values()]
    assert len(set(names)) == len(names)
    # a modifier that makes the value another quantity drops the class and the unit, and converts nothing
    odd = replace(recs[0], modifiers=("duration of last lower limit exceed (h)",))
    c = _configs(ha.on_telegram(replace(gas, records=(odd,))))
    (cfg,) = c.values()
    assert cfg["name"] == "Volume flow (duration of last lower limit exceed (h))"
    assert not {"device_class", "state_class", "unit_of_measurement"} & set(cfg)
    assert Decimal(str(ha.state(replace(gas, records=(odd,)))["readings"][_key(cfg)])) == odd.value


def test_nulls_dates_and_secrets(recording_telegrams):
    water = next(t for t in recording_telegrams if t.meter.id == "20261125")
    ha = _ha()
    configs = _configs(ha.on_telegram(water))
    # the meter's next frame: no value for the volume (not BCD), an invalid clock, a key and a password
    extra = _records("07fd191111111111111111" "02fd160102")
    broken = [replace(r, value=None, text="ffffffff") if record_key(r) == "volume" else
              replace(r, text="2027-15-31T23:59") if r.quantity == "datetime" else r for r in water.records]
    t2 = replace(water, records=(*broken, *extra))
    assert ha.on_telegram(t2) == []  # nothing new to announce: the secrets are never announced
    state = json.dumps(ha.state(t2))
    assert "1111111111" not in state and "1229782938247303441" not in state and "password" not in state
    readings = json.loads(state)["readings"]
    assert readings["volume"] is None and readings["datetime"] is None and readings["volume_s1"] == 120.001
    for c in configs.values():
        check_state(c, state)
    vol = configs["homeassistant/sensor/wmbus_wsm_20261125/volume/config"]
    assert render(vol["value_template"], state) == "None"  # HA: "unknown", not an error
    tz = _ha(meter_tz=__import__("zoneinfo").ZoneInfo("Europe/Berlin"))
    tz.on_telegram(water)
    assert tz.state(water)["readings"]["datetime"] == "2026-11-25T06:00:00+01:00"
    no_history = _ha(history=False)
    keys = {_key(c) for c in _configs(no_history.on_telegram(water)).values()}
    assert keys == {"volume", "datetime", "volume_flow", "error_flags"}


def test_forget_and_due_forgets(recording_telegrams):
    ha = _ha(forget_after_s=60, expire_after_s=900)
    announced: dict[str, list[str]] = {}
    for i, t in enumerate(recording_telegrams):
        announced.setdefault(t.meter.id, []).extend(m.topic for m in ha.on_telegram(t, heard_s=100.0 + i))
    assert all(json.loads(m.payload)["expire_after"] == 900 for m in ha.reannounce())
    assert ha.due_forgets(159.0) == []
    gone = ha.due_forgets(161.5)  # heard at 100 and 101: the water and heat meters
    assert {m.topic for m in gone} == set(announced["20261125"]) | set(announced["31415926"])
    assert all(m.payload == "" and m.retain for m in gone)
    assert len(ha.meters()) == 5 and ha.due_forgets(161.5) == []
    removed = ha.forget("20261126")
    assert {m.topic for m in removed} == set(announced["20261126"]) and ha.forget("20261126") == []
    assert len(ha.reannounce()) == sum(len(v) for k, v in announced.items() if k not in ("20261125", "31415926",
                                                                                         "20261126"))
    heat = next(t for t in recording_telegrams if t.meter.id == "31415926")
    assert {m.topic for m in ha.on_telegram(heat, heard_s=200.0)} == set(announced["31415926"])  # back again
    assert _ha().due_forgets(1e9) == []  # no --forget-after: nothing is forgotten


def test_receiver_device_and_bad_options():
    ha = _ha(sw_version="0.1.0")
    first = ha.receiver(ReceiverStats(frames_per_minute=12.5, dropped_samples=3, freq_error_ppm=None,
                                      last_frame_ns=1_764_619_200_123_456_789))
    configs, state = first[:-1], first[-1]
    assert len(configs) == 4 and ha_violations(configs) == []
    assert state.topic == "wmbus/receiver/rx1" and not state.retain
    for c in _configs(configs).values():
        assert c["device"]["identifiers"] == ["wmbus_receiver_rx1"] and c["entity_category"] == "diagnostic"
        check_state(c, state.payload)
    assert json.loads(state.payload) == {"frames_per_minute": 12.5, "dropped_samples": 3, "freq_error_ppm": None,
                                         "last_frame": "2025-12-01T20:00:00.123456+00:00"}
    assert [m.topic for m in ha.receiver(ReceiverStats(frames_per_minute=1, dropped_samples=3))] == \
        ["wmbus/receiver/rx1"]
    assert len(ha.reannounce()) == 4 and ha.birth_topic == "homeassistant/status"
    for bad in ({"receiver_id": "rx/1"}, {"prefix": "wmbus/#"}, {"availability_topic": "a/+/b"},
                {"forget_after_s": 0}, {"expire_after_s": -5}):
        with pytest.raises(ValueError):
            HaDiscovery(**{"prefix": PREFIX, "receiver_id": "rx1", **bad})


# --- a real broker ---------------------------------------------------------------------------------------


@pytest.fixture
def mosquitto(tmp_path):
    exe = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin")
    if exe is None:
        pytest.skip("mosquitto is not installed (make test installs it)")
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
    proc = subprocess.Popen([exe, "-c", str(conf)], stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"mosquitto did not start on {port}") from None
                time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _client(port: int):
    paho = pytest.importorskip("paho.mqtt.client")
    client = paho.Client(paho.CallbackAPIVersion.VERSION2)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def _publish(port: int, messages: list[Message]) -> None:
    client = _client(port)
    try:
        for m in messages:
            client.publish(m.topic, m.payload, qos=1, retain=m.retain).wait_for_publish(timeout=10)
    finally:
        client.loop_stop()
        client.disconnect()


def _retained(port: int, topic: str, expect: int) -> dict[str, dict]:
    """What a new subscriber (HA starting) gets from the broker: the retained configs."""
    got: dict[str, dict] = {}
    client = _client(port)
    client.on_message = lambda c, u, msg: got.__setitem__(msg.topic, json.loads(msg.payload)) if msg.retain else None
    try:
        client.subscribe(topic, qos=1)
        deadline = time.monotonic() + 20
        while len(got) < expect and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # anything beyond what was expected would show now
    finally:
        client.loop_stop()
        client.disconnect()
    return got


def test_configs_retained_by_a_real_broker_and_forget_removes_them(mosquitto, recording_telegrams):
    ha = _ha()
    messages: list[Message] = []
    for i, t in enumerate(recording_telegrams):
        messages += ha.on_telegram(t, heard_s=float(i))
    messages += ha.receiver(ReceiverStats(frames_per_minute=240.0, dropped_samples=0))
    configs = [m for m in messages if m.topic.endswith("/config")]
    _publish(mosquitto, messages)
    got = _retained(mosquitto, "homeassistant/#", len(configs))
    assert got == {m.topic: json.loads(m.payload) for m in configs}
    assert ha_violations([Message(t, json.dumps(c)) for t, c in got.items()]) == []
    gone = ha.forget("31415926")
    assert len(gone) == 8
    _publish(mosquitto, gone)
    left = _retained(mosquitto, "homeassistant/#", len(configs) - len(gone))
    assert set(left) == {m.topic for m in configs} - {m.topic for m in gone}
    assert not any("31415926" in t for t in left)


def test_every_public_vector_gives_payloads_that_follow_ha_rules(wireless_vectors):
    """358 telegrams of real meters (many makes, vendors' records, history, dates, odd units) through one
    discovery instance: every config follows HA's rules and every template renders a state HA accepts."""
    ha = _ha()
    configs: list[Message] = []
    states: dict[str, str] = {}
    last_on_topic: dict[str, str] = {}
    formats = FormatCache()
    for row in wireless_vectors:
        key = row.get("key")
        keys = KeyStore(default=bytes.fromhex(key)) if key and len(key) == 32 else None
        t = decode(bytes.fromhex(row["canonical_hex"][: len(row["canonical_hex"]) // 2 * 2]), keys=keys,
                   frame_format=None, formats=formats)
        configs += ha.on_telegram(t)
        node = f"wmbus_{t.meter.manufacturer_code.lower()}_{t.meter.id}"
        states[node] = json.dumps(ha.state(t))
        last_on_topic[f"{PREFIX}/{t.meter.id}"] = node
    print(f"\n{len(configs)} configs for {len(ha.meters())} meters")
    assert len(configs) > 500 and len(ha.meters()) > 100
    assert ha_violations(configs) == []
    classes = {json.loads(m.payload).get("device_class") for m in configs}
    assert {"water", "gas", "energy", "volume_flow_rate", "temperature", "timestamp", "date"} <= classes
    shared = 0
    for c in _configs(configs).values():
        node = c["device"]["identifiers"][0]
        check_state(c, states[node])
        other = last_on_topic[c["state_topic"]]  # the sample data reuse ids across makes: one topic, two meters
        if other != node and _key(c) not in json.loads(states[other])["readings"]:
            shared += 1
            assert render(c["value_template"], states[other]) == ""  # HA ignores it, keeps its value
    assert shared > 0


_LENGTHS = {0x1: 1, 0x2: 2, 0x3: 3, 0x4: 4, 0x5: 4, 0x6: 6, 0x7: 8, 0x9: 1, 0xA: 2, 0xB: 3, 0xC: 4, 0xE: 6}


@st.composite
def _record_bytes(draw) -> bytes:
    """One well-formed record: any data field, function, storage, tariff / subunit (one DIFE), any primary
    or FB / FD VIF, perhaps one VIFE (combinable or not), random data."""
    field = draw(st.sampled_from(sorted(_LENGTHS)))
    dif = field | draw(st.integers(0, 3)) << 4 | draw(st.sampled_from([0, 0x40]))
    dife = draw(st.one_of(st.none(), st.integers(0, 0x7F)))
    head = bytes([dif | 0x80, dife]) if dife is not None else bytes([dif])
    table = draw(st.sampled_from([None, 0xFB, 0xFD]))
    vif = draw(st.integers(0, 0x7B)) if table is None else draw(st.integers(0, 0x7F))
    vife = draw(st.one_of(st.none(), st.integers(0, 0x7F)))
    vib = (bytes([table]) if table else b"") + bytes([vif | (0x80 if vife is not None else 0)])
    vib += bytes([vife]) if vife is not None else b""
    return head + vib + draw(st.binary(min_size=_LENGTHS[field], max_size=_LENGTHS[field]))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(recs=st.lists(_record_bytes(), max_size=12), device_type=st.integers(0, 0x3F))
def test_any_records_give_payloads_that_follow_ha_rules(recording_telegrams, recs, device_type):
    """Whatever records a meter sends, the configs follow HA's rules and every template renders a state HA
    accepts (the meter's device type chosen at random too: water, gas, heat ...)."""
    gas = next(t for t in recording_telegrams if t.meter.id == "55443322")
    address = replace(gas.meter, device_type=device_type)
    tpl = replace(gas.tpl, address=address)
    t = replace(gas, records=decode_records(b"".join(recs)).records,
                layers=tuple(tpl if layer is gas.tpl else layer for layer in gas.layers))
    assert t.meter.device_type == device_type
    ha = _ha()
    configs = ha.on_telegram(t)
    state = json.dumps(ha.state(t))
    assert ha_violations(configs) == []
    for c in _configs(configs).values():
        check_state(c, state)
