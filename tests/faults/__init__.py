"""Fault tests: real processes and a real (private) PostgreSQL, killed, paused and restarted."""
