"""A device simulator: thousands of virtual devices speaking the real vendor payloads over MQTT.

* :mod:`~cityweave.simulator.fleet`: who has which device (seeded, from the demo district or a
  synthetic count), with each device's vendor address and topics;
* :mod:`~cityweave.simulator.behaviour`: what the devices measure at a simulated moment (daily
  routines, load curves, rare alarms), vendor-neutral, as CityWeave capability values;
* :mod:`~cityweave.simulator.payloads`: the vendor encoders (Zigbee2MQTT, Tasmota, Shelly Gen2,
  Tuya, Home Assistant discovery, native) and the announcements a registry discovers;
* :mod:`~cityweave.simulator.runner`: the MQTT publisher (paced, bounded, interruptible), the
  open-loop generator the ingest benchmark imports, and a background runner for the demo.

Nothing here imports the database or the web application.
"""

from __future__ import annotations
