"""The default departments and categories a new installation starts with (admins edit them).

These lists are loaded by migration ``0006_workorders``: once shipped, they are history. A later
change to the defaults is a new migration, not an edit here (an edit here would not reach
installations that already ran the migration, and would make the schema test lie).
"""

from __future__ import annotations

from dataclasses import dataclass

from cityweave.accounts.models import Role
from cityweave.workorders.models import Assignment, Priority


@dataclass(frozen=True)
class DepartmentDefault:
    id: str
    name: str
    name_en: str


@dataclass(frozen=True)
class CategoryDefault:
    id: str
    name: str
    name_en: str
    group: str
    department_id: str
    handler_role: Role
    accept_within_minutes: int
    resolve_within_hours: int
    priority: Priority = Priority.NORMAL
    public: bool = True
    assignment: Assignment = Assignment.LEAST_LOAD
    description: str = ""
    description_en: str = ""


DEPARTMENTS_V1 = (
    DepartmentDefault("property", "物业服务中心", "Property management office"),
    DepartmentDefault("committee", "社区居委会", "Residents' committee"),
    DepartmentDefault("grid-centre", "网格管理中心", "Grid management centre"),
    DepartmentDefault("police", "辖区派出所", "Local police station"),
    DepartmentDefault("municipal", "街道城建市政", "Street office: works and facilities"),
    DepartmentDefault("civil-affairs", "街道民政养老", "Street office: civil affairs and elderly care"),
)

_G, _P, _O, _A = Role.GRID_WORKER, Role.PROPERTY_STAFF, Role.DEPARTMENT_OFFICER, Role.COMMUNITY_ADMIN

CATEGORIES_V1 = (
    CategoryDefault("repair-water", "水管漏水维修", "Water pipe repair", "repairs", "property", _P, 30, 24,
                    Priority.HIGH, description="漏水、堵塞、水压异常", description_en="Leaks, blockages, water pressure"),
    CategoryDefault("repair-power", "电路故障维修", "Electrical repair", "repairs", "property", _P, 30, 24,
                    Priority.HIGH, description="停电、跳闸、公共照明", description_en="Power cuts, tripped breakers, corridor lights"),
    CategoryDefault("repair-lift", "电梯故障", "Lift fault", "repairs", "property", _P, 15, 8, Priority.URGENT,
                    description="电梯停运、困人请拨打电梯内紧急电话", description_en="Lift out of service; if trapped, use the lift's emergency phone"),
    CategoryDefault("repair-door", "门窗门禁维修", "Doors and access control", "repairs", "property", _P, 60, 48,
                    assignment=Assignment.ROTA),
    CategoryDefault("sanitation", "环境卫生", "Sanitation and litter", "environment", "property", _P, 120, 24,
                    assignment=Assignment.ROTA),
    CategoryDefault("noise", "噪音扰民", "Noise nuisance", "neighbourhood", "committee", _G, 60, 48),
    CategoryDefault("neighbour-dispute", "邻里纠纷", "Neighbour dispute", "neighbourhood", "committee", _G, 120, 72,
                    public=False),
    CategoryDefault("illegal-parking", "违规停车", "Illegal parking", "traffic", "property", _P, 30, 4),
    CategoryDefault("ebike-corridor", "楼道电动车充电", "E-bike charging in a corridor", "safety", "grid-centre", _G,
                    30, 12, Priority.HIGH),
    CategoryDefault("fire-escape", "消防通道堵塞", "Blocked fire escape", "safety", "property", _P, 30, 12,
                    Priority.HIGH),
    CategoryDefault("security", "治安隐患", "Security concern", "safety", "police", _O, 30, 24, Priority.HIGH),
    CategoryDefault("elderly-help", "老人求助", "Help for an elderly resident", "care", "civil-affairs", _G, 15, 4,
                    Priority.URGENT, public=False),
    CategoryDefault("public-facility", "公共设施损坏", "Damaged public facility", "public", "municipal", _O, 120, 72),
    CategoryDefault("property-complaint", "物业服务投诉", "Complaint about property services", "service", "committee",
                    _A, 240, 120, public=False),
    CategoryDefault("suggestion", "意见建议", "Suggestion", "service", "committee", _A, 1440, 168, Priority.LOW),
    CategoryDefault("alarm-site-visit", "告警现场处置", "Alarm needing people on site", "safety", "property", _P, 5, 2,
                    Priority.URGENT, public=False,
                    description="由告警自动生成", description_en="Opened by an alarm"),
)
