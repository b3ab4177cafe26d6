from __future__ import annotations

from django.contrib import admin

from . import actions
from .models import Instance, LabHost, Session


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


@admin.register(LabHost)
class LabHostAdmin(admin.ModelAdmin):
    """The fleet: cordon or drain a host for maintenance (also ``manage.py lab_hosts``)."""

    list_display = ("url", "state", "note", "live_instances", "changed_at")
    list_filter = ("state",)
    readonly_fields = ("added_at", "changed_at")
    actions = ["cordon", "drain", "activate"]

    @admin.display(description="live instances")
    def live_instances(self, host: LabHost) -> int:
        return Instance.objects.filter(host=host.url, state__in=actions.LIVE_INSTANCE_STATES).count()

    def _set(self, request, queryset, state: str) -> None:
        for host in queryset:
            actions.set_host_state(url=host.url, state=state, note=f"by {request.user} in the admin")
        self.message_user(request, f"{queryset.count()} lab host(s) now {state}.")

    @admin.action(description="Cordon: no new instances; what runs goes on")
    def cordon(self, request, queryset) -> None:
        self._set(request, queryset, LabHost.State.CORDONED)

    @admin.action(description="Drain: as cordon, and move its pooled and warm instances")
    def drain(self, request, queryset) -> None:
        self._set(request, queryset, LabHost.State.DRAINING)

    @admin.action(description="Activate: take new instances again")
    def activate(self, request, queryset) -> None:
        self._set(request, queryset, LabHost.State.ACTIVE)
