"""E-mail notifications of a run's events (training started, finished, stopped by a spot interruption, the time
limit or the idle stop) through the stack's SNS topic, with the instance role (`sns:Publish` on that topic only).

Only when system.env names a topic (DR_NOTIFY_TOPIC_ARN, AWS stacks with `notifications: true`). A notification
is a courtesy: failing to send one is said and never stops what the caller was doing.
"""

from __future__ import annotations

from session.core import console
from session.core.config import SystemConfig
from session.core.console import Say

SUBJECT_LIMIT = 100  # SNS: the e-mail subject, ASCII without line breaks


def subject_line(text: str) -> str:
    clean = " ".join(text.encode("ascii", "replace").decode().split())
    return clean if len(clean) <= SUBJECT_LIMIT else clean[:SUBJECT_LIMIT - 3] + "..."


def notify(system: SystemConfig, event: str, prefix: str, details: str = "", *, say: Say = console.say,
           client=None) -> bool:
    """Publishes `DeepRacer: <event> (<prefix>)`; True when sent, False when off or failed (said)."""
    topic = system.notify_topic_arn
    if not topic:
        return False
    try:
        if client is None:
            import boto3

            client = boto3.client("sns", region_name=system.aws_app_region)
        client.publish(TopicArn=topic, Subject=subject_line(f"DeepRacer: {event} ({prefix})"),
                       Message=f"{event}: {prefix}\n\n{details}".strip() + "\n")
        return True
    except Exception as error:  # noqa: BLE001 - any failure: the caller's work goes on
        say(f"warning: could not send the '{event}' notification to {topic}: {error}")
        return False
