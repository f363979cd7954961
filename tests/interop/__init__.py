"""Interop tests against River itself: its Go client, its CLI, River UI."""
