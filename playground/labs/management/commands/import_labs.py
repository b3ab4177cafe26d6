"""manage.py import_labs PATH...: import (or update in place) lab folders."""
from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from playground.labs import actions
from playground.labs.loader import LabInvalid, find_labs, load_lab


class Command(BaseCommand):
    help = (
        "Import lab folders (a folder with lab.yaml, or a folder of such folders, like labs/). "
        "Idempotent: a lab already there is updated in place and learners' progress is kept. "
        "Nothing is imported when any lab is invalid."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("paths", nargs="+", metavar="PATH")

    def handle(self, *args, paths: list[str], **options) -> None:
        folders = find_labs(paths)
        if not folders:
            raise CommandError(f"no lab folder (a folder with lab.yaml) in: {' '.join(paths)}")
        loaded, problems = [], []
        for folder in folders:
            try:
                loaded.append(load_lab(folder))
            except LabInvalid as exc:
                problems.extend(exc.problems)
        slugs = [lab.slug for lab in loaded]
        for slug in sorted({s for s in slugs if slugs.count(s) > 1}):
            problems.append(f"two labs have the slug {slug!r}")
        if problems:
            for problem in problems:
                self.stderr.write(str(problem))
            raise CommandError(f"{len(problems)} problem(s); nothing imported")
        for lab_def in loaded:
            result = actions.import_lab(lab_def=lab_def)
            style = self.style.SUCCESS if result.status != "unchanged" else (lambda text: text)
            self.stdout.write(style(str(result)))
