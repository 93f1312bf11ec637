"""The journal's shared formats: what the partition state machine writes into a journal
and the invoker replays (entries are :class:`restate_protocol.JournalEntry`)."""
