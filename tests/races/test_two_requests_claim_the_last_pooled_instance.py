"""Two new sessions at once, one pooled instance ready: the conditional update
in ``_claim_pooled`` hands it to exactly one; the other gets an instance of
its own."""
from __future__ import annotations

import pytest

from playground.sessions import actions, hosts
from playground.sessions.models import Instance
from tests.races.racing import ROUNDS, race

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_last_pooled_instance_goes_to_one_of_two_sessions_started_at_once(settings, django_user_model):
    settings.PLAYGROUND_POOL_IMAGES = {"shell": 1}
    hosts.probe("fake://lab1")
    for round_ in range(ROUNDS):
        actions.fill_pools()
        [pooled] = Instance.objects.filter(session__isnull=True, state=Instance.State.RUNNING)
        users = [django_user_model.objects.create_user(f"learner-{round_}-{n}") for n in (1, 2)]

        outcomes = race(*(lambda user=user: actions.start_session(user=user) for user in users))

        assert [o.error for o in outcomes] == [None, None]
        sessions = [o.value for o in outcomes]
        # Each session has one instance, and the pooled one is in exactly one of them.
        assert [s.instances.count() for s in sessions] == [1, 1], f"round {round_}"
        holders = [s for s in sessions if s.instances.filter(id=pooled.id).exists()]
        assert len(holders) == 1, f"round {round_}: the pooled instance went to {len(holders)} sessions"
