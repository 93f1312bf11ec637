"""logstrate engine: a Kafka-native durable execution engine compatible with Restate.

Packages by responsibility:

- ``engine.config``      typed configuration (flags > env > TOML > defaults)
- ``engine.wal``         the Kafka write-ahead log: topics, records, producer
- ``engine.partition``   partition processors and the pure state machine
- ``engine.storage``     LMDB tables, one module per table
- ``engine.invoker``     calls service endpoints over the Restate service protocol
- ``engine.ingress``     the Restate ingress HTTP API (default :8080)
- ``engine.admin``       the Restate admin HTTP API (default :9070)
- ``engine.metadata``    cluster metadata (deployments, subscriptions) on a compacted topic
"""

from engine.version import __version__

__all__ = ["__version__"]
