"""The SDK's side of the service protocol: replaying and writing an invocation's journal."""

from sdk.state_machine.machine import Closed, StateMachine
from sdk.state_machine.results import (
    VOID,
    Failure,
    InvocationIdResult,
    Key,
    Result,
    StateKeysResult,
    Void,
    completion_key,
    named_signal_key,
    signal_key,
)

__all__ = [
    "VOID",
    "Closed",
    "Failure",
    "InvocationIdResult",
    "Key",
    "Result",
    "StateKeysResult",
    "StateMachine",
    "Void",
    "completion_key",
    "named_signal_key",
    "signal_key",
]
