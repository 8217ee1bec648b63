"""Sending the day's alerts through a Prefect notification block, after the nightly.

The messages come from :func:`pipeline.outputs.alerts.day_alerts`. Each is queued in
``<home>/alerts/outbox.jsonl`` and, once the block accepted it, recorded in ``sent.jsonl``:
a rerun of the day sends nothing twice, and a message the block could not deliver is
retried by the next run. A failure here never fails the nightly. Log lines name the block,
never its URL (a webhook URL is often its secret).
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, cast

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from pipeline.outputs.alerts import alerts_dir, day_alerts, queue, record_sent
from schemas.flows import JobPaths

if TYPE_CHECKING:
    from prefect.blocks.abstract import NotificationBlock

    from schemas.alerts import AlertMessage


def _kinds() -> tuple[type[NotificationBlock], ...]:
    from prefect.blocks.notifications import (
        CustomWebhookNotificationBlock,
        MicrosoftTeamsWebhook,
        SendgridEmail,
        SlackWebhook,
    )

    return (CustomWebhookNotificationBlock, SlackWebhook, MicrosoftTeamsWebhook, SendgridEmail)


def load_block(name: str) -> NotificationBlock:
    """The notification block saved on the Prefect server as ``name`` - a custom webhook,
    Slack, Teams or SendGrid email block - or ``<block-type-slug>/<name>`` for any other
    kind. Raises ValueError when there is none."""
    from prefect.blocks.abstract import NotificationBlock
    from prefect.blocks.core import Block

    if "/" in name:
        block = Block.load(name)
        if not isinstance(block, NotificationBlock):
            raise ValueError(f"block {name!r} is not a notification block")
        return block
    for kind in _kinds():
        try:
            return cast("NotificationBlock", kind.load(name))
        except ValueError:
            continue
    raise ValueError(
        f"no notification block named {name!r} on the Prefect server "
        "(create it with: accesswatch alerts setup --webhook-url URL)"
    )


def why_not_sent(e: BaseException) -> str:
    """A failed send in words that hold no URL (an HTTP error's text quotes it)."""
    import httpx
    from prefect.blocks.abstract import NotificationError

    if isinstance(e, httpx.HTTPStatusError):
        return f"the receiver answered HTTP {e.response.status_code}"
    if isinstance(e, NotificationError):
        return "the notification service refused it"
    if isinstance(e, httpx.TimeoutException):
        return "the receiver did not answer in time"
    if isinstance(e, httpx.TransportError):
        return f"the receiver could not be reached ({type(e).__name__})"
    return type(e).__name__


def notify(block: NotificationBlock, message: AlertMessage) -> None:
    """Send one message; raises when the block reports a failure."""
    with block.raise_on_failure():
        block.notify(message.body, subject=message.title, _sync=True)  # type: ignore[call-arg,unused-coroutine]


@task(name="send-alerts", task_run_name="send-alerts-{day}", cache_policy=NO_CACHE)
def send_alerts(paths: JobPaths, day: date) -> dict[str, int]:
    """Queue ``day``'s alerts and send every queued one not sent yet. Returns counts."""
    logger = get_run_logger()
    s = paths.settings()
    a = s.alerts
    counts = {"queued": 0, "sent": 0, "failed": 0}
    if not a.enabled:
        logger.info("alerts are off ([alerts] enabled = false): nothing composed or sent")
        return counts
    pending = queue(s, day_alerts(s, day))
    counts["queued"] = len(pending)
    if not pending:
        logger.info("alerts: nothing new to send for %s", day)
        return counts
    outbox = alerts_dir(s)
    try:
        block = load_block(a.block)
    except Exception as e:  # a server without the block, or unreachable: never fail the run
        logger.warning(
            "alerts not sent: notification block %r could not be loaded (%s); %d alert(s) "
            "stay queued in %s for the next run",
            a.block, str(e) if isinstance(e, ValueError) else type(e).__name__,
            len(pending), outbox,
        )  # fmt: skip
        counts["failed"] = len(pending)
        return counts
    for message in pending:
        try:
            notify(block, message)
        except Exception as e:
            counts["failed"] += 1
            logger.warning(
                "alert %s not sent through block %r: %s; it stays queued for the next run",
                message.key, a.block, why_not_sent(e),
            )  # fmt: skip
            continue
        record_sent(s, message.key, a.block)
        counts["sent"] += 1
    logger.info(
        "alerts for %s: %d sent, %d still queued (block %r)",
        day, counts["sent"], counts["failed"], a.block,
    )  # fmt: skip
    return counts
