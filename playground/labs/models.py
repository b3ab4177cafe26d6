"""Labs (imported from lab folders), their steps, each learner's progress, and
the link from a sandbox session to the lab it was started for."""
from __future__ import annotations

from django.conf import settings
from django.db import models

from playground.sessions.models import Session


class Lab(models.Model):
    class Difficulty(models.TextChoices):
        BEGINNER = "beginner"
        INTERMEDIATE = "intermediate"
        ADVANCED = "advanced"

    slug = models.SlugField(max_length=64, unique=True)
    title = models.CharField(max_length=120)
    summary = models.TextField()
    duration = models.PositiveIntegerField(help_text="About how long it takes, in minutes.")
    difficulty = models.CharField(max_length=16, choices=Difficulty.choices)
    tags = models.JSONField(default=list, blank=True)
    intro = models.TextField(blank=True, help_text="Markdown.")
    finish = models.TextField(blank=True, help_text="Markdown.")
    environment = models.JSONField(
        default=dict, blank=True,
        help_text='{"instances": [{"name", "image", "assets"}], "template": "", "assets_path": "/root"}',
    )
    assets = models.JSONField(default=dict, blank=True, help_text="Relative path -> {data (base64), executable}.")
    setup = models.TextField(blank=True, help_text="Script run in the background when a session starts.")
    setup_instance = models.CharField(max_length=63, blank=True)
    setup_timeout = models.FloatField(null=True, blank=True)
    auto_check = models.BooleanField(default=False)
    skippable = models.BooleanField(default=False, help_text="Learners may skip steps (each step may say otherwise).")
    # Drafts are not listed: check_lab imports a lab under a draft slug of its own.
    draft = models.BooleanField(default=False)
    source = models.CharField(max_length=500, blank=True, help_text="The folder it was imported from.")
    digest = models.CharField(max_length=64, blank=True, help_text="Hash of the imported content.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["title"]

    def __str__(self) -> str:
        return self.title

    @property
    def instance_names(self) -> list[str]:
        return [item["name"] for item in self.environment.get("instances", [])]

    @property
    def default_instance(self) -> str:
        names = self.instance_names
        return names[0] if names else ""


class Step(models.Model):
    lab = models.ForeignKey(Lab, on_delete=models.CASCADE, related_name="steps")
    number = models.PositiveSmallIntegerField(help_text="1-based.")
    title = models.CharField(max_length=120)
    text = models.TextField(help_text="Markdown.")
    instance = models.CharField(max_length=63, blank=True, help_text="Where check and solution run.")
    check_script = models.TextField(blank=True, help_text="Bash; exit code 0 means done.")
    solution = models.TextField(blank=True, help_text="Bash; what a learner would do.")
    hint = models.TextField(blank=True, help_text="Markdown shown when the check fails.")
    timeout = models.FloatField(null=True, blank=True, help_text="Seconds for check and solution.")
    skippable = models.BooleanField(null=True, blank=True, help_text="Blank: the lab's.")

    class Meta:
        ordering = ["lab", "number"]
        constraints = [models.UniqueConstraint(fields=["lab", "number"], name="one_step_per_number")]

    def __str__(self) -> str:
        return f"{self.lab.slug} step {self.number}: {self.title}"

    @property
    def may_be_skipped(self) -> bool:
        """Skippable (its own say, else the lab's) and with a solution to run."""
        allowed = self.lab.skippable if self.skippable is None else self.skippable
        return bool(allowed and self.solution)


class Progress(models.Model):
    """One learner's way through one lab, across sessions."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="lab_progress")
    lab = models.ForeignKey(Lab, on_delete=models.CASCADE, related_name="progress")
    completed = models.JSONField(default=list, blank=True, help_text="Numbers of the steps whose check passed.")
    skipped = models.JSONField(
        default=list, blank=True,
        help_text="Numbers of the steps skipped (their solution ran, then their check passed); done, not passed.",
    )
    checks_passed = models.PositiveIntegerField(default=0)
    checks_failed = models.PositiveIntegerField(default=0)
    # Failed checks of the current step in a row (a learner who may be stuck).
    failed_in_a_row = models.PositiveIntegerField(default=0)
    last_check_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "lab"], name="one_progress_per_user_and_lab")]

    def __str__(self) -> str:
        return f"{self.user} in {self.lab.slug}: {len(self.completed)} step(s) done"


class LabRun(models.Model):
    """A session started for a lab, and its background set-up."""

    class Setup(models.TextChoices):
        NONE = "none"
        PENDING = "pending"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    class Skip(models.TextChoices):
        NONE = "none"
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    session = models.OneToOneField(Session, on_delete=models.CASCADE, primary_key=True, related_name="lab_run")
    lab = models.ForeignKey(Lab, on_delete=models.CASCADE, related_name="runs")
    setup_state = models.CharField(max_length=16, choices=Setup.choices, default=Setup.PENDING)
    setup_output = models.TextField(blank=True)
    setup_finished_at = models.DateTimeField(null=True, blank=True)
    # Skipping to a step (the learner's "Skip to step N", an instructor's
    # fast-forward): one job at a time per session, claimed on this row.
    skip_state = models.CharField(max_length=16, choices=Skip.choices, default=Skip.NONE)
    skip_to = models.PositiveSmallIntegerField(null=True, blank=True)
    skip_by = models.CharField(max_length=16, blank=True, help_text="learner or instructor")
    skip_message = models.CharField(max_length=200, blank=True, help_text="What the job is doing, or did.")
    skip_output = models.TextField(blank=True, help_text="The output of the script that failed.")
    skip_queued_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.lab.slug} in session {self.session_id}"
