"""NotificationHub: scope filtering, bounded subscribers (resync, a publisher that never blocks),
Last-Event-ID resume, publishing from other threads. Pure in-process: no database needed."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from cityweave.accounts.models import Role
from cityweave.authz.policy import Grant, Principal
from cityweave.notifications.hub import RESYNC, LiveEvent, NotificationHub, visible

CITY = "/tc/tc-d1/tc-d1-s1/"
COMMUNITY = CITY + "ca/"
GRID1, GRID2 = COMMUNITY + "ca-g1/", COMMUNITY + "ca-g2/"
HOME = GRID1 + "ca-b1/ca-b1-u1/ca-b1-u1-101/"
NEIGHBOUR = GRID1 + "ca-b1/ca-b1-u1/ca-b1-u1-102/"
OTHER_GRID_HOME = GRID2 + "ca-b2/ca-b2-u1/ca-b2-u1-201/"
OTHER_COMMUNITY_HOME = CITY + "cb/cb-g1/cb-b1/cb-b1-u1/cb-b1-u1-101/"


def who(role: Role, path: str | None) -> Principal:
    return Principal(user_id=f"u-{role}", username=str(role), grants=(Grant(role, path),))


RESIDENT = who(Role.RESIDENT, HOME)
GRID_WORKER = who(Role.GRID_WORKER, GRID1)
ADMIN = who(Role.PLATFORM_ADMIN, None)


def alarm(path: str, n: int = 0) -> LiveEvent:
    return LiveEvent(type="alarm", place_path=path, data={"n": n})


async def drain(sub, timeout: float = 0.05) -> list[LiveEvent]:
    got = []
    while (event := await sub.get(timeout=timeout)) is not None:
        got.append(event)
    return got


def test_each_subscriber_sees_only_its_scope() -> None:
    async def main() -> None:
        hub = NotificationHub()
        resident, grid, admin = (hub.subscribe(p) for p in (RESIDENT, GRID_WORKER, ADMIN))
        for n, path in enumerate((HOME, NEIGHBOUR, OTHER_GRID_HOME, OTHER_COMMUNITY_HOME)):
            hub.publish(alarm(path, n))
        assert [e.data["n"] for e in await drain(resident)] == [0]
        assert [e.data["n"] for e in await drain(grid)] == [0, 1]
        assert [e.data["n"] for e in await drain(admin)] == [0, 1, 2, 3]

    asyncio.run(main())


def test_visible_matches_the_policy() -> None:
    assert visible(RESIDENT, alarm(HOME)) and not visible(RESIDENT, alarm(NEIGHBOUR))
    assert visible(GRID_WORKER, alarm(NEIGHBOUR)) and not visible(GRID_WORKER, alarm(OTHER_GRID_HOME))
    # Enclosing places do not make an event visible: a resident does not see the community's.
    assert not visible(RESIDENT, LiveEvent(type="notice", place_path=COMMUNITY, data={}))
    assert visible(GRID_WORKER, LiveEvent(type="notice", place_path=HOME, data={}))
    # A type nobody registered reaches unrestricted callers only.
    unknown = LiveEvent(type="parcel_locker", place_path=HOME, data={})
    assert visible(ADMIN, unknown) and not visible(RESIDENT, unknown) and not visible(GRID_WORKER, unknown)
    # A role without read access to alarms at all sees none.
    assert not visible(who(Role.SERVICE_PROVIDER, None), alarm(HOME))


def test_unregistered_types_reach_admins_only_and_custom_filters_decide() -> None:
    from cityweave.notifications import hub as hub_module

    async def main() -> None:
        hub = NotificationHub()
        resident, admin = hub.subscribe(RESIDENT), hub.subscribe(ADMIN)
        hub.publish(LiveEvent(type="mystery", place_path=HOME, data={}))
        assert await drain(resident) == [] and len(await drain(admin)) == 1
        hub_module.EVENT_FILTERS["mystery"] = lambda principal, event: principal is RESIDENT
        try:
            hub.publish(LiveEvent(type="mystery", place_path="/elsewhere/", data={}))
            assert len(await drain(resident)) == 1 and await drain(admin) == []
        finally:
            del hub_module.EVENT_FILTERS["mystery"]

    asyncio.run(main())


def test_type_filter_and_increasing_ids() -> None:
    async def main() -> None:
        hub = NotificationHub()
        only_alarms = hub.subscribe(ADMIN, types=["alarm"])
        first = hub.publish(alarm(HOME))
        hub.publish(LiveEvent(type="device_state", place_path=HOME, data={}))
        third = hub.publish(alarm(HOME))
        assert first.id < third.id and first.id > hub.first_id
        assert [e.id for e in await drain(only_alarms)] == [first.id, third.id]

    asyncio.run(main())


def test_slow_subscriber_gets_resync_and_the_publisher_never_blocks() -> None:
    async def main() -> None:
        hub = NotificationHub()
        slow = hub.subscribe(ADMIN, maxsize=10)
        fast = hub.subscribe(ADMIN, maxsize=100_000)
        # Another thread publishes 20,000 events while nobody reads: it must not wait for anyone.
        took: list[float] = []

        def publish() -> None:
            start = time.perf_counter()
            for n in range(20_000):
                hub.publish(alarm(HOME, n))
            took.append(time.perf_counter() - start)

        thread = threading.Thread(target=publish)
        thread.start()
        await asyncio.to_thread(thread.join, 30)
        assert took and took[0] < 10.0
        events = await drain(slow)
        assert events[0].type == RESYNC and events[0].data == {"reason": "slow_consumer", "lost": 19_990}
        assert [e.data["n"] for e in events[1:]] == list(range(19_990, 20_000))  # the newest survive
        assert len(await drain(fast)) == 20_000  # the fast one lost nothing
        # After the resync, the slow reader goes on normally.
        hub.publish(alarm(HOME, -1))
        assert [e.data["n"] for e in await drain(slow)] == [-1]

    asyncio.run(main())


def test_last_event_id_resumes_from_the_ring() -> None:
    async def main() -> None:
        hub = NotificationHub(ring_size=5)
        ids = [hub.publish(alarm(HOME if n % 2 else NEIGHBOUR, n)).id for n in range(4)]
        resumed = hub.subscribe(RESIDENT, last_event_id=str(ids[0]))
        hub.publish(alarm(HOME, 4))
        # Missed events (only those the resident may see), then the new one, in order, once.
        assert [e.data["n"] for e in await drain(resumed)] == [1, 3, 4]
        up_to_date = hub.subscribe(ADMIN, last_event_id=hub.last_id)
        assert await drain(up_to_date) == []

    asyncio.run(main())


@pytest.mark.parametrize("last", ["too-old", "future", "garbage", "other-process"])
def test_a_last_event_id_the_ring_cannot_serve_gives_resync(last: str) -> None:
    async def main() -> None:
        hub = NotificationHub(ring_size=3)
        ids = [hub.publish(alarm(HOME, n)).id for n in range(10)]
        value = {"too-old": ids[2], "future": ids[-1] + 5, "garbage": "abc", "other-process": 17}[last]
        sub = hub.subscribe(ADMIN, last_event_id=value)
        events = await drain(sub)
        assert [e.type for e in events] == [RESYNC]
        hub.publish(alarm(HOME, 99))
        assert [e.data["n"] for e in await drain(sub)] == [99]

    asyncio.run(main())


def test_device_states_go_live_but_never_push_alarms_out_of_the_ring() -> None:
    async def main() -> None:
        hub = NotificationHub(ring_size=3)
        first = hub.publish(alarm(HOME, 0)).id
        live = hub.subscribe(RESIDENT)
        states = [hub.publish(LiveEvent(type="device_state", place_path=HOME, data={"n": 100 + n},
                                        replayable=False)).id for n in range(10)]
        hub.publish(alarm(HOME, 1))
        # Subscribers see every event as it happens ...
        assert [e.data["n"] for e in await drain(live)] == [*range(100, 110), 1]
        # ... a reconnecting page gets the alarms it missed, with no gap, and no stale states,
        resumed = hub.subscribe(RESIDENT, last_event_id=first)
        assert [e.data["n"] for e in await drain(resumed)] == [1]
        # also when the id it saw last was a device state's.
        after_state = hub.subscribe(RESIDENT, last_event_id=states[4])
        assert [(e.type, e.data.get("n")) for e in await drain(after_state)] == [("alarm", 1)]
        # Once three more alarms have passed, the first alarm's successor has left the ring.
        for n in range(2, 5):
            hub.publish(alarm(HOME, n))
        too_old = hub.subscribe(RESIDENT, last_event_id=states[4])
        assert [e.type for e in await drain(too_old)] == [RESYNC]

    asyncio.run(main())


def test_a_waiting_subscriber_wakes_when_another_thread_publishes() -> None:
    async def main() -> None:
        hub = NotificationHub()
        sub = hub.subscribe(RESIDENT)
        timer = threading.Timer(0.1, lambda: hub.publish(alarm(HOME, 7)))
        timer.start()
        start = time.perf_counter()
        event = await sub.get(timeout=5)
        assert event is not None and event.data["n"] == 7
        assert time.perf_counter() - start < 2
        timer.join()

    asyncio.run(main())


def test_closing_ends_the_subscription_and_a_dead_loop_is_dropped() -> None:
    async def main() -> None:
        hub = NotificationHub()
        sub = hub.subscribe(ADMIN)
        asyncio.get_running_loop().call_later(0.05, hub.close)
        assert await sub.get(timeout=5) is None
        assert sub.closed and hub.subscriber_count == 0
        # A closed hub (shutting down) ends new subscriptions at once.
        late = hub.subscribe(ADMIN)
        assert late.closed and await late.get(timeout=1) is None and hub.subscriber_count == 0
        # A subscription is also an async iterator, which ends when the hub closes.
        other = NotificationHub()
        it = other.subscribe(ADMIN)
        other.publish(alarm(HOME, 1))
        other.publish(alarm(HOME, 2))
        asyncio.get_running_loop().call_later(0.1, other.close)
        assert [e.data["n"] async for e in it] == [1, 2]

    asyncio.run(main())

    hub = NotificationHub()
    loop = asyncio.new_event_loop()
    hub.subscribe(ADMIN, loop=loop)
    loop.close()
    hub.publish(alarm(HOME))  # the closed loop's subscriber goes away; the publisher carries on
    assert hub.subscriber_count == 0
