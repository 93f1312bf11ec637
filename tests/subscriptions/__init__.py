"""Tests of subscriptions/: payload decoding, key mapping, the schema-registry client."""
