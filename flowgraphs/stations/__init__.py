"""Stations: what a gateway and a meter do and when — the dialogue logic with its windows (session,
also the simulated channel), and the live stations that answer through a TX sink (gateway_live,
meter_live)."""
