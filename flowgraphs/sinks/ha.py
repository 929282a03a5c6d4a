"""Home Assistant MQTT discovery, as messages: no broker, no clock, no I/O (the ``mqtt`` sink and the hub
publish what this module returns).

One HA device per meter (``wmbus_<manufacturer>_<id>``: a full and a compact frame of one meter are one
device), one per receiver (``wmbus_receiver_<receiver>``, the meters' ``via_device``). A meter's entities are
built from the records it actually sends: each record has a stable identity (quantity, function,
modifiers, tariff, subunit, storage) turned into a slug key (:func:`record_key`), so a sensor never picks
a value by record position, and a record first sent later gets its entity then. The meter's state JSON
on ``PREFIX/<meter id>`` carries ``{"readings": {key: value}}`` (merge :meth:`HaDiscovery.state` into
it); each sensor's template reads ``value_json['readings']['<key>']``, and renders "" (which HA's MQTT
sensor ignores) when a message on that topic lacks the key: a frame that did not decode, or another
meter with the same 8-digit id.

Why ``readings`` with subscripts, and not ``value_json.values.<key>``: Jinja2 (HA's template engine)
resolves ``a.b`` by attribute first, and every dict has a ``values`` method, so
``value_json.values.volume`` renders as nothing.

HA's rules applied (from its sensor documentation and ``homeassistant/components/sensor/const.py``):

- ``device_class`` with a unit HA accepts for that class, converted when ours is not accepted:
  m3 -> m³, ft3 -> ft³, m3/min and m3/s -> m³/h (x60, x3600), J/h -> W (/3600), GJ/h -> kW
  (x1e6/3600), Mcal -> MJ (x4.1868, the IT calorie), t -> kg, kVAR -> var, kVA -> VA (x1000);
  kWh, MWh, MJ, GJ, W, kW, MW, °C, °F, K, bar, V, A, Hz and % are taken as they are. Volumes are
  ``water`` for water meters (device types water, warm / hot / cold water, irrigation, dual register,
  waste water, water data logger), ``gas`` for gas meters and gas converters, ``volume`` otherwise
  (the circulating water of a heat meter is not water consumption). A temperature difference (K) is
  ``temperature_delta``, never ``temperature`` (HA would convert 24 K to -249 °C).
- ``state_class``: ``total_increasing`` for current meter totals (volume, energy, mass, HCA units,
  on / operating time; a decrease is a new cycle or a new meter), ``total`` for a net register
  (``delta import-export``), ``measurement`` for flows, powers, temperatures, pressures, voltages,
  currents, humidity; none for limits, maxima / minima, dates and settings.
- History values (storage > 0, and a vendor's "previous billing period") are announced *disabled by
  default*, without a state class (a value at the last billing date is a snapshot: feeding it to
  long-term statistics would count consumption twice); the user can enable them. Pass
  ``history=False`` to leave them out.
- Dates: ``date`` (ISO date) and ``timestamp`` (ISO date-time with the zone ``meter_tz``, UTC unless
  told: meters send local time without a zone); "invalid" dates are null.
- A null value (no value, not BCD, NaN) is JSON ``null``; the template renders ``None``, which HA's
  MQTT sensor turns into "unknown" (it never breaks a numeric sensor).
- A value not sent in this frame (a compact frame with fewer records) keeps the meter's last value in
  ``readings``, so each template always finds its key.
- Names are unique within a device and never repeat the device name (HA prefixes it); ``unique_id`` is
  ``<node>_<key>``; topics are ``<discovery_prefix>/sensor/<node>/<key>/config`` with ``[a-z0-9_-]``.
- Availability: the receiver's availability topic (``online`` / ``offline``, the MQTT last will) when
  given, and ``expire_after`` when ``expire_after_s`` is set. Meters not heard for ``forget_after_s``
  are removed (empty retained configs) by :meth:`HaDiscovery.due_forgets`.
- After HA restarts it publishes ``online`` on ``<discovery_prefix>/status`` (:attr:`birth_topic`):
  publish :meth:`HaDiscovery.reannounce` then (and after a broker reconnect without persistence).

Keys, passwords and access codes sent as records are never announced nor copied to ``readings``.
Not thread-safe: one instance per publishing thread.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import Decimal, localcontext
from typing import TYPE_CHECKING

from mbus.dll import device_type_name
from mbus.records import json_number

if TYPE_CHECKING:
    from mbus.dll import Address
    from mbus.records import DataRecord
    from mbus.telegram import Telegram

__all__ = ["Entity", "HaDiscovery", "Message", "ReceiverStats", "entity_for", "record_key"]


@dataclass(frozen=True, slots=True)
class Message:
    """One MQTT message to publish. ``payload`` "" with ``retain`` removes a retained discovery config."""

    topic: str
    payload: str
    retain: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class ReceiverStats:
    """What the receiver device shows (all diagnostics)."""

    frames_per_minute: float
    dropped_samples: int  # since start
    freq_error_ppm: float | None = None  # tuner error estimated from the frames
    last_frame_ns: int | None = None  # UTC wall clock of the last frame (ns since the epoch)


@dataclass(frozen=True, slots=True, kw_only=True)
class Entity:
    """One HA sensor of a meter: what its discovery config says."""

    key: str  # slug of the record identity, the key in ``readings``
    name: str
    kind: str  # number | date | timestamp | text
    device_class: str | None = None
    state_class: str | None = None
    unit: str | None = None
    diagnostic: bool = False
    enabled: bool = True
    precision: int | None = None  # suggested_display_precision


# --- units and classes --------------------------------------------------------------------------------

# our unit -> (HA unit, factor numerator, factor denominator, family)
_UNITS: dict[str, tuple[str, int, int, str]] = {
    "m3": ("m³", 1, 1, "volume"), "ft3": ("ft³", 1, 1, "volume"),
    "m3/h": ("m³/h", 1, 1, "flow"), "m3/min": ("m³/h", 60, 1, "flow"), "m3/s": ("m³/h", 3600, 1, "flow"),
    "kWh": ("kWh", 1, 1, "energy"), "MWh": ("MWh", 1, 1, "energy"), "MJ": ("MJ", 1, 1, "energy"),
    "GJ": ("GJ", 1, 1, "energy"), "Mcal": ("MJ", 41868, 10000, "energy"),
    "W": ("W", 1, 1, "power"), "kW": ("kW", 1, 1, "power"), "MW": ("MW", 1, 1, "power"),
    "J/h": ("W", 1, 3600, "power"), "GJ/h": ("kW", 1_000_000, 3600, "power"),
    "°C": ("°C", 1, 1, "temperature"), "°F": ("°F", 1, 1, "temperature"), "K": ("K", 1, 1, "temperature"),
    "bar": ("bar", 1, 1, "pressure"), "V": ("V", 1, 1, "voltage"), "A": ("A", 1, 1, "current"),
    "Hz": ("Hz", 1, 1, "frequency"), "kg": ("kg", 1, 1, "mass"), "t": ("kg", 1000, 1, "mass"),
    "kg/h": ("kg/h", 1, 1, "mass_flow"), "kVAR": ("var", 1000, 1, "reactive_power"),
    "kVA": ("VA", 1000, 1, "apparent_power"), "kVARh": ("kvarh", 1, 1, "reactive_energy"),
    "kVAh": ("kVAh", 1, 1, "apparent_energy"), "%": ("%", 1, 1, "percent"), "dBm": ("dBm", 1, 1, "signal"),
    "s": ("s", 1, 1, "duration"), "min": ("min", 1, 1, "duration"), "h": ("h", 1, 1, "duration"),
    "d": ("d", 1, 1, "duration"),
}
_CLASS_OF_FAMILY = {"energy": "energy", "power": "power", "flow": "volume_flow_rate", "pressure": "pressure",
                    "voltage": "voltage", "current": "current", "frequency": "frequency", "mass": "weight",
                    "reactive_power": "reactive_power", "apparent_power": "apparent_power",
                    "signal": "signal_strength", "duration": "duration"}
_TOTAL_FAMILIES = {"volume", "energy", "mass", "reactive_energy", "apparent_energy"}
_MEASURED_FAMILIES = {"flow", "power", "temperature", "pressure", "voltage", "current", "frequency", "mass_flow",
                      "reactive_power", "apparent_power", "percent", "signal"}
_TOTAL_QUANTITIES = {"hca_units", "on_time", "operating_time"}
_WATER_TYPES = {0x06, 0x07, 0x10, 0x11, 0x15, 0x16, 0x17, 0x28}
_GAS_TYPES = {0x03, 0x12, 0x13}
_MEDIUM_TYPES = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x10, 0x15, 0x16, 0x17,
                 0x28}
# the meter's main readings; every other quantity is a diagnostic entity
_PRIMARY = {"energy", "volume", "mass", "power", "volume_flow", "mass_flow", "flow_temperature",
            "return_temperature", "temperature_difference", "external_temperature", "pressure", "hca_units",
            "voltage", "current", "frequency", "reactive_energy", "apparent_energy", "reactive_power",
            "apparent_power", "relative_humidity", "moisture", "credit", "debit", "dimensionless", "temperature"}
_DATE_QUANTITIES = {"date", "datetime", "battery_change_datetime", "tariff_start"}
# never announced: secrets, containers, raw manufacturer bytes, records without meaning
_SKIP = {"security_key", "password", "access_code_user", "access_code_operator", "access_code_system_operator",
         "access_code_developer", "wmbus_container", "manufacturer_container", "manufacturer_specific",
         "manufacturer_data", "any_vif", "reserved", "unknown"}
# modifiers that say where or how a total is counted, not what it is: the class and state class stay
_NEUTRAL = {"forward flow", "backward flow", "uncorrected", "at base conditions", "accumulation of absolute value",
            "higher resolution register", "secondary sensor", "standard conform data content", "non-metric units",
            "alternative non-metric units", "type C", "type D", "partner to meter", "meter to partner",
            "at phase L1", "at phase L2", "at phase L3", "at neutral", "between L1-L2", "between L2-L3",
            "between L3-L1", "quadrant Q1", "quadrant Q2", "quadrant Q3", "quadrant Q4", "end date",
            "current billing period", "total = previous + current"}
_HISTORY = {"previous billing period"}
# modifiers that make the value another quantity (a duration, a date, a count, a ratio): no class, no unit
_REINTERPRET = ("duration of", "date of", "number of", "start date", "increment per", "multiplied by",
                "relative deviation", "OBIS declaration", "per litre", "per m3", "per kg", "per K", "per kWh",
                "per GJ", "per kW", "per V", "per A", "per revolution")
_NET = {"delta import-export"}
_FUNCTION_NAMES = {"maximum": "maximum", "minimum": "minimum", "error": "value during error"}
_FUNCTION_KEYS = {"maximum": "max", "minimum": "min", "error": "err"}
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATETIME_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?")
_TIME_RE = re.compile(r"\d{2}:\d{2}:\d{2}")
_SLUG_RE = re.compile(r"[^a-z0-9]+")
_NODE_RE = re.compile(r"[A-Za-z0-9_-]+")
_MAX_STATE_CHARS = 255  # HA rejects longer states

# Manufacturer codes (FLAG association, EN 13757-7 M-field) of meters often heard on wM-Bus
MANUFACTURERS = {
    "ABB": "ABB", "ACE": "Actaris (electricity)", "ACG": "Actaris (gas)", "ACW": "Actaris (water and heat)",
    "AMT": "Aquametro", "APA": "Apator", "BMT": "B METERS", "DFS": "Danfoss", "DME": "Diehl Metering",
    "DZG": "Deutsche Zählergesellschaft", "EFE": "Engelmann Sensor", "ELS": "Elster", "EMH": "EMH metering",
    "EMU": "EMU Elektronik", "ESM": "Starion Elektrik ve Elektronik", "GWF": "GWF MessSysteme",
    "HYD": "Hydrometer", "IST": "ista", "ITR": "Itron", "KAM": "Kamstrup", "LGB": "Landis+Gyr (UK)",
    "LGD": "Landis+Gyr (Germany)", "LGZ": "Landis+Gyr", "LSE": "Landis & Staefa electronic",
    "LUG": "Landis & Staefa", "MAD": "Maddalena", "QDS": "Qundis", "RAS": "Hydrometer", "SAP": "Sappel",
    "SEN": "Sensus", "SIE": "Siemens", "SON": "Sontex", "SPX": "Spanner-Pollux", "TCH": "Techem",
    "VES": "ista", "ZRI": "Zenner",
}


def _slug(text: str) -> str:
    return _SLUG_RE.sub("_", text.lower()).strip("_")


def _semantic_modifiers(record: DataRecord) -> list[str]:
    """Modifiers that belong to the identity (a vendor decoder's tag does not)."""
    return [m for m in record.modifiers if not m.startswith("vendor ")]


def record_key(record: DataRecord) -> str:
    """The slug of a record's identity: quantity, function, modifiers, tariff, subunit, storage.
    ``volume``, ``volume_s1``, ``energy_backward_flow``, ``volume_flow_max_t2``."""
    parts = [record.quantity or "value"]
    if record.function in _FUNCTION_KEYS:
        parts.append(_FUNCTION_KEYS[record.function])
    parts += _semantic_modifiers(record)
    if record.tariff:
        parts.append(f"t{record.tariff}")
    if record.subunit:
        parts.append(f"u{record.subunit}")
    if record.storage:
        parts.append(f"s{record.storage}")
    return _slug("_".join(parts)) or "value"


_NAMES = {"hca_units": "HCA units", "datetime": "date and time", "rf_level": "RF level"}


def _name(record: DataRecord) -> str:
    base = _NAMES.get(record.quantity) or (record.quantity or "value").replace("_", " ")
    if record.function in _FUNCTION_NAMES:
        base = f"{_FUNCTION_NAMES[record.function]} {base}"
    qualifiers = _semantic_modifiers(record)
    if record.tariff:
        qualifiers.append(f"tariff {record.tariff}")
    if record.subunit:
        qualifiers.append(f"subunit {record.subunit}")
    if record.storage:
        qualifiers.append(f"storage {record.storage}")
    name = base[:1].upper() + base[1:]
    return f"{name} ({', '.join(qualifiers)})" if qualifiers else name


def _kind(record: DataRecord) -> str | None:
    """number, date, timestamp, text, or None for a record not to announce."""
    if record.quantity in _SKIP or any("compact profile" in m for m in record.modifiers):
        return None
    text = record.text
    first = "" if text is None else text.split(" ")[0]  # "2026-11-25T06:00 invalid"
    if _TIME_RE.fullmatch(first):  # a time of day (type J) is no point in time: shown as text
        return "text"
    if _DATETIME_RE.fullmatch(first):
        return "timestamp"
    if _DATE_RE.fullmatch(first):
        return "date"
    if record.quantity in _DATE_QUANTITIES:  # "invalid", or bytes that are no date
        return "date" if record.quantity == "date" else "timestamp"
    if record.value is not None or record.unit in _UNITS:
        return "number"
    if text is not None:
        return "text"
    return None


def entity_for(record: DataRecord, *, key: str, device_type: int) -> Entity | None:
    """The HA sensor for a record of a meter of ``device_type`` (None: not announced)."""
    kind = _kind(record)
    if kind is None:
        return None
    name = _name(record)
    history = bool(record.storage) or any(m in _HISTORY for m in record.modifiers)
    diagnostic = record.quantity not in _PRIMARY
    if kind in ("date", "timestamp"):
        return Entity(key=key, name=name, kind=kind, device_class=kind, diagnostic=True, enabled=not history)
    if kind == "text":
        return Entity(key=key, name=name, kind=kind, diagnostic=diagnostic, enabled=not history)
    mods = set(_semantic_modifiers(record))
    unit_row = _UNITS.get(record.unit)
    unit = unit_row[0] if unit_row else (record.unit or None)
    family = unit_row[3] if unit_row else None
    if any(m.startswith(_REINTERPRET) for m in mods):
        unit_row, unit, family = None, None, None
    device_class = _device_class(record.quantity, family, device_type)
    plain = not history and record.function == "instantaneous" and mods <= _NEUTRAL | _NET
    state_class = None
    if plain and (family in _TOTAL_FAMILIES or record.quantity in _TOTAL_QUANTITIES):
        state_class = "total" if mods & _NET else "total_increasing"
    elif plain and family in _MEASURED_FAMILIES:
        state_class = "measurement"
    precision = None
    if record.value is not None:
        exponent = (_convert(record.value, record.unit) if unit_row else record.value).as_tuple().exponent
        precision = max(0, -exponent) if isinstance(exponent, int) else None
    return Entity(key=key, name=name, kind=kind, device_class=device_class, state_class=state_class, unit=unit,
                  diagnostic=diagnostic, enabled=not history, precision=precision)


def _device_class(quantity: str, family: str | None, device_type: int) -> str | None:
    if family == "volume":
        if device_type in _WATER_TYPES:
            return "water"
        return "gas" if device_type in _GAS_TYPES else "volume"
    if family == "temperature":
        return "temperature_delta" if quantity == "temperature_difference" else "temperature"
    if family == "percent":
        return {"relative_humidity": "humidity", "moisture": "moisture"}.get(quantity)
    return _CLASS_OF_FAMILY.get(family or "")


def _convert(value: Decimal, unit: str) -> Decimal:
    row = _UNITS.get(unit)
    if row is None or (row[1] == 1 and row[2] == 1):
        return value
    num, den = row[1], row[2]
    out = value * num
    if den == 1:
        return out
    step = value.as_tuple().exponent
    with localcontext(prec=80):  # room for any 8-byte register at any VIF exponent
        return (out / den).quantize(Decimal(1).scaleb((step if isinstance(step, int) else 0) - 5))


def _reading(record: DataRecord, entity: Entity, tz: tzinfo):
    """The JSON value HA gets for a record (None when the meter gave no usable value)."""
    if entity.kind == "number":
        if record.value is None:
            return None
        row = _UNITS.get(record.unit)
        converted = row is not None and entity.unit == row[0]  # else the modifiers made it another quantity
        return json_number(_convert(record.value, record.unit) if converted else record.value)
    text = record.text
    if entity.kind == "text":
        return None if text is None else text[:_MAX_STATE_CHARS]
    if text is None or "invalid" in text:
        return None
    try:
        if entity.kind == "date":
            return date.fromisoformat(text).isoformat() if _DATE_RE.fullmatch(text) else None
        if _DATETIME_RE.fullmatch(text):
            return datetime.fromisoformat(text).replace(tzinfo=tz).isoformat()
    except ValueError:  # month 13, day 0: the meter's clock is not set
        return None
    return None


def _model(address: Address) -> str:
    kind = device_type_name(address.device_type)
    if address.device_type in _MEDIUM_TYPES:
        kind = f"{kind} meter"
    return f"{kind} v0x{address.version:02x}"


# --- the discovery state ----------------------------------------------------------------------------


@dataclass(slots=True)
class _Meter:
    node: str
    meter_id: str
    device: dict
    state_topic: str
    entities: dict[str, Entity] = field(default_factory=dict)
    readings: dict[str, object] = field(default_factory=dict)
    heard_s: float | None = None


_RECEIVER_ENTITIES = (
    Entity(key="frames_per_minute", name="Frames per minute", kind="number", state_class="measurement",
           unit="frames/min", diagnostic=True, precision=1),
    Entity(key="dropped_samples", name="Dropped samples", kind="number", state_class="total_increasing",
           diagnostic=True, precision=0),
    Entity(key="freq_error_ppm", name="Frequency error", kind="number", state_class="measurement", unit="ppm",
           diagnostic=True, precision=1),
    Entity(key="last_frame", name="Last frame", kind="timestamp", device_class="timestamp", diagnostic=True),
)


class HaDiscovery:
    """Discovery configs and state fields for HA, as :class:`Message` lists.

    ``prefix``: the MQTT prefix of the state topics (``PREFIX/<meter id>``, ``PREFIX/receiver/<receiver>``).
    ``receiver_id``: ``[A-Za-z0-9_-]+``, names the receiver device. ``availability_topic``: where the
    publisher keeps ``online`` / ``offline`` (its last will), e.g. ``PREFIX/status/<receiver>``.
    ``expire_after_s``: HA marks a meter's sensors unavailable after that long without a message.
    ``forget_after_s``: :meth:`due_forgets` removes meters not heard for that long (``heard_s`` given to
    :meth:`on_telegram`, any clock, the same one as ``now_s``). ``meter_tz``: the zone of the meters'
    clocks. ``history``: announce storage > 0 values (disabled by default in HA) or not.
    """

    def __init__(self, *, prefix: str, receiver_id: str, discovery_prefix: str = "homeassistant",
                 availability_topic: str | None = None, expire_after_s: int | None = None,
                 forget_after_s: float | None = None, meter_tz: tzinfo = UTC, history: bool = True,
                 sw_version: str | None = None):
        if not _NODE_RE.fullmatch(receiver_id):
            raise ValueError(f"receiver id {receiver_id!r}: use letters, digits, '_' and '-'")
        for what, topic in (("prefix", prefix), ("discovery prefix", discovery_prefix),
                            ("availability topic", availability_topic or "x")):
            if not topic or any(c in topic for c in "+#\0") or topic.startswith("/") or topic.endswith("/"):
                raise ValueError(f"{what} {topic!r}: an MQTT topic without wildcards or outer '/'")
        if expire_after_s is not None and expire_after_s <= 0:
            raise ValueError(f"expire_after_s {expire_after_s}: give a positive number of seconds")
        if forget_after_s is not None and forget_after_s <= 0:
            raise ValueError(f"forget_after_s {forget_after_s}: give a positive number of seconds")
        self.prefix = prefix
        self.receiver_id = receiver_id
        self.discovery_prefix = discovery_prefix
        self.availability_topic = availability_topic
        self.expire_after_s = expire_after_s
        self.forget_after_s = forget_after_s
        self.meter_tz = meter_tz
        self.history = history
        self.receiver_node = f"wmbus_receiver_{receiver_id}"  # never a meter node: not 3 letters
        self.receiver_state_topic = f"{prefix}/receiver/{receiver_id}"
        self._origin = {"name": "wmbus-sdr", **({"sw_version": sw_version} if sw_version else {})}
        self._receiver_device = {"identifiers": [self.receiver_node], "name": f"wmbus-sdr {receiver_id}",
                                 "manufacturer": "wmbus-sdr", "model": "wM-Bus SDR receiver",
                                 **({"sw_version": sw_version} if sw_version else {})}
        self._receiver_announced = False
        self._meters: dict[str, _Meter] = {}

    @property
    def birth_topic(self) -> str:
        """HA publishes ``online`` here when it starts: answer with :meth:`reannounce`."""
        return f"{self.discovery_prefix}/status"

    def meters(self) -> list[str]:
        """The device nodes of the meters known now (``wmbus_<manufacturer>_<id>``)."""
        return list(self._meters)

    # -- meters --

    def on_telegram(self, telegram: Telegram, *, heard_s: float | None = None) -> list[Message]:
        """Configs for a new meter's device and entities, and for any entity not announced before."""
        meter, new = self._observe(telegram, heard_s)
        return [self._config(meter, meter.entities[key]) for key in new]

    def state(self, telegram: Telegram) -> dict:
        """The fields to merge into the meter's state JSON: ``{"readings": {key: value}}``, every
        announced key present (this frame's value, else the last one heard)."""
        meter, _ = self._observe(telegram, None)
        return {"readings": dict(meter.readings)}

    def forget(self, meter_id: str) -> list[Message]:
        """Empty retained configs removing the meter's entities (and so its device) from HA.
        ``meter_id``: the 8-digit id (every manufacturer) or the device node."""
        gone = [n for n, m in self._meters.items() if meter_id in (n, m.meter_id)]
        out: list[Message] = []
        for node in gone:
            meter = self._meters.pop(node)
            out += [Message(self._topic(node, key), "") for key in meter.entities]
        return out

    def due_forgets(self, now_s: float) -> list[Message]:
        """:meth:`forget` for every meter not heard for ``forget_after_s`` (none without that option)."""
        if self.forget_after_s is None:
            return []
        out: list[Message] = []
        for node in [n for n, m in self._meters.items()
                     if m.heard_s is not None and now_s - m.heard_s >= self.forget_after_s]:
            out += self.forget(node)
        return out

    def reannounce(self) -> list[Message]:
        """Every config again (HA restarted, or the broker lost its retained messages)."""
        out = [self._receiver_config(e) for e in _RECEIVER_ENTITIES] if self._receiver_announced else []
        for meter in self._meters.values():
            out += [self._config(meter, e) for e in meter.entities.values()]
        return out

    # -- the receiver --

    def receiver(self, stats: ReceiverStats) -> list[Message]:
        """The receiver device's configs (the first time) and its state (not retained)."""
        out = [] if self._receiver_announced else [self._receiver_config(e) for e in _RECEIVER_ENTITIES]
        self._receiver_announced = True
        last = None
        if stats.last_frame_ns is not None:
            s, ns = divmod(stats.last_frame_ns, 1_000_000_000)
            last = (datetime.fromtimestamp(s, UTC) + timedelta(microseconds=ns // 1000)).isoformat()
        state = {"frames_per_minute": round(stats.frames_per_minute, 3), "dropped_samples": stats.dropped_samples,
                 "freq_error_ppm": None if stats.freq_error_ppm is None else round(stats.freq_error_ppm, 3),
                 "last_frame": last}
        out.append(Message(self.receiver_state_topic, json.dumps(state), retain=False))
        return out

    # -- internals --

    def _observe(self, telegram: Telegram, heard_s: float | None) -> tuple[_Meter, list[str]]:
        address = telegram.meter
        code = address.manufacturer_code
        mfct = code.lower() if code.isalpha() else f"m{address.manufacturer:04x}"
        node = f"wmbus_{mfct}_{_slug(address.id) or 'id'}"
        meter = self._meters.get(node)
        if meter is None:
            device = {"identifiers": [node], "name": f"{code} {address.id}",
                      "manufacturer": MANUFACTURERS.get(code, code), "model": _model(address),
                      "serial_number": address.id, "via_device": self.receiver_node}
            meter = _Meter(node=node, meter_id=address.id, device=device, state_topic=f"{self.prefix}/{address.id}")
            self._meters[node] = meter
        if heard_s is not None:
            meter.heard_s = heard_s
        new: list[str] = []
        seen: dict[str, int] = {}
        for record in telegram.records:
            key = record_key(record)
            seen[key] = seen.get(key, 0) + 1
            if seen[key] > 1:  # the same identity twice in one frame: keep both, in order
                key = f"{key}_{seen[key]}"
            entity = meter.entities.get(key)
            if entity is None:
                entity = entity_for(record, key=key, device_type=address.device_type)
                if entity is None or (not entity.enabled and not self.history):
                    continue
                if entity.name in {e.name for e in meter.entities.values()}:
                    entity = replace(entity, name=f"{entity.name} ({key})")
                meter.entities[key] = entity
                new.append(key)
            meter.readings[key] = _reading(record, entity, self.meter_tz)
        return meter, new

    def _topic(self, node: str, key: str) -> str:
        return f"{self.discovery_prefix}/sensor/{node}/{key}/config"

    def _config(self, meter: _Meter, entity: Entity) -> Message:
        cfg = self._entity_config(entity, f"{meter.node}_{entity.key}", meter.state_topic, meter.device,
                                  "{{ (value_json['readings'] | default({}))['" + entity.key + "'] | default('') }}")
        if self.expire_after_s is not None:
            cfg["expire_after"] = int(self.expire_after_s)
        return Message(self._topic(meter.node, entity.key), json.dumps(cfg, ensure_ascii=False))

    def _receiver_config(self, entity: Entity) -> Message:
        cfg = self._entity_config(entity, f"{self.receiver_node}_{entity.key}", self.receiver_state_topic,
                                  self._receiver_device, "{{ value_json['" + entity.key + "'] | default('') }}")
        return Message(self._topic(self.receiver_node, entity.key), json.dumps(cfg, ensure_ascii=False))

    def _entity_config(self, entity: Entity, unique_id: str, state_topic: str, device: dict, template: str) -> dict:
        cfg: dict = {"name": entity.name, "unique_id": unique_id, "state_topic": state_topic,
                     "value_template": template}
        if entity.device_class:
            cfg["device_class"] = entity.device_class
        if entity.state_class:
            cfg["state_class"] = entity.state_class
        if entity.unit:
            cfg["unit_of_measurement"] = entity.unit
        if entity.precision is not None:
            cfg["suggested_display_precision"] = entity.precision
        if entity.diagnostic:
            cfg["entity_category"] = "diagnostic"
        if not entity.enabled:
            cfg["enabled_by_default"] = False
        if self.availability_topic:
            cfg["availability"] = [{"topic": self.availability_topic, "payload_available": "online",
                                    "payload_not_available": "offline"}]
        cfg["device"] = device
        cfg["origin"] = self._origin
        return cfg

