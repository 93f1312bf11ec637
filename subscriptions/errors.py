"""Errors raised while configuring a subscription or turning its records into invocations.

Three kinds, because the caller handles each differently:

* :class:`InvalidSubscriptionOptions` — the subscription's options are wrong. Raised when
  the subscription is created (the admin API answers 400 with the message) or started, so
  every message says which option to fix and how.
* :class:`RecordDecodeError` — one Kafka record cannot be decoded or mapped to an object
  key. Retrying will not help: the record goes to the subscription's error path (failed
  counter, dead-letter topic), never silently dropped. The message names what is wrong
  and, where there is one, the option that would accept the record.
* :class:`SchemaRegistryError` — the schema registry could not answer. ``retryable`` says
  whether trying again later may succeed (unreachable, timeout, 5xx) or whether the
  configuration must change first (401/403, a URL that is not a registry API, a malformed
  answer). The consumer retries the first kind and halts on the second (never skipping
  the record, never committing past it).
"""

from __future__ import annotations


class SubscriptionError(Exception):
    """Root of every error the subscriptions package raises on purpose."""


class InvalidSubscriptionOptions(SubscriptionError):
    """The subscription's options are invalid; the message says what to fix (HTTP 400)."""


class RecordDecodeError(SubscriptionError):
    """One record's value or key cannot be decoded or mapped; retrying will not help."""


class SchemaRegistryError(SubscriptionError):
    """The schema registry did not give a usable answer.

    ``retryable`` is True when the same request may succeed later (connection refused,
    timeout, HTTP 5xx, 408 or 429): the consumer should pause and retry the record rather
    than fail it. False means a person must act (bad credentials, a ``schema.registry.url``
    that is not a registry API, a malformed answer): the consumer halts at the record.
    """

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable
