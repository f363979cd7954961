"""An example river-supervisor plugin: two job kinds and one schedule.

``billing.charge`` charges one customer. It shows the three ways a handler ends a job besides
returning: raising an error (retried with backoff, up to ``max_attempts``), ``JobSnooze`` (try
again later without using an attempt) and ``JobCancel`` (give up for good).

``billing.send_reminders`` runs every morning at 08:00 Berlin time; it is async to show that
``async def`` handlers work (each job runs on its own event loop), and it stops early when the
job is cancelled from outside.
"""

from __future__ import annotations

import asyncio
from typing import Any

from river_supervisor import Job, JobCancel, JobSnooze, Plugin

plugin = Plugin("billing")

# Stand-ins for your real services.
BALANCES: dict[int, int] = {}
PAYMENT_PROVIDER_UP = True


class PaymentDeclined(Exception):
    pass


@plugin.job("billing.charge", queue="default", max_attempts=10, timeout=60)
def charge(job: Job) -> dict[str, Any]:
    customer = job.args.get("customer")
    amount = job.args.get("amount_cents")
    if not isinstance(customer, int) or not isinstance(amount, int) or amount <= 0:
        # Bad args never get better: don't retry them.
        raise JobCancel(f"invalid args: customer={customer!r} amount_cents={amount!r}")
    if not PAYMENT_PROVIDER_UP:
        # Known outage: come back in five minutes without spending an attempt.
        raise JobSnooze(300)
    if amount > 1_000_000:
        # Any other exception: the job is retried with backoff and the error is recorded.
        raise PaymentDeclined(f"customer {customer}: {amount} cents exceeds the limit")
    BALANCES[customer] = BALANCES.get(customer, 0) + amount
    return {"customer": customer, "charged_cents": amount, "attempt": job.attempt}


@plugin.job("billing.send_reminders", max_attempts=3, timeout="10m")
async def send_reminders(job: Job) -> dict[str, int]:
    sent = 0
    for _customer in range(job.args.get("batch", 100)):
        if job.cancel_requested():
            raise JobCancel(f"cancelled after {sent} reminders")
        await asyncio.sleep(0)  # e.g. await an async mail client here
        sent += 1
    return {"sent": sent}


# Shipped with the plugin: every host with this version has exactly this schedule.
plugin.periodic(
    "billing.send_reminders",
    id="billing-reminders-morning",
    cron="0 8 * * *",
    timezone="Europe/Berlin",
    args={"batch": 500},
    missed="latest",  # after an outage, send one batch, not one per missed morning
)
