"""Talking to the upstream API: the event-stream reader."""
