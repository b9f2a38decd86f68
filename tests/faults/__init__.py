"""Fault-injection scenarios: real workers, their own PostgreSQL and Redis, the emulator."""
