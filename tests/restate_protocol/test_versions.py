"""Protocol version negotiation and invocation content types."""

from __future__ import annotations

import pytest

from restate_protocol import (
    MAX_PROTOCOL_VERSION,
    MIN_PROTOCOL_VERSION,
    ProtocolError,
    ProtocolVersion,
    UnsupportedProtocolVersion,
    content_type,
    negotiate_version,
    parse_content_type,
)


@pytest.mark.parametrize(
    "endpoint,expected",
    [
        ((5, 7), 7),  # what restate-sdk 1.3 advertises
        ((1, 5), 5),
        ((5, 5), 5),
        ((5, 6), 6),
        ((6, 9), 7),  # a newer SDK: we take our highest
        ((2, 100), 7),
    ],
)
def test_picks_the_highest_common_version(endpoint: tuple[int, int], expected: int) -> None:
    version = negotiate_version(*endpoint)
    assert version == expected
    assert isinstance(version, ProtocolVersion)


def test_our_range_can_be_narrowed() -> None:
    assert negotiate_version(5, 7, ours_max=5) == ProtocolVersion.V5
    assert negotiate_version(1, 6, ours_min=6) == ProtocolVersion.V6


def test_too_old_endpoint() -> None:
    with pytest.raises(UnsupportedProtocolVersion, match=r"\[1, 4\].*upgrade the endpoint's SDK"):
        negotiate_version(1, 4)


def test_too_new_endpoint() -> None:
    with pytest.raises(UnsupportedProtocolVersion, match="upgrade logstrate"):
        negotiate_version(8, 9)


def test_empty_ranges() -> None:
    with pytest.raises(ProtocolError, match="min is above max"):
        negotiate_version(7, 5)
    with pytest.raises(ProtocolError, match="empty local"):
        negotiate_version(5, 7, ours_min=7, ours_max=6)


def test_local_range_outside_what_we_implement() -> None:
    with pytest.raises(UnsupportedProtocolVersion):
        negotiate_version(1, 9, ours_min=4)
    with pytest.raises(UnsupportedProtocolVersion):
        negotiate_version(1, 9, ours_max=8)


def test_unsupported_is_a_protocol_error() -> None:
    assert issubclass(UnsupportedProtocolVersion, ProtocolError)


def test_bounds() -> None:
    assert (MIN_PROTOCOL_VERSION, MAX_PROTOCOL_VERSION) == (5, 7)


@pytest.mark.parametrize("version", [5, 6, 7])
def test_content_type_round_trip(version: int) -> None:
    value = content_type(version)
    assert value == f"application/vnd.restate.invocation.v{version}"
    assert parse_content_type(value) == version
    assert ProtocolVersion(version).content_type == value


def test_content_type_of_unsupported_version() -> None:
    with pytest.raises(UnsupportedProtocolVersion, match="version 4"):
        content_type(4)


def test_parse_tolerates_parameters_case_and_spaces() -> None:
    assert parse_content_type(" Application/VND.Restate.Invocation.v6 ; charset=binary ") == 6


@pytest.mark.parametrize("value", ["text/plain", "application/json", "", "application/vnd.restate.endpointmanifest.v3+json"])
def test_parse_rejects_foreign_content_types(value: str) -> None:
    with pytest.raises(ProtocolError, match="not a Restate service protocol content type"):
        parse_content_type(value)


@pytest.mark.parametrize("value", ["application/vnd.restate.invocation.v", "application/vnd.restate.invocation.vX", "application/vnd.restate.invocation.v٣"])
def test_parse_rejects_malformed_versions(value: str) -> None:
    with pytest.raises(ProtocolError, match="malformed protocol version"):
        parse_content_type(value)


@pytest.mark.parametrize("value", ["application/vnd.restate.invocation.v4", "application/vnd.restate.invocation.v8"])
def test_parse_rejects_unsupported_versions(value: str) -> None:
    with pytest.raises(UnsupportedProtocolVersion, match="supports only versions 5 to 7"):
        parse_content_type(value)
