"""cityweave.bus.EventBus: handlers by event class, failures isolated."""

from __future__ import annotations

from dataclasses import dataclass

from cityweave.bus import EventBus


@dataclass(frozen=True)
class Happened:
    what: str


@dataclass(frozen=True)
class HappenedLoudly(Happened):
    pass


def test_handlers_receive_their_events_and_subclasses():
    bus = EventBus()
    seen: list[str] = []
    bus.subscribe(Happened, lambda e: seen.append(f"any:{e.what}"))
    bus.subscribe(HappenedLoudly, lambda e: seen.append(f"loud:{e.what}"))
    bus.publish(Happened("a"))
    bus.publish(HappenedLoudly("b"))
    bus.publish("not an event anyone wants")
    assert seen == ["any:a", "loud:b", "any:b"]


def test_a_failing_handler_does_not_stop_the_others_and_unsubscribe_works():
    bus = EventBus()
    seen: list[str] = []

    def broken(event: Happened) -> None:
        raise RuntimeError("broken handler")

    bus.subscribe(Happened, broken)
    stop = bus.subscribe(Happened, lambda e: seen.append(e.what))
    bus.publish(Happened("one"))
    stop()
    bus.publish(Happened("two"))
    assert seen == ["one"]
