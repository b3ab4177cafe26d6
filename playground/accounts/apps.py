from __future__ import annotations

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "playground.accounts"
    label = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        from playground.audit import connect_admin_log

        connect_admin_log()
