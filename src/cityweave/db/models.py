"""Imports every domain's models so Alembic and ``create_all`` see one complete metadata."""

from cityweave.accounts.models import ApiKey, AuthToken, RoleGrant, User  # noqa: F401
from cityweave.alarms.models import Alarm, AlarmEvent  # noqa: F401
from cityweave.audit.models import AuditHead, AuditRecord  # noqa: F401
from cityweave.db.base import Base
from cityweave.devices.registry.models import (  # noqa: F401
    Device,
    DeviceCommand,
    DeviceCredential,
    DeviceRegistryState,
)
from cityweave.ingest.receipts import IngestReceipt  # noqa: F401
from cityweave.notifications.models import Notification, NotificationPreference  # noqa: F401
from cityweave.people.models import CareTag, HouseholdMember, Person  # noqa: F401
from cityweave.places.models import Place  # noqa: F401
from cityweave.rules.models import Automation, HouseholdMode, Scene  # noqa: F401
from cityweave.rules.state import HouseholdRuleSettings, RuleState  # noqa: F401
from cityweave.telemetry import models as telemetry_models  # noqa: F401
from cityweave.workorders.models import (  # noqa: F401
    Category,
    Department,
    RotaCursor,
    WorkOrder,
    WorkOrderEvent,
    WorkOrderPhoto,
)

metadata = Base.metadata
