from __future__ import annotations

from django.conf import settings
from django.db import models


class Profile(models.Model):
    """What the playground knows of a user beyond Django's auth fields."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile")
    is_guest = models.BooleanField(default=False, help_text="An anonymous browser's identity.")
    is_instructor = models.BooleanField(default=False, help_text="May create classes.")
    display_name = models.CharField(max_length=80, blank=True)
    # A guest's client address when it last created something: the guests of
    # one address share PLAYGROUND_GUEST_INSTANCES_PER_ADDRESS.
    address = models.GenericIPAddressField(null=True, blank=True, db_index=True,
                                           help_text="A guest's client address (the per-address cap).")

    def __str__(self) -> str:
        return self.display_name or self.user.get_username()
