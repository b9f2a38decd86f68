"""Vonage adapters: the SMS client (official SDK), webhook signatures and payloads, error texts."""
