"""`dev.py run` calls staff_demo on every fresh machine: it must work (it once did not)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management import call_command

from dmp.support.models import Ticket


def test_staff_demo_creates_staff_and_tickets_once(db, settings, tmp_path):
    settings.DEMO = True
    settings.DATA_DIR = tmp_path
    call_command("staff_demo", "--if-missing")
    assert get_user_model().objects.filter(username__in=["helene.support", "olivier.ops"]).count() == 2
    assert Ticket.objects.count() == 4
    assert (tmp_path / "staff-demo-password.txt").read_text().strip()
    call_command("staff_demo", "--if-missing")
    assert Ticket.objects.count() == 4
