"""The device registry: devices bound to households and facilities, their lifecycle
(discovered → claimed → active → decommissioned), per-device credentials, and commands with their
log. Domain code: ``service`` (lifecycle), ``commands`` (send, track), ``directory`` (the
``DeviceDirectory`` the adapters look devices up in), ``credentials`` inside ``service``.
"""
