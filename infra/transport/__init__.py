"""Transports: how a machine is reached (run, sync, start detached, poll, fetch)."""
