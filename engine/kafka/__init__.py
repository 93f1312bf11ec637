"""Every Kafka client of the engine, built one way (:mod:`engine.kafka.clients`), and the
checks of the engine's own topics (:mod:`engine.kafka.topic_checks`)."""
