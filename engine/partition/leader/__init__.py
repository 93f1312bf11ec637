"""The side-effecting half of a partition, run only by its current leader.

The state machine decides; these executors act: the timer service appends
``TimerFired`` when timers are due, the outbox shuffle delivers records to other
partitions, the invocation executor runs attempts against service endpoints. Everything
they append carries the leader's epoch, so a deposed leader's late appends are ignored.
"""
