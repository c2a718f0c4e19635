"""``cityweave simulate``: thousands of virtual devices speaking real vendor payloads over MQTT."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

console = Console()


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate)


def simulate(
    broker: Annotated[str | None, typer.Option(
        help="MQTT broker URL, mqtt://\\[user:pass@]host\\[:port] or mqtts://; "
             "default CITYWEAVE_MQTT_URL, else mqtt://127.0.0.1:1883")] = None,
    households: Annotated[int | None, typer.Option(
        min=1, help="simulate this many invented households (default: the demo district's)")] = None,
    demo: Annotated[bool, typer.Option(
        "--demo", help="the occupied households of the demo district (the default)")] = False,
    rate: Annotated[float, typer.Option(min=0.001, help="messages per second to publish")] = 100.0,
    speed: Annotated[float, typer.Option(
        min=0.0, help="simulated seconds per real second (60: one simulated hour per minute)")] = 1.0,
    duration: Annotated[float | None, typer.Option(
        min=0.0, help="stop after this many seconds (default: until Ctrl-C)")] = None,
    messages: Annotated[int | None, typer.Option(min=1, help="stop after this many messages")] = None,
    seed: Annotated[int, typer.Option(help="seed of the fleet and its behaviour: same seed, same messages")] = 1,
    announce: Annotated[bool, typer.Option(
        "--announce", help="first publish the devices' discovery messages (retained)")] = False,
    qos: Annotated[int, typer.Option(min=0, max=1, help="MQTT QoS of the device messages (0 or 1)")] = 0,
    start: Annotated[datetime | None, typer.Option(
        help="simulated start time, e.g. 2026-03-02T18:00:00+08:00 (default: now)")] = None,
    alarms: Annotated[float, typer.Option(
        min=0.0, help="multiply the rates of smoke, gas, leak, SOS and fall events (100: a lively demo)",
    )] = 1.0,
    respond: Annotated[bool, typer.Option(
        "--respond/--no-respond", help="answer the commands sent to the devices, as the real ones do")] = True,
) -> None:
    """Run virtual devices (Zigbee2MQTT, Tasmota, Shelly, Tuya, Home Assistant, native) over MQTT.

    Each household gets lights, metered plugs, door, motion, smoke, gas, leak, climate and an
    energy meter (plus care devices where an elderly person lives alone), with daily routines.
    Ctrl-C stops cleanly and prints what was sent.
    """
    from dataclasses import replace

    from cityweave.simulator.behaviour import CHINA, DEFAULT_CONFIG
    from cityweave.simulator.fleet import (
        VENDORS,
        build_fleet,
        demo_households,
        synthetic_households,
    )
    from cityweave.simulator.runner import RunSummary, default_broker_url
    from cityweave.simulator.runner import simulate as run_simulation

    if demo and households is not None:
        raise typer.BadParameter("give either --households or --demo, not both")
    url = broker or default_broker_url()
    homes = synthetic_households(households, seed) if households is not None else demo_households()
    fleet = build_fleet(homes, seed)
    config = DEFAULT_CONFIG
    if alarms != 1.0:
        config = replace(config, **{name: min(1.0, getattr(config, name) * alarms) for name in (
            "smoke_per_day", "gas_per_day", "leak_per_day", "sos_per_day", "fall_per_day")})
    counts = fleet.counts()
    console.print(f"[bold]{len(fleet.devices):,}[/bold] devices in [bold]{len(fleet.households):,}[/bold] "
                  f"households → {url} at {rate:g} msg/s, speed ×{speed:g}")
    console.print("  " + ", ".join(f"{v} {counts['vendor'][v]:,}" for v in VENDORS if counts["vendor"][v]))
    columns = [SpinnerColumn(), TextColumn("{task.description}")]
    if duration is not None:
        columns.append(BarColumn())
    columns += [TextColumn("{task.fields[sent]:>10,} msgs  {task.fields[rate]:>8.0f}/s  sim {task.fields[sim]}"),
                TimeElapsedColumn()]
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("simulating", total=duration, sent=0, rate=0.0, sim="-")

        def show(summary: RunSummary) -> None:
            sim = summary.sim_now.astimezone(CHINA).strftime("%Y-%m-%d %H:%M CST") if summary.sim_now else "-"
            progress.update(task, completed=summary.elapsed, sent=summary.messages, rate=summary.rate, sim=sim)

        try:
            summary = run_simulation(
                fleet, url, rate=rate, speed=speed, duration=duration, max_messages=messages, qos=qos,
                announce=announce, start=start.astimezone(UTC) if start else None, config=config,
                progress=show, respond=respond)
        except (ConnectionError, ValueError) as exc:
            progress.stop()
            console.print(f"[red]error:[/red] {exc}", highlight=False)
            raise typer.Exit(1) from exc
    _print_summary(summary)


def _print_summary(summary: object) -> None:
    from cityweave.simulator.fleet import VENDORS
    from cityweave.simulator.runner import RunSummary

    assert isinstance(summary, RunSummary)
    table = Table("vendor", "messages", title="sent")
    for vendor in VENDORS:
        if summary.by_vendor[vendor]:
            table.add_row(vendor, f"{summary.by_vendor[vendor]:,}")
    table.add_row("[bold]total[/bold]", f"[bold]{summary.messages:,}[/bold]")
    console.print(table)
    announced = f", {summary.announcements:,} announcements" if summary.announcements else ""
    console.print(f"{summary.messages:,} messages in {summary.elapsed:.1f} s: {summary.rate:,.0f}/s "
                  f"(target {summary.target_rate:g}/s, max lag {summary.max_lag:.2f} s){announced}; "
                  f"stopped by {summary.stopped_by}")
