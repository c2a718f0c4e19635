"""A season of work orders for the demo community, so the queue, the timers and the statistics
have something to show on the first start.

Deterministic: a function of the seed and the day. Every work order goes through the real
service (routing, deadlines, history, audit trail) on a clock that walks through the last
``DAYS`` days, and its handler takes the steps a real handler would, with some late, some
reopened, some rejected and a few still open or overdue today. The events of this back-filled
history are not announced on the live bus (nobody should be paged for last month).
"""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from cityweave.accounts.models import Role, RoleGrant, User
from cityweave.authz.policy import Principal
from cityweave.bus import EventBus
from cityweave.clock import ManualClock
from cityweave.context import AppContext, Call
from cityweave.errors import CityWeaveError
from cityweave.places.models import Place, PlaceKind
from cityweave.workorders import deadlines, service
from cityweave.workorders.models import Status
from cityweave.workorders.schemas import RateInput, TransferInput, WorkOrderSubmit

DAYS = 42  # six weeks: enough for week-over-week trends
PER_DAY = 4  # on average; a community of ~900 households files a few reports a day

# (category, weight, what people write)
REPORTS: tuple[tuple[str, int, tuple[str, ...]], ...] = (
    ("repair-water", 8, ("厨房水管漏水，楼下天花板渗水", "卫生间地漏堵塞反味", "热水器进水阀滴水")),
    ("repair-power", 5, ("楼道感应灯不亮", "家里一用电就跳闸", "单元门口路灯坏了")),
    ("repair-lift", 4, ("电梯门关不严，运行有异响", "电梯按钮失灵", "电梯停在8楼不动")),
    ("repair-door", 3, ("单元门禁刷卡没反应", "单元门闭门器坏了，门关不上")),
    ("sanitation", 5, ("垃圾桶满了没人清理", "草坪上有狗粪", "楼道堆放杂物有异味")),
    ("noise", 4, ("楼上晚上11点后还在装修", "广场舞音响太大声", "空调外机噪音大")),
    ("illegal-parking", 3, ("消防通道停了私家车", "电动车停在盲道上")),
    ("ebike-corridor", 3, ("楼道里有人给电动车充电", "1楼大堂停放电动车充电")),
    ("fire-escape", 2, ("安全通道堆满纸箱", "消防门被锁住了")),
    ("elderly-help", 2, ("独居老人家里灯泡坏了需要帮忙更换", "老人需要有人陪同去医院复诊")),
    ("public-facility", 2, ("小区健身器材螺丝松了", "儿童滑梯有裂缝")),
    ("property-complaint", 1, ("物业保洁不到位，楼道一周没拖", "物业费账单有误")),
    ("suggestion", 1, ("建议在小区门口增加快递柜", "希望增加老年人活动室开放时间")),
)


def load(ctx: AppContext, session: Session, seed: int, community_path: str) -> int:
    """File and work through the demo's work orders; returns how many."""
    rng = random.Random(f"cityweave-demo/{seed}/workorders")
    end = ctx.clock.now()
    clock = ManualClock(end - timedelta(days=DAYS))
    quiet = replace(ctx, clock=clock, bus=EventBus())
    households = session.execute(select(Place.id).where(
        Place.kind == PlaceKind.HOUSEHOLD, Place.path.startswith(community_path)).order_by(Place.id)).scalars().all()
    buildings = session.execute(select(Place.id).where(
        Place.kind == PlaceKind.BUILDING, Place.path.startswith(community_path)).order_by(Place.id)).scalars().all()
    if not households:
        return 0
    residents = _resident_users(session, community_path)
    _PRINCIPALS.clear()  # user ids differ from one database to the next
    system = Principal.system("demo")
    weights = [w for _, w, _ in REPORTS]
    filed: list[tuple[datetime, str]] = []
    moment = clock.now()
    while moment < end - timedelta(hours=1):
        moment += timedelta(hours=rng.expovariate(PER_DAY / 24))
        filed.append((moment, _pick(rng, weights)))
    count = 0
    for at, index in filed:
        category, _, texts = REPORTS[index]
        clock.set(at)
        deadlines.check(session, quiet.bus, at)  # the timers run as time goes by
        session.flush()
        session.expunge_all()  # keep autoflush cheap: one work order's objects at a time
        building_level = category in ("repair-lift", "repair-door", "sanitation", "fire-escape", "ebike-corridor",
                                      "illegal-parking", "public-facility")
        place = rng.choice(buildings) if building_level and buildings else rng.choice(households)
        reporter = residents.get(place) or system
        call = Call(quiet, session, reporter)
        try:
            order = service.submit(call, WorkOrderSubmit(category_id=category, description=rng.choice(texts),
                                                         place_id=place))
        except CityWeaveError:
            continue
        count += 1
        _work_through(quiet, session, clock, rng, order.id, end)
    # Today's timers: whatever is late by now is escalated, as the running service would have.
    clock.set(end)
    while deadlines.check(session, quiet.bus, end):
        pass
    return count


def _pick(rng: random.Random, weights: list[int]) -> int:
    return rng.choices(range(len(weights)), weights=weights)[0]


def _resident_users(session: Session, community_path: str) -> dict[str, Principal]:
    rows = session.execute(select(RoleGrant.place_id, RoleGrant.user_id).where(
        RoleGrant.role == Role.RESIDENT, RoleGrant.place_path.startswith(community_path))).all()
    found = {}
    for place_id, user_id in rows:
        user = session.get(User, user_id)
        if user is not None:
            found[place_id] = Principal.from_user(user, via="token")
    return found


_PRINCIPALS: dict[str | None, Principal] = {}


def _as(ctx: AppContext, session: Session, user_id: str | None) -> Call:
    principal = _PRINCIPALS.get(user_id)
    if principal is None:
        user = session.get(User, user_id) if user_id else None
        principal = Principal.from_user(user, via="token") if user else Principal.system("demo")
        _PRINCIPALS[user_id] = principal
    return Call(ctx, session, principal)


def _work_through(ctx: AppContext, session: Session, clock: ManualClock, rng: random.Random, order_id: str,
                  end: datetime) -> None:
    """What happens next, step by step, stopping at today."""
    from cityweave.workorders.models import WorkOrder

    def step(after_minutes: float) -> bool:
        clock.set(clock.now() + timedelta(minutes=after_minutes))
        return clock.now() < end

    order = session.get(WorkOrder, order_id)
    if order.assignee_user_id is None:  # nobody to route to: community staff triage it
        if not step(rng.uniform(20, 240)):
            return
        if rng.random() < 0.08:
            service.reject(_as(ctx, session, None), order_id, "经核实不属于社区处理范围，已告知拨打12345")
            return
        service.accept(_as(ctx, session, None), order_id, "社区工作站已受理")
        return
    handler = _as(ctx, session, order.assignee_user_id)
    if rng.random() < 0.05 and step(rng.uniform(10, 60)):
        service.transfer(handler, order_id, TransferInput(category_id="property-complaint", reason="属于物业服务问题，转物业"))
        return
    if not step(rng.expovariate(1 / 35)):
        return
    service.start(handler, order_id, rng.choice(["已联系住户，马上上门", "师傅已出发", "已安排处理"]))
    due = order.resolve_due_at
    planned = rng.expovariate(1 / ((due - clock.now()).total_seconds() / 60 * 0.5))
    if not step(planned):
        return
    service.resolve(handler, order_id, rng.choice(["已处理完毕", "已更换配件，恢复正常", "已现场劝导，问题解决"]))
    reporter = order.reporter_user_id
    if reporter is None or not step(rng.uniform(30, 60 * 30)):
        return
    reporter_call = _as(ctx, session, reporter)
    if rng.random() < 0.07:
        service.reopen(reporter_call, order_id, "问题又出现了")
        return
    if rng.random() < 0.7 and session.get(WorkOrder, order_id).status is Status.RESOLVED:
        service.rate(reporter_call, order_id, RateInput(satisfaction=rng.choices([5, 4, 3, 2], [60, 25, 10, 5])[0]))
