"""Errors of the streams package."""

from core.errors import RetentionMonitorError


class StreamsError(RetentionMonitorError):
    """Base of the streams package's errors."""


class TopicError(StreamsError):
    """The monitor's Kafka topics cannot be listed or created."""


class PublishError(StreamsError):
    """Events cannot be read or published to Kafka."""


class BrokerUnreachable(PublishError):
    """Kafka cannot be reached, or fails the sends (a service problem, not the user's input)."""


class AmountTooLarge(StreamsError, ValueError):
    """An amount that does not fit the stored 64-bit micro-units of the reporting currency."""


class StoreBehind(StreamsError):
    """A partition's state store missed a turn's states: it re-reads the changelog before the next turn."""
