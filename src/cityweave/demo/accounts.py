"""The demo accounts: one per role (two residents), as data.

This table is the single source of truth for the accounts ``cityweave demo`` creates, the
table it prints on start and the table in the README. The passwords are public on purpose:
the demo database holds invented people only and must never be used for real data.
"""

from __future__ import annotations

from dataclasses import dataclass

from cityweave.accounts.models import Role


@dataclass(frozen=True)
class DemoAccount:
    """One demo sign-in.

    Residents have no ``display_name``: they take the name of the person the generator puts at
    the head of ``place_id``, a household whose make-up ``household_type`` fixes, so that the
    README can promise e.g. "an elderly person living alone" whatever the seed.
    """

    username: str
    password: str
    role: Role
    place_id: str | None
    about_zh: str
    about_en: str
    display_name: str | None = None
    categories: tuple[str, ...] = ()
    household_type: str | None = None


DEMO_ACCOUNTS: tuple[DemoAccount, ...] = (
    DemoAccount(
        username="resident",
        password="resident-demo",
        role=Role.RESIDENT,
        place_id="xfl-b03-u2-1801",
        household_type="nuclear1",
        about_zh="幸福里社区 3栋2单元1801 业主，三口之家",
        about_en="Owner of Xingfuli Bldg 3 Unit 2 Rm 1801, a family of three",
    ),
    DemoAccount(
        username="elder",
        password="elder-demo",
        role=Role.RESIDENT,
        place_id="xfl-b02-u1-0302",
        household_type="elderly_alone",
        about_zh="独居老人，幸福里社区 2栋1单元302",
        about_en="An elderly resident living alone, Xingfuli Bldg 2 Unit 1 Rm 302",
    ),
    DemoAccount(
        username="grid",
        password="grid-demo",
        role=Role.GRID_WORKER,
        place_id="xfl-g1",
        display_name="林晓燕",
        about_zh="幸福里社区第1网格网格员（1–3栋）",
        about_en="Grid worker of Xingfuli grid 1 (buildings 1–3)",
    ),
    DemoAccount(
        username="property",
        password="property-demo",
        role=Role.PROPERTY_STAFF,
        place_id="xfl",
        display_name="周海波",
        about_zh="幸福里物业服务中心客服主管",
        about_en="Property management staff, Xingfuli service centre",
    ),
    DemoAccount(
        username="community",
        password="community-demo",
        role=Role.COMMUNITY_ADMIN,
        place_id="xfl",
        display_name="陈丽华",
        about_zh="幸福里社区工作站管理员",
        about_en="Community administrator of Xingfuli",
    ),
    DemoAccount(
        username="officer",
        password="officer-demo",
        role=Role.DEPARTMENT_OFFICER,
        place_id="ns-yh",
        categories=("public-facility", "sanitation"),
        display_name="刘志强",
        about_zh="粤海街道城建与环卫部门人员：处理公共设施损坏、环境卫生类工单",
        about_en="Department officer of Yuehai Subdistrict: damaged public facilities and sanitation work orders",
    ),
    DemoAccount(
        username="provider",
        password="provider-demo",
        role=Role.SERVICE_PROVIDER,
        place_id=None,
        display_name="安居维修服务有限公司",
        about_zh="服务商（维修公司）：只看派给自己的工单",
        about_en="Service provider (a repair company): sees only the orders given to it",
    ),
    DemoAccount(
        username="city",
        password="city-demo",
        role=Role.CITY_OPERATOR,
        place_id="sz",
        display_name="深圳市城市运行管理中心",
        about_zh="市级运营人员：全市概览",
        about_en="City operator: the whole city at a glance",
    ),
    DemoAccount(
        username="admin",
        password="admin-demo",
        role=Role.PLATFORM_ADMIN,
        place_id=None,
        display_name="平台管理员",
        about_zh="平台管理员：全部权限",
        about_en="Platform administrator: everything",
    ),
)


def demo_account(username: str) -> DemoAccount:
    """The demo account with this username (KeyError if there is none)."""
    for account in DEMO_ACCOUNTS:
        if account.username == username:
            return account
    raise KeyError(username)
