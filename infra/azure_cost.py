"""Azure's budget and alert documents for the stack (pure: names, amounts and addresses in, dicts out).

- The **budget** is a Consumption budget at the subscription, filtered to the stack's two resource groups (the
  host's and the data's), so one amount covers the VM, its disk and IP, and the storage.
- The **notifications** are an activity log alert on the VM: it fires when the VM is deallocated (the idle
  auto-stop and a time limit do that through the VM's identity; a person may too) or evicted (spot), and mails
  through an action group. The host itself cannot post a message to an action group (only alerts can), so the
  training start/finish/stall messages the AWS host publishes to SNS have no Azure counterpart here.
"""

from __future__ import annotations

from datetime import datetime

from infra.azure_roles import VM_DEALLOCATE_ACTION as VM_DEALLOCATE_OPERATION

# What the activity log records when Azure takes a spot VM back (with the Deallocate eviction policy).
VM_EVICT_OPERATION = "Microsoft.Compute/virtualMachines/evictSpotVM/action"
ACTION_GROUP_SHORT_NAME = "deepracer"  # at most 12 characters; the sender's name in the e-mails

# E-mails at 80% and 100% of the actual month's cost, and when the forecast passes 100%.
BUDGET_ALERTS = (("Actual", 80.0), ("Actual", 100.0), ("Forecasted", 100.0))


def budget_notifications(emails: tuple[str, ...]) -> dict[str, dict]:
    return {f"{kind}_GreaterThan_{percent:.0f}_Percent": {
        "enabled": True, "operator": "GreaterThan", "threshold": percent, "threshold_type": kind,
        "contact_emails": list(emails)} for kind, percent in BUDGET_ALERTS}


def budget_filter(resource_groups: list[str]) -> dict:
    return {"dimensions": {"name": "ResourceGroupName", "operator": "In", "values": list(resource_groups)}}


def budget_start(now: datetime) -> str:
    """Azure wants the first day of the current month (a start in the past must lie in the current month)."""
    return f"{now:%Y-%m}-01T00:00:00Z"


def vm_stopped_condition() -> dict:
    """The activity log entries of this VM's deallocation or eviction, once they succeeded."""
    return {"all_of": [
        {"field": "category", "equals": "Administrative"},
        {"field": "status", "equals": "Succeeded"},
        {"any_of": [{"field": "operationName", "equals": VM_DEALLOCATE_OPERATION},
                    {"field": "operationName", "equals": VM_EVICT_OPERATION}]},
    ]}


def email_receivers(emails: tuple[str, ...]) -> list[dict]:
    return [{"name": f"email-{n}", "email_address": email, "use_common_alert_schema": True}
            for n, email in enumerate(emails, start=1)]
