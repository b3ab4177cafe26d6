from __future__ import annotations

from django import forms
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


class ClassroomForm(forms.ModelForm):
    """The admin's class form checks what the API checks (its end after its
    start, no fewer seats than learners joined, ...), each error beside its
    field; ``operator`` is the admin user (set by ClassroomAdmin.get_form)."""

    operator = None

    class Meta:
        model = Classroom
        fields = "__all__"

    def clean(self):
        data = super().clean()
        if self.errors or data.get("lab") is None:
            return data  # the fields' own errors first
        existing = self.instance if self.instance.pk and not self.instance._state.adding else None
        try:
            actions.check_operator_fields(
                user=self.operator, classroom=existing, title=data.get("title") or "", lab=data["lab"].slug,
                seats=data["seats"], starts_at=data["starts_at"], ends_at=data["ends_at"],
                organisation=data.get("organisation"),
                optional={name: data.get(name) for name in actions.OPTIONAL_FIELDS if name in self.fields})
        except actions.ClassInvalid as exc:
            for field, message in exc.errors.items():
                self.add_error(field if field in self.fields else None, message)
        except actions.ClassClosed as exc:
            raise forms.ValidationError(exc.message) from exc
        return data


@admin.register(Classroom)
class ClassroomAdmin(admin.ModelAdmin):
    list_display = ("title", "lab", "organisation", "seats", "starts_at", "ends_at", "join_code", "ended_at")
    list_filter = ("organisation", "lab")
    search_fields = ("title", "join_code")
    readonly_fields = ("id", "invite_token", "join_code_uses", "invite_uses", "created_at", "ended_at")
    filter_horizontal = ("instructors",)
    inlines = [LearnerInline]
    actions = ["end_classes"]
    form = ClassroomForm

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        return type(form.__name__, (form,), {"operator": request.user})

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if change:  # a new class is warmed by the periodic task like any other
            actions.changed_by_operator(user=request.user, classroom=obj, fields=list(form.changed_data))

    @admin.action(description="End the selected classes (every session in them ends)")
    def end_classes(self, request, queryset):
        for classroom in queryset:
            actions.end_classroom(classroom=classroom, user=request.user)
        audit.record("admin.classes_ended", user=request.user, count=queryset.count())
