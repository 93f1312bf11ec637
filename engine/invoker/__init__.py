"""The invoker: runs invocation attempts against service endpoints.

The partition leader builds an :class:`~engine.invoker.task.InvocationTask` from its
state (journal, eager state, retry counters, endpoint) and hands it to an
:class:`~engine.invoker.client.Invoker`, which limits concurrency per deployment and
runs the attempt (:func:`~engine.invoker.session.run_attempt`): one HTTP/1.1
request/response exchange in the Restate service protocol (:mod:`.protocol`). Every new
journal entry, run result, suspension and end comes back as a WAL record through an
``emit`` callback that returns once the record is durable; the attempt's overall result
is an :class:`~engine.invoker.task.AttemptOutcome`, and :mod:`.retry` decides what a
failed one leads to. :mod:`.notifications` turns ``Notify`` records into the journal
entries the SDK replays.

Nothing here touches Kafka or LMDB: records go out through ``emit``, state comes in
through the task.
"""
