"""Builds populated protobuf messages for codec tests.

Filling every field (recursively, one member per oneof) makes a round trip exercise the
whole schema of a message, not just its defaults.
"""

from __future__ import annotations

import random
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from restate_protocol.messages import SPECS_BY_ID

_MAX_DEPTH = 3


def _scalar(field: Any, rnd: random.Random) -> object:
    kind = field.type
    if kind == FieldDescriptor.TYPE_STRING:
        return "".join(rnd.choice("abcxyz_é0") for _ in range(rnd.randint(0, 8)))
    if kind == FieldDescriptor.TYPE_BYTES:
        return rnd.randbytes(rnd.randint(0, 16))
    if kind == FieldDescriptor.TYPE_BOOL:
        return rnd.random() < 0.5
    if kind == FieldDescriptor.TYPE_UINT32:
        return rnd.randint(0, 2**32 - 1)
    if kind == FieldDescriptor.TYPE_UINT64:
        return rnd.randint(0, 2**64 - 1)
    if kind == FieldDescriptor.TYPE_ENUM:
        assert field.enum_type is not None
        return rnd.choice(field.enum_type.values).number
    raise AssertionError(f"sample builder does not handle field type {kind} ({field.full_name})")


def populate(message: Message, rnd: random.Random, depth: int = 0) -> Message:
    """Fill ``message`` in place with random values and return it."""
    # Typed as Any: the descriptor stubs differ between the pure-Python and upb backends.
    descriptor: Any = message.DESCRIPTOR
    chosen_oneof_members = {
        oneof.name: rnd.choice(oneof.fields).name for oneof in descriptor.oneofs if oneof.fields
    }
    for field in descriptor.fields:
        oneof = field.containing_oneof
        if oneof is not None and chosen_oneof_members.get(oneof.name) != field.name:
            continue
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            if depth >= _MAX_DEPTH:
                continue
            if field.is_repeated:
                container = getattr(message, field.name)
                for _ in range(rnd.randint(0, 2)):
                    populate(container.add(), rnd, depth + 1)
            else:
                child = getattr(message, field.name)
                child.SetInParent()  # an empty Void must still be "set" on the wire
                populate(child, rnd, depth + 1)
        elif field.is_repeated:
            getattr(message, field.name).extend(_scalar(field, rnd) for _ in range(rnd.randint(0, 3)))
        else:
            setattr(message, field.name, _scalar(field, rnd))
    return message


def sample_frames(rnd: random.Random) -> list[Message]:
    """One populated instance of every registered frame type, in type id order."""
    return [populate(spec.cls(), rnd) for _, spec in sorted(SPECS_BY_ID.items())]
