from __future__ import annotations

from django.contrib import admin

from .models import Profile


@admin.register(Profile)
class ProfileAdmin(admin.ModelAdmin):
    list_display = ("user", "display_name", "is_guest", "is_instructor")
    list_filter = ("is_guest", "is_instructor")
    search_fields = ("user__username", "display_name")
