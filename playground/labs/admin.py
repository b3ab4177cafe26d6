from __future__ import annotations

from django.contrib import admin
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from .markdown import render
from .models import Lab, LabRun, Progress, Step

PREVIEW_STYLE = "max-width:48rem;border:1px solid #ccc;padding:0 1rem;background:#fff"


def _preview(markdown: str, instance: str = "") -> str:
    # render() escapes raw HTML and refuses unsafe links: its output is safe.
    return format_html('<div style="{}">{}</div>', PREVIEW_STYLE, mark_safe(render(markdown, instance=instance)))


class StepInline(admin.StackedInline):
    model = Step
    extra = 0
    fields = ("number", "title", "instance", "text", "check_script", "solution", "hint", "timeout")


@admin.register(Lab)
class LabAdmin(admin.ModelAdmin):
    list_display = ("slug", "title", "difficulty", "duration", "draft", "updated_at")
    list_filter = ("difficulty", "draft")
    search_fields = ("slug", "title", "summary")
    readonly_fields = ("intro_preview", "finish_preview", "steps_preview", "source", "digest", "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("slug", "title", "summary", "duration", "difficulty", "tags", "auto_check", "draft")}),
        ("Texts", {"fields": ("intro", "intro_preview", "finish", "finish_preview", "steps_preview")}),
        ("Environment", {"fields": ("environment", "setup", "setup_instance", "setup_timeout", "assets")}),
        ("Import", {"fields": ("source", "digest", "created_at", "updated_at")}),
    )
    inlines = [StepInline]

    @admin.display(description="Intro (preview)")
    def intro_preview(self, lab: Lab) -> str:
        return _preview(lab.intro, lab.default_instance)

    @admin.display(description="Finish (preview)")
    def finish_preview(self, lab: Lab) -> str:
        return _preview(lab.finish, lab.default_instance)

    @admin.display(description="Steps (preview)")
    def steps_preview(self, lab: Lab) -> str:
        parts = [
            format_html("<h3>{}. {}</h3>{}", step.number, step.title, _preview(step.text, step.instance))
            for step in lab.steps.all()
        ]
        return mark_safe("".join(parts))


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
