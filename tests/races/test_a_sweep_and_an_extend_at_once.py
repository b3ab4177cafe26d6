"""The expiry sweep and the owner's extend on a session that is due, at the
same moment: the session is either extended (and stays) or expired (and the
extend is refused), never extended and then torn down."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from playground.errors import SessionOver
from playground.sessions import actions, hosts
from playground.sessions.models import Session
from tests.races.racing import ROUNDS, race

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_due_session_extended_as_the_sweep_runs_is_extended_or_expired_never_both(django_user_model):
    hosts.probe("fake://lab1")
    for round_ in range(ROUNDS):
        session = actions.start_session(user=django_user_model.objects.create_user(f"owner-{round_}"))
        # Its lifetime ran out a moment ago; it is not idle.
        Session.objects.filter(id=session.id).update(expires_at=timezone.now() - timedelta(seconds=1),
                                                     last_activity_at=timezone.now())
        session.refresh_from_db()

        sweep, extend = race(actions.expire_due_sessions, lambda s=session: actions.extend_session(session=s))

        assert sweep.error is None, sweep.error
        session.refresh_from_db()
        expired = session.id in sweep.value
        if extend.error is None:
            assert not expired, f"round {round_}: extended, and then expired by the sweep"
            assert session.is_live and session.extensions == 1 and session.expires_at > timezone.now()
        else:
            assert isinstance(extend.error, SessionOver), extend.error
            assert expired and session.state == Session.State.EXPIRED and session.extensions == 0
