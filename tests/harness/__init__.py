"""Test harness: database per run, polling with deadlines, loopback Sentry ingest, supervisors."""
