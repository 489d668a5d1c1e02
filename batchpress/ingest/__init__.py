"""Turning an uploaded CSV into validated product rows."""
