"""Kafka subscriptions: engine-run consumers that turn topic records into invocations.

Built in its own issue; this package reserves the import name.
"""
