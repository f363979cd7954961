"""Tests for the example plugin: handlers run inline with river_supervisor.testing, no database."""

from __future__ import annotations

import my_billing
import pytest
from river_supervisor import JobCancel, JobSnooze
from river_supervisor.plugins import call_handler
from river_supervisor.testing import make_job, run_job


def test_charge_adds_to_the_balance():
    result = run_job(my_billing.plugin, "billing.charge", {"customer": 7, "amount_cents": 1250})
    assert result == {"customer": 7, "charged_cents": 1250, "attempt": 1}
    assert my_billing.BALANCES[7] >= 1250


def test_invalid_args_cancel_the_job():
    with pytest.raises(JobCancel, match="invalid args"):
        run_job(my_billing.plugin, "billing.charge", {"customer": "seven"})


def test_outage_snoozes(monkeypatch):
    monkeypatch.setattr(my_billing, "PAYMENT_PROVIDER_UP", False)
    with pytest.raises(JobSnooze) as info:
        run_job(my_billing.plugin, "billing.charge", {"customer": 7, "amount_cents": 1})
    assert info.value.seconds == 300


def test_decline_raises_so_the_job_is_retried():
    with pytest.raises(my_billing.PaymentDeclined):
        run_job(my_billing.plugin, "billing.charge", {"customer": 7, "amount_cents": 2_000_000}, attempt=2)


def test_reminders_are_async_and_stop_on_cancel():
    assert run_job(my_billing.plugin, "billing.send_reminders", {"batch": 3}) == {"sent": 3}
    job = make_job("billing.send_reminders", {"batch": 3})
    job.request_cancel()
    with pytest.raises(JobCancel, match="cancelled after 0 reminders"):
        call_handler(my_billing.send_reminders, job)


def test_the_plugin_ships_one_schedule():
    (schedule,) = my_billing.plugin.periodic_decls
    assert (schedule.id, schedule.kind, schedule.cron) == (
        "billing-reminders-morning",
        "billing.send_reminders",
        "0 8 * * *",
    )
