"""The fleet hub (``wmbus-sdr hub``): frames from many receivers over MQTT (and rtl_433 /
rtl_wmbus lines) -> merged receptions -> central decryption and decoding -> one store (SQLite or
PostgreSQL) -> silence alarms, republished readings, a dashboard and JSON API.

ingest (check and parse input), merge (copies within a window), core (the worker), store, alarms,
bus (MQTT), web (dashboard)."""
