"""Resident reports and work orders: community input → online notification → department response.

``models`` holds the tables, ``catalogue`` the default departments and categories, ``routing``
decides who answers a report, ``lifecycle`` the allowed status changes, ``service`` the operations
people perform (authorized and audited), ``deadlines`` the timers that escalate, ``stats`` the
analysis. The Open311 GeoReport v2 interface is an adapter in ``cityweave.api.open311``.
"""
