"""Cluster metadata: registered deployments, their services and handlers.

Kept in the compacted ``<prefix>.metadata`` topic and materialized in every engine
process by :class:`engine.metadata.store.MetadataStore`.

* :mod:`~engine.metadata.model` the typed metadata and its defaults;
* :mod:`~engine.metadata.manifest` and :mod:`~engine.metadata.discovery` asking an
  endpoint what it serves;
* :mod:`~engine.metadata.changes` the rules for registering and changing (pure);
* :mod:`~engine.metadata.codec` the topic's record format;
* :mod:`~engine.metadata.view` and :mod:`~engine.metadata.store` the materialized view
  and the reads and writes of the topic;
* :mod:`~engine.metadata.durations` durations as the admin API spells them.
"""
