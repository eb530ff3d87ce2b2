"""Circuits: per-slice settings, calibration, keys (cached by content) and the SRS they are made with."""
