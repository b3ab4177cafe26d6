"""Two guests of one client address start a session at the same moment with
room for one more instance at that address: one starts, the other is told
the cap is reached; the address never holds more live instances than the cap."""
from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from playground.accounts.models import Profile
from playground.errors import LimitReached
from playground.sessions import actions
from playground.sessions.models import Instance
from tests.races.racing import ROUNDS, race

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_last_instance_of_an_address_goes_to_one_of_two_guests_at_once(settings):
    settings.PLAYGROUND_GUEST_INSTANCES_PER_ADDRESS = 1
    users = get_user_model().objects
    for round_ in range(ROUNDS):
        address = f"203.0.113.{round_ + 1}"
        guests = []
        for n in (1, 2):
            user = users.create_user(f"guest-{round_}-{n}")
            Profile.objects.create(user=user, is_guest=True, address=address)
            guests.append(user)

        outcomes = race(*(lambda user=user: actions.start_session(user=user, address=address) for user in guests))  # noqa: B023 - raced at once, in this round

        live = Instance.objects.filter(session__owner__in=guests, state__in=actions.LIVE_INSTANCE_STATES).count()
        assert live == 1, f"round {round_}: {live} live instances at an address capped at 1"
        errors = [o.error for o in outcomes]
        assert sum(e is None for e in errors) == 1, f"round {round_}: {errors}"
        assert any(isinstance(e, LimitReached) for e in errors), f"round {round_}: {errors}"
