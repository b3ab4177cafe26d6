"""Two learners join a class with one seat left at the same moment: one gets
the seat and a session, the other is told the class is full; the class never
holds more learners than seats."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from playground.accounts.actions import create_api_token
from playground.classrooms import actions
from playground.classrooms.models import Learner
from playground.errors import LimitReached
from playground.labs import actions as lab_actions
from playground.labs.loader import load_lab
from tests.races.racing import ROUNDS, race
from tests.unit.labs_helpers import write_lab

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_last_seat_of_a_class_goes_to_one_of_two_learners_joining_at_once(tmp_path):
    lab_actions.import_lab(lab_def=load_lab(write_lab(tmp_path)))
    create_api_token(username="teacher", instructor=True)
    teacher = get_user_model().objects.get(username="teacher")
    users = get_user_model().objects
    now = timezone.now()
    for round_ in range(ROUNDS):
        classroom = actions.create_classroom(user=teacher, title=f"Class {round_}", lab="hello", seats=2,
                                             starts_at=now - timedelta(minutes=1), ends_at=now + timedelta(hours=2))
        actions.join(user=users.create_user(f"first-{round_}"), code=classroom.join_code)
        late = [users.create_user(f"late-{round_}-{n}") for n in (1, 2)]

        code = classroom.join_code
        outcomes = race(*(lambda user=user, code=code: actions.join(user=user, code=code) for user in late))

        assert Learner.objects.filter(classroom=classroom).count() == 2, f"round {round_}: seats exceeded"
        errors = [o.error for o in outcomes]
        assert sum(e is None for e in errors) == 1, f"round {round_}: {errors}"
        assert any(isinstance(e, LimitReached) and "full" in e.message for e in errors), f"round {round_}: {errors}"
