"""numpy signal processing for the wM-Bus physical layer."""
