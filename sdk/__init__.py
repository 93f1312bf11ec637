"""logstrate SDK: write durable services that run on logstrate and on restate-server.

The SDK is built in its own issue; this package reserves the import name.
"""
