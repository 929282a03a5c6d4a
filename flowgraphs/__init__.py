"""Compositions of sources, DSP blocks and the protocol stack, and the command line."""
