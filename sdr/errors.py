"""Errors of sources and sinks: bad files, bad options, devices."""

from __future__ import annotations


class SDRError(Exception):
    """A source or sink cannot work (missing device, driver, unreadable file)."""


class FormatError(SDRError, ValueError):
    """A recording whose format, rate or frequency is unknown or inconsistent."""
