"""Lab progress changes reach the class dashboards (labs knows nothing of classes)."""
from __future__ import annotations

from django.db.models.signals import post_save
from django.dispatch import receiver

from playground.labs.models import Progress

from . import actions


@receiver(post_save, sender=Progress, dispatch_uid="classrooms-progress")
def progress_saved(sender, instance: Progress, **kwargs) -> None:
    actions.notify_classes_of(user=instance.user, lab_id=instance.lab_id)
