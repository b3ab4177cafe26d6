"""Lab progress changes reach the class dashboards (labs knows nothing of classes)."""
from __future__ import annotations

from django.db.models.signals import post_save
from django.dispatch import receiver

from playground.labs.models import Progress
from playground.labs.signals import skip_changed

from . import actions


@receiver(post_save, sender=Progress, dispatch_uid="classrooms-progress")
def progress_saved(sender, instance: Progress, **kwargs) -> None:
    actions.notify_classes_of(user=instance.user, lab_id=instance.lab_id)


@receiver(skip_changed, dispatch_uid="classrooms-skip")
def skip_changed_in_a_session(sender, user_id: int, lab_id: int, **kwargs) -> None:
    # A skip job's progress ("skipping step 2...") is on the roster too.
    actions.notify_classes_of(user=user_id, lab_id=lab_id)
