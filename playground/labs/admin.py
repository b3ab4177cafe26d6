"""The labs in the admin: an instructor edits a lab's Markdown and sees it the
way the player shows it, rendered and sanitised by the player's own renderer
(``markdown.render``), beside each text; the change page says how to try the
lab's folder for real (``manage.py check_lab``)."""
from __future__ import annotations

import shlex

from django.contrib import admin
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from .markdown import render
from .models import Lab, LabRun, Progress, Step

PREVIEW_HELP = "What the player shows, as last saved: “Save and continue editing” refreshes it."


def _preview(markdown: str, instance: str = "") -> SafeString:
    # render() escapes raw HTML and refuses unsafe links: its output is safe.
    return format_html('<div class="lab-preview">{}</div>', mark_safe(render(markdown, instance=instance)))


def _step_preview(step: Step, default_instance: str) -> SafeString:
    instance = step.instance or default_instance
    hint = format_html('<div class="lab-preview-hint"><strong>Hint</strong> {}</div>',
                       mark_safe(render(step.hint, instance=instance))) if step.hint else ""
    return format_html("{}{}", _preview(step.text, instance), hint)


def check_command(lab: Lab) -> str:
    """The command that tries the lab's folder for real, or "" when it has none."""
    return f"python manage.py check_lab {shlex.quote(lab.source)}" if lab.source else ""


class StepInline(admin.StackedInline):
    model = Step
    extra = 0
    fields = ("number", "title", "instance", "text", "preview", "check_script", "solution", "hint", "timeout", "skippable")
    readonly_fields = ("preview",)

    @admin.display(description="Preview")
    def preview(self, step: Step) -> str:
        if step.pk is None:
            return "Saved steps show a preview here."
        return _step_preview(step, step.lab.default_instance)

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("lab")


@admin.register(Lab)
class LabAdmin(admin.ModelAdmin):
    list_display = ("slug", "title", "difficulty", "duration", "draft", "updated_at")
    list_filter = ("difficulty", "draft")
    search_fields = ("slug", "title", "summary")
    readonly_fields = ("intro_preview", "finish_preview", "steps_preview", "source", "digest", "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("slug", "title", "summary", "duration", "difficulty", "tags", "auto_check", "skippable", "draft")}),
        ("Texts", {"fields": ("intro", "intro_preview", "finish", "finish_preview", "steps_preview"),
                   "description": PREVIEW_HELP}),
        ("Environment", {"fields": ("environment", "setup", "setup_instance", "setup_timeout", "assets")}),
        ("Import", {"fields": ("source", "digest", "created_at", "updated_at")}),
    )
    inlines = [StepInline]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        lab = self.get_object(request, object_id)
        extra = {"check_command": check_command(lab) if lab else ""}
        return super().change_view(request, object_id, form_url, extra_context={**extra, **(extra_context or {})})

    @admin.display(description="Intro (preview)")
    def intro_preview(self, lab: Lab) -> str:
        return _preview(lab.intro, lab.default_instance)

    @admin.display(description="Finish (preview)")
    def finish_preview(self, lab: Lab) -> str:
        return _preview(lab.finish, lab.default_instance)

    @admin.display(description="Steps (preview)")
    def steps_preview(self, lab: Lab) -> str:
        if lab.pk is None:
            return ""
        return format_html_join(
            "", '<h3 class="lab-preview-step">{}. {}</h3>{}',
            ((step.number, step.title, _step_preview(step, lab.default_instance)) for step in lab.steps.all()),
        )


@admin.register(Progress)
class ProgressAdmin(admin.ModelAdmin):
    list_display = ("user", "lab", "completed", "checks_passed", "checks_failed", "last_check_at", "finished_at")
    list_filter = ("lab",)
    search_fields = ("user__username", "lab__slug")


@admin.register(LabRun)
class LabRunAdmin(admin.ModelAdmin):
    list_display = ("session", "lab", "setup_state", "setup_finished_at")
    list_filter = ("setup_state", "lab")
    readonly_fields = ("session", "lab", "setup_state", "setup_output", "setup_finished_at")
