"""VIF / VIFE tables of EN 13757-3 as data (digest: ../shared/spec/apl.md section 2).

Each entry: (quantity, unit, exponent, kind). The value is raw x 10**exponent in ``unit``.
kind: "number", "date" (types G/F/I/J by length), "id" (identification-like numbers printed as
digits), "text" (strings), "flags" (bit fields, type D), "none" (no value, e.g. readout selection).
Units are chosen for users: Wh-based energy in kWh, J-based energy in MJ.
"""

from __future__ import annotations

from dataclasses import dataclass

_TIME_UNITS = ("s", "min", "h", "d")
_TIME_UNITS_MY = ("h", "d", "month", "year")


@dataclass(frozen=True, slots=True)
class Vif:
    quantity: str
    unit: str = ""
    exponent: int = 0
    kind: str = "number"


def _primary() -> dict[int, Vif]:
    t: dict[int, Vif] = {}
    for n in range(8):
        t[0x00 + n] = Vif("energy", "kWh", n - 6)
        t[0x08 + n] = Vif("energy", "MJ", n - 6)
        t[0x10 + n] = Vif("volume", "m3", n - 6)
        t[0x18 + n] = Vif("mass", "kg", n - 3)
        t[0x28 + n] = Vif("power", "W", n - 3)
        t[0x30 + n] = Vif("power", "J/h", n)
        t[0x38 + n] = Vif("volume_flow", "m3/h", n - 6)
        t[0x40 + n] = Vif("volume_flow", "m3/min", n - 7)
        t[0x48 + n] = Vif("volume_flow", "m3/s", n - 9)
        t[0x50 + n] = Vif("mass_flow", "kg/h", n - 3)
    for n in range(4):
        t[0x20 + n] = Vif("on_time", _TIME_UNITS[n])
        t[0x24 + n] = Vif("operating_time", _TIME_UNITS[n])
        t[0x58 + n] = Vif("flow_temperature", "°C", n - 3)
        t[0x5C + n] = Vif("return_temperature", "°C", n - 3)
        t[0x60 + n] = Vif("temperature_difference", "K", n - 3)
        t[0x64 + n] = Vif("external_temperature", "°C", n - 3)
        t[0x68 + n] = Vif("pressure", "bar", n - 3)
        t[0x70 + n] = Vif("averaging_duration", _TIME_UNITS[n])
        t[0x74 + n] = Vif("actuality_duration", _TIME_UNITS[n])
    t[0x6C] = Vif("date", kind="date")
    t[0x6D] = Vif("datetime", kind="date")
    t[0x6E] = Vif("hca_units", "")
    t[0x6F] = Vif("reserved")
    t[0x78] = Vif("fabrication_number", kind="id")
    t[0x79] = Vif("enhanced_identification", kind="id")
    t[0x7A] = Vif("bus_address")
    t[0x7E] = Vif("any_vif", kind="none")
    return t


def _fb() -> dict[int, Vif]:
    t: dict[int, Vif] = {}
    for n in range(2):
        t[0x00 + n] = Vif("energy", "MWh", n - 1)
        t[0x02 + n] = Vif("reactive_energy", "kVARh", n)
        t[0x04 + n] = Vif("apparent_energy", "kVAh", n)
        t[0x08 + n] = Vif("energy", "GJ", n - 1)
        t[0x10 + n] = Vif("volume", "m3", n + 2)
        t[0x18 + n] = Vif("mass", "t", n + 2)
        t[0x1A + n] = Vif("relative_humidity", "%", n - 1)
        t[0x28 + n] = Vif("power", "MW", n - 1)
        t[0x30 + n] = Vif("power", "GJ/h", n - 1)
    for n in range(4):
        t[0x0C + n] = Vif("energy", "Mcal", n - 1)
        t[0x14 + n] = Vif("reactive_power", "kVAR", n - 3)
        t[0x2C + n] = Vif("frequency", "Hz", n - 3)
        t[0x34 + n] = Vif("apparent_power", "kVA", n - 3)
        t[0x58 + n] = Vif("flow_temperature", "°F", n - 3)
        t[0x5C + n] = Vif("return_temperature", "°F", n - 3)
        t[0x60 + n] = Vif("temperature_difference", "°F", n - 3)
        t[0x64 + n] = Vif("external_temperature", "°F", n - 3)
        t[0x70 + n] = Vif("temperature_limit", "°F", n - 3)
        t[0x74 + n] = Vif("temperature_limit", "°C", n - 3)
    t[0x06] = Vif("coefficient_of_performance", "", -1)
    t[0x20] = Vif("volume", "ft3")
    t[0x21] = Vif("volume", "ft3", -1)
    t[0x2A] = Vif("phase_u_u", "°", -1)
    t[0x2B] = Vif("phase_u_i", "°", -1)
    t[0x68] = Vif("hca_rating_factor_k", "", 0)
    t[0x69] = Vif("hca_rating_factor_kq", "", 0)
    t[0x6A] = Vif("hca_rating_factor_kc")
    t[0x6B] = Vif("hca_rating_factor_kcr")
    t[0x6C] = Vif("hca_rating_factor_kch")
    t[0x6D] = Vif("hca_rating_factor_kt")
    t[0x6E] = Vif("display_output_scaling_factor")
    for n in range(8):
        t[0x78 + n] = Vif("max_power_cumulative_count", "W", n - 3)
    return t


def _fd() -> dict[int, Vif]:
    t: dict[int, Vif] = {}
    for n in range(4):
        t[0x00 + n] = Vif("credit", "", n - 3)
        t[0x04 + n] = Vif("debit", "", n - 3)
        t[0x24 + n] = Vif("storage_interval", _TIME_UNITS[n])
        t[0x2C + n] = Vif("duration_since_last_readout", _TIME_UNITS[n])
        t[0x34 + n] = Vif("period_of_tariff", _TIME_UNITS[n])
        t[0x3C + n] = Vif("nominal_transmission_period", _TIME_UNITS[n])
        t[0x68 + n] = Vif("duration_since_last_cumulation", _TIME_UNITS_MY[n])
        t[0x6C + n] = Vif("battery_operating_time", _TIME_UNITS_MY[n])
    names = {
        0x08: ("access_number", "", "number"), 0x09: ("device_type", "", "number"),
        0x0A: ("manufacturer", "", "number"), 0x0B: ("parameter_set_id", "", "id"),
        0x0C: ("model_version", "", "number"), 0x0D: ("hardware_version", "", "number"),
        0x0E: ("firmware_version", "", "number"), 0x0F: ("software_version", "", "number"),
        0x10: ("customer_location", "", "id"), 0x11: ("customer", "", "id"),
        0x12: ("access_code_user", "", "id"), 0x13: ("access_code_operator", "", "id"),
        0x14: ("access_code_system_operator", "", "id"), 0x15: ("access_code_developer", "", "id"),
        0x16: ("password", "", "id"), 0x17: ("error_flags", "", "flags"), 0x18: ("error_mask", "", "flags"),
        0x19: ("security_key", "", "id"), 0x1A: ("digital_output", "", "flags"),
        0x1B: ("digital_input", "", "flags"), 0x1C: ("baud_rate", "Bd", "number"),
        0x1D: ("response_delay", "bit times", "number"), 0x1E: ("retry", "", "number"),
        0x1F: ("remote_control", "", "flags"), 0x20: ("first_cyclic_storage", "", "number"),
        0x21: ("last_cyclic_storage", "", "number"), 0x22: ("storage_block_size", "", "number"),
        0x23: ("tariff_subunit_descriptor", "", "flags"), 0x28: ("storage_interval", "month", "number"),
        0x29: ("storage_interval", "year", "number"), 0x2A: ("operator_specific_data", "", "id"),
        0x2B: ("time_point_second", "s", "number"), 0x30: ("tariff_start", "", "date"),
        0x31: ("tariff_duration", "min", "number"), 0x32: ("tariff_duration", "h", "number"),
        0x33: ("tariff_duration", "d", "number"), 0x38: ("period_of_tariff", "month", "number"),
        0x39: ("period_of_tariff", "year", "number"), 0x3A: ("dimensionless", "", "number"),
        0x3B: ("wmbus_container", "", "id"), 0x60: ("reset_counter", "", "number"),
        0x61: ("cumulation_counter", "", "number"), 0x62: ("control_signal", "", "flags"),
        0x63: ("day_of_week", "", "number"), 0x64: ("week_number", "", "number"),
        0x65: ("time_point_of_day_change", "", "number"), 0x66: ("parameter_activation_state", "", "flags"),
        0x67: ("special_supplier_information", "", "id"), 0x70: ("battery_change_datetime", "", "date"),
        0x71: ("rf_level", "dBm", "number"), 0x72: ("daylight_saving", "", "id"),
        0x73: ("listening_window_management", "", "id"), 0x74: ("remaining_battery_lifetime", "d", "number"),
        0x75: ("meter_stopped_count", "", "number"), 0x76: ("manufacturer_container", "", "id"),
    }
    for code, (q, u, k) in names.items():
        t[code] = Vif(q, u, 0, k)
    for n in range(16):
        t[0x40 + n] = Vif("voltage", "V", n - 9)
        t[0x50 + n] = Vif("current", "A", n - 12)
    return t


# EN 13757-3 Table 12 remark k: the binary data of these FD codes (identification, version numbers,
# access codes, storage numbers, durations since readout, transmission period, battery lifetime,
# stop count ...) is data type C (unsigned integer), or type A when BCD-coded; so the lowest signed
# number is a value here, not the type B "no value" marker (codes as exmbus vif_table_fd.ex marks
# them with fd_remark_k).
FD_UNSIGNED = frozenset([*range(0x08, 0x17), *range(0x18, 0x1E), *range(0x20, 0x24), 0x2B, *range(0x2C, 0x30),
                         *range(0x3C, 0x40), 0x74, 0x75])

PRIMARY = _primary()
TABLE_FB = _fb()
TABLE_FD = _fd()
# FD 7D: second-level extension
TABLE_FD_7D = {0x00: Vif("currently_selected_application", kind="id"),
               0x02: Vif("remaining_battery_lifetime", "month"), 0x03: Vif("remaining_battery_lifetime", "year"),
               0x3E: Vif("moisture", "%")}

# Combinable (orthogonal) VIFEs: code -> description. Handled specially where they change the value.
_PER = ("second", "minute", "hour", "day", "week", "month", "year")
ORTHOGONAL: dict[int, str] = {
    0x12: "average", 0x13: "inverse compact profile", 0x14: "relative deviation",
    0x1D: "standard conform data content", 0x1E: "compact profile with register numbers",
    0x1F: "compact profile", 0x27: "per revolution/measurement", 0x28: "increment per input pulse ch0",
    0x29: "increment per input pulse ch1", 0x2A: "increment per output pulse ch0",
    0x2B: "increment per output pulse ch1", 0x2C: "per litre", 0x2D: "per m3", 0x2E: "per kg",
    0x2F: "per K", 0x30: "per kWh", 0x31: "per GJ", 0x32: "per kW", 0x33: "per K*l", 0x34: "per V",
    0x35: "per A", 0x36: "multiplied by s", 0x37: "multiplied by s/V", 0x38: "multiplied by s/A",
    0x39: "start date(/time) of", 0x3A: "uncorrected", 0x3B: "forward flow", 0x3C: "backward flow",
    0x3D: "non-metric units", 0x3E: "at base conditions", 0x3F: "OBIS declaration",
    0x40: "lower limit", 0x48: "upper limit", 0x41: "number of lower limit exceeds",
    0x49: "number of upper limit exceeds", 0x69: "leakage values", 0x6D: "overflow values",
    0x68: "value during lower limit exceed", 0x6C: "value during upper limit exceed", 0x7E: "future value",
}
for _i, _p in enumerate(_PER):
    ORTHOGONAL[0x20 + _i] = f"per {_p}"
for _code in (0x42, 0x43, 0x46, 0x47, 0x4A, 0x4B, 0x4E, 0x4F):
    ORTHOGONAL[_code] = ("date of " + ("end" if _code & 1 else "begin") + " of " + ("last" if _code & 4 else "first")
                         + " " + ("upper" if _code & 8 else "lower") + " limit exceed")
for _code in range(0x50, 0x60):
    ORTHOGONAL[_code] = (f"duration of {'last' if _code & 4 else 'first'} {'upper' if _code & 8 else 'lower'} "
                         f"limit exceed ({_TIME_UNITS[_code & 3]})")
for _code in range(0x60, 0x68):
    ORTHOGONAL[_code] = f"duration of {'last' if _code & 4 else 'first'} ({_TIME_UNITS[_code & 3]})"
for _code in (0x6A, 0x6B, 0x6E, 0x6F):
    ORTHOGONAL[_code] = f"date of {'last' if _code & 4 else 'first'} {'end' if _code & 1 else 'begin'}"

RECORD_ERRORS = {
    0x00: "none", 0x01: "too many DIFEs", 0x02: "storage number not implemented",
    0x03: "unit number not implemented", 0x04: "tariff number not implemented",
    0x05: "function not implemented", 0x06: "data class not implemented", 0x07: "data size not implemented",
    0x0B: "too many VIFEs", 0x0C: "illegal VIF group", 0x0D: "illegal VIF exponent",
    0x0E: "VIF/DIF mismatch", 0x0F: "unimplemented action", 0x15: "no data available",
    0x16: "data overflow", 0x17: "data underflow", 0x18: "data error", 0x1C: "premature end of record",
}

TABLE_FC = {0x01: "at phase L1", 0x02: "at phase L2", 0x03: "at phase L3", 0x04: "at neutral",
            0x05: "between L1-L2", 0x06: "between L2-L3", 0x07: "between L3-L1", 0x08: "quadrant Q1",
            0x09: "quadrant Q2", 0x0A: "quadrant Q3", 0x0B: "quadrant Q4", 0x0C: "delta import-export",
            0x0D: "alternative non-metric units", 0x0E: "secondary sensor", 0x0F: "higher resolution register",
            0x10: "accumulation of absolute value", 0x11: "type C", 0x12: "type D", 0x13: "end date",
            0x14: "partner to meter", 0x15: "meter to partner"}
