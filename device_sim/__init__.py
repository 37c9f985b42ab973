"""Foyer device simulator: speaks only the wire contract of PROTOCOL.md (SenML over MQTT/CoAP).

Deliberately independent of the backend packages, so it tests the contract rather
than the implementation.
"""
