"""manage.py export_lab SLUG FOLDER: write a lab of the catalogue out as a lab
folder (lab.yaml, Markdown, scripts, assets/), admin edits included."""
from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from playground.labs.export import ExportFailed, export_lab
from playground.labs.models import Lab


class Command(BaseCommand):
    help = (
        "Write a lab (as imported, edited in the admin, or converted from a KillerCoda scenario) into FOLDER "
        "in the project's lab format, check that it reads back the same, and make FOLDER the lab's source: "
        "import_labs FOLDER then says unchanged."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("slug", metavar="SLUG")
        parser.add_argument("folder", metavar="FOLDER", help="a new or empty folder")
        parser.add_argument("--replace", action="store_true",
                            help="write over a lab folder exported before (its lab.yaml, pages, steps/, assets/)")

    def handle(self, *args, slug: str, folder: str, replace: bool, **options) -> None:
        lab = Lab.objects.filter(slug=slug).first()
        if lab is None:
            raise CommandError(f"no lab with the slug {slug!r}")
        try:
            result = export_lab(lab=lab, folder=folder, replace=replace)
        except ExportFailed as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(self.style.SUCCESS(str(result)))
