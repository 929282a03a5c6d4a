"""IQ sources and sinks, sample formats and stream metadata (knows numpy, not M-Bus)."""
