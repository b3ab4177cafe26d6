from __future__ import annotations

from django.contrib import admin

from playground import audit

from . import actions
from .models import Classroom, Learner, Organisation


@admin.register(Organisation)
class OrganisationAdmin(admin.ModelAdmin):
    list_display = ("name", "quota")
    filter_horizontal = ("instructors",)


class LearnerInline(admin.TabularInline):
    model = Learner
    extra = 0
    fields = ("display_name", "user", "session", "hand_raised", "joined_at")
    readonly_fields = fields
    can_delete = False


@admin.register(Classroom)
class ClassroomAdmin(admin.ModelAdmin):
    list_display = ("title", "lab", "organisation", "seats", "starts_at", "ends_at", "join_code", "ended_at")
    list_filter = ("organisation", "lab")
    search_fields = ("title", "join_code")
    readonly_fields = ("id", "invite_token", "join_code_uses", "invite_uses", "created_at", "ended_at")
    filter_horizontal = ("instructors",)
    inlines = [LearnerInline]
    actions = ["end_classes"]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if change:  # a new class is warmed by the periodic task like any other
            actions.changed_by_operator(user=request.user, classroom=obj, fields=list(form.changed_data))

    @admin.action(description="End the selected classes (every session in them ends)")
    def end_classes(self, request, queryset):
        for classroom in queryset:
            actions.end_classroom(classroom=classroom, user=request.user)
        audit.record("admin.classes_ended", user=request.user, count=queryset.count())
