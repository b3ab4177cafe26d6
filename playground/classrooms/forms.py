"""The instructor's form for a class: input only; the rules are in actions."""
from __future__ import annotations

from django import forms
from django.db.models import Q

from playground.labs.models import Lab

from . import actions
from .models import Classroom, Organisation

# What <input type="datetime-local"> sends and shows (minutes; the server's timezone).
LOCAL_FORMAT = "%Y-%m-%dT%H:%M"


class LocalDateTimeInput(forms.DateTimeInput):
    input_type = "datetime-local"

    def __init__(self, attrs=None) -> None:
        super().__init__(attrs, format=LOCAL_FORMAT)


def _when(label: str, *, required: bool = True, help_text: str = "") -> forms.DateTimeField:
    return forms.DateTimeField(label=label, required=required, help_text=help_text, widget=LocalDateTimeInput,
                               input_formats=[LOCAL_FORMAT, "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"])


def _count(label: str, *, required: bool = False, minimum: int = 1, maximum: int | None = None,
           help_text: str = "") -> forms.IntegerField:
    # min/max only as hints for the browser: the messages come from the rules in actions.
    attrs = {"min": minimum, **({"max": maximum} if maximum is not None else {})}
    return forms.IntegerField(label=label, required=required, help_text=help_text,
                              widget=forms.NumberInput(attrs=attrs))


class LabChoice(forms.ModelChoiceField):
    def label_from_instance(self, lab: Lab) -> str:
        return f"{lab.title} ({lab.slug})"


class ClassroomForm(forms.Form):
    title = forms.CharField(label="Title", max_length=120)
    lab = LabChoice(label="Lab", queryset=Lab.objects.none(), to_field_name="slug", empty_label=None)
    seats = _count("Seats", required=True, maximum=actions.CLASS_MAX_SEATS,
                   help_text="How many learners may join.")
    starts_at = _when("Starts")
    ends_at = _when("Ends")
    join_code_expires_at = _when("Join code expires", required=False, help_text="Blank: when the class ends.")
    join_code_max_uses = _count("Join code uses", help_text="Blank: no maximum.")
    invite_expires_at = _when("Invite link expires", required=False, help_text="Blank: when the class ends.")
    invite_max_uses = _count("Invite link uses", help_text="Blank: no maximum.")
    max_instances = _count("Instances per learner", maximum=actions.CLASS_MAX_INSTANCES,
                           help_text="Blank: the playground's default.")
    session_lifetime = _count("Session lifetime (minutes)", maximum=actions.CLASS_MAX_LIFETIME // 60,
                              help_text="Blank: the playground's default; sessions end with the class anyway.")
    organisation = forms.ModelChoiceField(label="Organisation", queryset=Organisation.objects.none(),
                                          required=False, empty_label="None (no shared quota)")

    def __init__(self, *args, user, classroom: Classroom | None = None, **kwargs) -> None:
        self.classroom = classroom
        if classroom is not None:
            kwargs.setdefault("initial", self.initial_of(classroom))
        super().__init__(*args, **kwargs)
        labs = Q(draft=False)
        if classroom is not None:
            labs |= Q(pk=classroom.lab_id)  # even if it has become a draft since
        self.fields["lab"].queryset = Lab.objects.filter(labs).order_by("title")
        if classroom is not None and classroom.learners.exists():
            self.fields["lab"].disabled = True
            self.fields["lab"].help_text = "Learners have joined: the lab can no longer change."
        organisations = Q(instructors=user)
        if classroom is not None and classroom.organisation_id:
            organisations |= Q(pk=classroom.organisation_id)
        choices = Organisation.objects.filter(organisations).distinct().order_by("name")
        if choices.exists():
            self.fields["organisation"].queryset = choices
        else:
            del self.fields["organisation"]  # nothing to choose: the class's own stays as it is

    @staticmethod
    def initial_of(classroom: Classroom) -> dict:
        initial = {field: getattr(classroom, field) for field in (
            "title", "seats", "starts_at", "ends_at", "join_code_expires_at", "join_code_max_uses",
            "invite_expires_at", "invite_max_uses", "max_instances", "organisation")}
        initial["lab"] = classroom.lab.slug
        initial["session_lifetime"] = classroom.session_lifetime // 60 if classroom.session_lifetime else None
        return initial

    def action_kwargs(self) -> dict:
        """The cleaned fields as actions.create_classroom / update_classroom take them."""
        data = dict(self.cleaned_data)
        data["lab"] = data["lab"].slug
        if data.get("session_lifetime") is not None:
            data["session_lifetime"] *= 60
        if "organisation" not in self.fields:
            data.pop("organisation", None)
        return data

    def add_rule_errors(self, exc: actions.ClassInvalid) -> None:
        for field, message in exc.errors.items():
            self.add_error(field if field in self.fields else None, message)
