from __future__ import annotations

from django.contrib import admin

from .models import Instance, Session


class InstanceInline(admin.TabularInline):
    model = Instance
    extra = 0
    fields = ("hostname", "image", "state", "ip", "reason")
    readonly_fields = fields
    can_delete = False


@admin.register(Session)
class SessionAdmin(admin.ModelAdmin):
    list_display = ("id", "owner", "state", "created_at", "expires_at", "host")
    list_filter = ("state", "host")
    search_fields = ("id", "owner__username")
    readonly_fields = ("id", "created_at", "network_state")
    inlines = [InstanceInline]


@admin.register(Instance)
class InstanceAdmin(admin.ModelAdmin):
    list_display = ("id", "hostname", "session", "image", "state", "ip", "host")
    list_filter = ("state", "image", "host")
    search_fields = ("id", "session__id")
    readonly_fields = ("id", "created_at", "driver_state")
