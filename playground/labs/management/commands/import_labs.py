"""manage.py import_labs PATH...: import (or update in place) lab folders,
KillerCoda scenario folders and KillerCoda courses."""
from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from playground.labs import actions, killercoda
from playground.labs.loader import LabInvalid, find_labs, load_lab


class Command(BaseCommand):
    help = (
        "Import lab folders (a folder with lab.yaml, or a folder of such folders, like labs/), "
        "KillerCoda scenarios (a folder with index.json) and courses (a folder with structure.json). "
        "Idempotent: a lab already there is updated in place and learners' progress is kept. "
        "Nothing is imported when any lab is invalid or any scenario cannot run here."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("paths", nargs="+", metavar="PATH")

    def handle(self, *args, paths: list[str], **options) -> None:
        problems: list = []
        folders = find_labs(paths)
        scenarios = killercoda.find_scenarios(paths, problems)
        if not folders and not scenarios and not problems:
            raise CommandError(
                f"no lab folder (a folder with lab.yaml) and no KillerCoda scenario (index.json) "
                f"or course (structure.json) in: {' '.join(paths)}"
            )
        loaded, warnings = [], []
        for folder in folders:
            try:
                loaded.append(load_lab(folder))
            except LabInvalid as exc:
                problems.extend(exc.problems)
        for folder, slug in scenarios:
            try:
                scenario = killercoda.load_scenario(folder, slug=slug)
            except killercoda.ScenarioInvalid as exc:
                problems.extend(exc.problems)
                warnings.extend(exc.warnings)
                continue
            loaded.append(scenario.lab)
            warnings.extend(scenario.warnings)
        slugs = [lab.slug for lab in loaded]
        for slug in sorted({s for s in slugs if slugs.count(s) > 1}):
            problems.append(f"two labs have the slug {slug!r}")
        # What the labs run without, then what stops the import.
        for warning in warnings:
            self.stderr.write(self.style.WARNING(str(warning)))
        if problems:
            for problem in problems:
                self.stderr.write(str(problem))
            raise CommandError(f"{len(problems)} problem(s); nothing imported")
        for lab_def in loaded:
            result = actions.import_lab(lab_def=lab_def)
            style = self.style.SUCCESS if result.status != "unchanged" else (lambda text: text)
            self.stdout.write(style(str(result)))
