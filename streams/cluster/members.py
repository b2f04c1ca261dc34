"""Who owns which customer partitions: the consumer group's assignment, as every member received it."""

from __future__ import annotations

from collections.abc import Callable

import faust


def members(app: faust.App, topic: str) -> Callable[[], dict[str, frozenset[int]]]:
    """``{url: partitions of topic}`` of the apply agent's group, by each member's advertised URL
    (Faust's assignor shares it with the assignment, as Kafka Streams shares ``application.server``)."""
    def current() -> dict[str, frozenset[int]]:
        metadata = app.assignor.external_topics_metadata()  # type: ignore[attr-defined]  # not in Faust's stub
        return {str(url): frozenset(topics.get(topic, ())) for url, topics in metadata.items()}

    return current
