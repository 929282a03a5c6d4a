"""Pipelines: short generator chains from IQ to frames and back — receive (the receiver), live (the
rx loop: dedup, latency, --save-iq), transmit (frames to a recording or a radio), analyze and report
(conformance figures)."""
