"""The lateness rule on its own: streams are the default topics of docs/contract/events.md, and each limit is exact."""

from __future__ import annotations

from core.settings import Settings
from metrics.lateness import STREAMS, Late, Lateness, stream_of
from metrics.records import TYPE_CODES, T
from streams.producers.simulate import topic_for

DAY = 86_400_000_000
RULE = Lateness(7 * DAY, 30 * DAY, "7d", "30d")


def test_streams_are_the_default_topics_of_events_md() -> None:
    settings = Settings()
    by_topic: dict[str, set[str]] = {}
    for name, code in TYPE_CODES.items():
        by_topic.setdefault(topic_for(settings.topics, name), set()).add(stream_of(code))
    assert all(len(streams) == 1 for streams in by_topic.values()), by_topic
    assert sorted(s for streams in by_topic.values() for s in streams) == sorted(STREAMS)


def test_within_the_stream_seven_days_are_allowed_and_a_microsecond_more_is_not() -> None:
    newest = 100 * DAY
    assert RULE.judge(newest - 7 * DAY, T.ORDER_PLACED, newest, newest) is None
    assert RULE.judge(newest - 7 * DAY - 1, T.ORDER_PLACED, newest, newest) == Late(
        7 * DAY + 1, "the newest customers and orders event", "allowed_lateness=7d")


def test_another_streams_newer_events_do_not_make_an_event_late() -> None:
    assert RULE.judge(80 * DAY, T.SIGNED_UP, key_newest=100 * DAY, stream_newest=None) is None
    assert RULE.judge(80 * DAY, T.SIGNED_UP, key_newest=100 * DAY, stream_newest=84 * DAY) is None


def test_beyond_the_history_every_stream_is_late() -> None:
    assert RULE.judge(70 * DAY, T.SURVEY_NPS, key_newest=100 * DAY, stream_newest=None) is None
    assert RULE.judge(70 * DAY - 1, T.SURVEY_NPS, key_newest=100 * DAY, stream_newest=None) == Late(
        30 * DAY + 1, "the newest event", "history=30d")
