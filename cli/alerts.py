"""``accesswatch alerts``: set up the notification block, send a test, preview a day."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer

from cli.options import ConfigOpt, DayOpt, HomeOpt, console, fail, parse_day, settings
from pipeline.outputs.safe_text import line, text

alerts_app = typer.Typer(
    help="Alerts after the nightly, through a Prefect notification block (docs/operations.md).",
    no_args_is_help=True,
)

NameOpt = Annotated[
    str | None,
    typer.Option(
        "--name", help="Block name (default: the [alerts] block setting, accesswatch-alerts)."
    ),
]


def _api_url() -> str:
    """The Prefect server the block lives on, or exit 2: without one, Prefect would save it
    in a temporary server that is gone when the command ends."""
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    if not url:
        fail(
            "PREFECT_API_URL is not set: the notification block is kept on the Prefect server "
            "the nightly runs against; set PREFECT_API_URL=http://HOST:4200/api and run again"
        )
    return url


def _block_name(name: str | None, config: Path | None) -> str:
    return name or settings(config).alerts.block


@alerts_app.command("setup")
def setup_cmd(
    webhook_url: Annotated[
        str,
        typer.Option(
            "--webhook-url",
            help="Where alerts are posted. Kept in the block on the Prefect server (as a "
            "secret for slack and teams), never printed or logged.",
        ),
    ],
    kind: Annotated[
        str,
        typer.Option(
            "--kind",
            help='webhook: a JSON POST {"subject": ..., "body": ...} to any URL; slack: a '
            "Slack incoming webhook; teams: a Microsoft Teams incoming webhook.",
        ),
    ] = "webhook",
    name: NameOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Save the notification block the nightly sends alerts through, on the Prefect server
    in PREFECT_API_URL (exit 2 without one). Replaces a block of the same name. Alerts are
    sent once [alerts] enabled = true (or ACCESSWATCH_ALERTS__ENABLED=true)."""
    if kind not in ("webhook", "slack", "teams"):
        fail(f"--kind must be webhook, slack or teams, got {kind!r}")
    server = _api_url()
    block_name = _block_name(name, config)
    from prefect.blocks.core import Block
    from prefect.blocks.notifications import (
        CustomWebhookNotificationBlock,
        MicrosoftTeamsWebhook,
        SlackWebhook,
    )
    from pydantic import ValidationError

    block: Block
    parts = urlsplit(webhook_url)
    try:
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("it must start http:// or https:// and name a host")
        if kind == "webhook":
            block = CustomWebhookNotificationBlock(
                name=block_name,
                url=webhook_url,
                json_data={"subject": "{{subject}}", "body": "{{body}}"},
            )
        elif kind == "slack":
            block = SlackWebhook(url=webhook_url)
        else:
            block = MicrosoftTeamsWebhook(url=webhook_url)
    except ValueError as e:  # never str(e) of a ValidationError: it quotes the URL
        why = e.errors()[0]["msg"] if isinstance(e, ValidationError) else str(e)
        fail(f"--webhook-url is not a valid URL for a {kind} block: {why}")
    try:
        block_id = block.save(block_name, overwrite=True)
    except Exception as e:  # an unreachable server, a refused save: one line, no URL
        fail(f"could not save block {block_name!r} on {server}: {type(e).__name__}", code=1)
    slug = block.get_block_type_slug()
    console.print(
        line(f"saved {kind} notification block {slug}/{block_name} (id {block_id}) on {server}"),
        highlight=False,
        soft_wrap=True,
    )


@alerts_app.command("test")
def test_cmd(name: NameOpt = None, config: ConfigOpt = None) -> None:
    """Send one test message through the block (exit 1 when it is not delivered, 2 without
    PREFECT_API_URL). Sends no alert and records nothing."""
    from datetime import UTC, date, datetime

    from flows.alerts import load_block, notify, why_not_sent
    from schemas.alerts import AlertKind, AlertMessage

    _api_url()
    block_name = _block_name(name, config)
    try:
        block = load_block(block_name)
    except ValueError as e:
        fail(str(e), code=1)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    message = AlertMessage(
        key=f"test:{now}",
        kind=AlertKind.digest,
        day=date.today(),
        title="accesswatch: test alert",
        body=f"accesswatch test alert, sent {now} by accesswatch alerts test\nalert: test:{now}",
    )
    try:
        notify(block, message)
    except Exception as e:
        fail(f"test alert not delivered through block {block_name!r}: {why_not_sent(e)}", code=1)
    console.print(line(f"test alert sent through block {block_name!r}"), highlight=False)


@alerts_app.command("preview")
def preview_cmd(day: DayOpt, home: HomeOpt = None, config: ConfigOpt = None) -> None:
    """Print the alerts of a day as the nightly would compose them, sending nothing;
    those already sent from this home are marked. Works with alerts off, and offline."""
    from pipeline.outputs.alerts import day_alerts, sent_keys
    from pipeline.rank.listing import NotProfiledError

    effective = settings(config, home=home)
    if not effective.warehouse.exists():
        fail(f"no warehouse at {effective.warehouse}: nothing has been ingested in this home")
    try:
        messages = day_alerts(effective, parse_day(day))
    except NotProfiledError as e:
        fail(str(e))
    sent = sent_keys(effective)
    a = effective.alerts
    state = "on" if a.enabled else "off ([alerts] enabled = false)"
    console.print(
        line(f"{len(messages)} alert(s) for {day}; alerts are {state}, block {a.block!r}"),
        highlight=False,
        soft_wrap=True,
    )
    for m in messages:
        mark = " (already sent)" if m.key in sent else ""
        console.print()
        console.print(line((f"== {m.title}", "bold"), mark), highlight=False, soft_wrap=True)
        console.print(text(m.body, newlines=True), highlight=False, soft_wrap=True)
