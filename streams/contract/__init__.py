"""The event contract: what a valid input event is (types, fields, decoding, JSON Schemas)."""
