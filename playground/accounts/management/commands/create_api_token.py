from __future__ import annotations

from django.core.management.base import BaseCommand

from playground.accounts.actions import create_api_token


class Command(BaseCommand):
    help = "Print the API key of USERNAME (creating the user and key if missing)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("--instructor", action="store_true", help="also make the user an instructor")

    def handle(self, *args, username: str, instructor: bool, **options) -> None:
        self.stdout.write(create_api_token(username=username, instructor=instructor))
