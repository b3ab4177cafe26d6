from __future__ import annotations

from django import forms
from django.contrib import admin, messages

from playground.errors import PlaygroundError

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
    # Its state, host and network follow its containers: only the lifecycle
    # changes them. A row deleted here would leave its containers running
    # until the reconciler found them: "End" tears it down as DELETE does.
    readonly_fields = ("id", "owner", "state", "host", "reason", "created_at", "ended_at", "network_state")
    inlines = [InstanceInline]
    actions = ["end_sessions"]

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_add_permission(self, request) -> bool:
        return False  # sessions start through the API and the pages, with their containers

    @admin.action(description="End the selected sessions (their containers and network are removed)")
    def end_sessions(self, request, queryset) -> None:
        ended = 0
        for session in queryset.filter(state__in=Session.LIVE_STATES):
            try:
                actions.end_session(session=session, reason=f"ended by an operator ({request.user})")
                ended += 1
            except PlaygroundError as exc:
                self.message_user(request, f"{session.id}: {exc.message}", messages.ERROR)
        self.message_user(request, f"{ended} session(s) ended.")


@admin.register(Instance)
class InstanceAdmin(admin.ModelAdmin):
    list_display = ("id", "hostname", "session", "image", "state", "ip", "host")
    list_filter = ("state", "image", "host")
    search_fields = ("id", "session__id")
    # What the engine and the lifecycle say: shown, never edited by hand (an
    # instance the API reports must be what its container is).
    readonly_fields = ("id", "session", "hostname", "image", "state", "ip", "host", "reason", "created_at",
                       "driver_state")

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # its session's "End" removes it with its container


class LabHostForm(forms.ModelForm):
    """A host added here must answer, as ``lab_hosts add`` checks (its
    address, the TLS settings a network host needs)."""

    class Meta:
        model = LabHost
        fields = ("url", "note")

    def clean_url(self) -> str:
        url = self.cleaned_data["url"].strip()
        if self.instance._state.adding:
            try:
                actions.check_new_host(url=url)
            except PlaygroundError as exc:
                raise forms.ValidationError(exc.message) from exc
        return url


@admin.register(LabHost)
class LabHostAdmin(admin.ModelAdmin):
    """The fleet: add a host, cordon or drain it for maintenance, remove it
    once nothing of ours runs there (also ``manage.py lab_hosts``): through
    the same actions and checks as the command."""

    form = LabHostForm
    list_display = ("url", "state", "note", "live_instances", "changed_at")
    list_filter = ("state",)
    readonly_fields = ("state", "added_at", "changed_at")
    actions = ["cordon", "drain", "activate", "remove"]

    def get_readonly_fields(self, request, obj=None):
        return (*self.readonly_fields, "url") if obj is not None else self.readonly_fields

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # "Remove" refuses a host that still runs instances

    def save_model(self, request, obj, form, change) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        host = actions.add_host(url=obj.url)
        if obj.note:
            LabHost.objects.filter(pk=host.pk).update(note=obj.note)
        obj.pk = host.pk

    @admin.action(description="Remove: forget hosts that run nothing of ours (drain them first)")
    def remove(self, request, queryset) -> None:
        for host in queryset:
            try:
                actions.remove_host(url=host.url)
                self.message_user(request, f"{host.url} removed.")
            except PlaygroundError as exc:
                self.message_user(request, exc.message, messages.ERROR)

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
