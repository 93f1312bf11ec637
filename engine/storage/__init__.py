"""LMDB storage: one environment per process, one module per table.

Every table is a named LMDB database whose keys start with the partition id, so one
environment holds all partitions the process applies. Each table module has a small
class bound to a transaction (read or write) with typed methods; values use the
versioned struct layout of :mod:`engine.storage.codec`, keys the helpers of
:mod:`engine.storage.keys`. :mod:`engine.storage.tables` opens them all and binds
them to a transaction.

==========================  =====================================================
module                      table
==========================  =====================================================
:mod:`.fsm`                 applied offset, leader epoch, outbox/inbox sequences
:mod:`.invocation_status`   invocation id -> status (lifecycle, target, sinks, ...)
:mod:`.journal`             (invocation, index) -> entry; notification id index
:mod:`.state`               (service, key, state key) -> value
:mod:`.inbox`               (service, key, sequence) -> waiting invocation
:mod:`.locks`               (service, key) -> invocation holding the key
:mod:`.timers`              (fire time, invocation, kind, completion) -> ()
:mod:`.outbox`              sequence -> record for another partition
:mod:`.dedup`               producer -> highest applied sequence
==========================  =====================================================
"""
