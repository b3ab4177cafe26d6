"""The fleet of lab hosts, for operators:

    manage.py lab_hosts                      list them, with health and what they hold
    manage.py lab_hosts add URL              register one (it must answer); used at once
    manage.py lab_hosts cordon URL [--note]  no new instances there; what runs goes on
    manage.py lab_hosts drain URL [--note]   as cordon, and its pooled and warm instances move
    manage.py lab_hosts activate URL         takes new instances again
    manage.py lab_hosts remove URL           forget one that runs nothing any more
"""
from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from playground.errors import PlaygroundError
from playground.sessions import actions

MiB = 1024 * 1024


def _mib(value: int | None) -> str:
    return "?" if value is None else f"{value // MiB}"


class Command(BaseCommand):
    help = "List, add, cordon, drain, activate or remove lab hosts."

    def add_arguments(self, parser) -> None:
        parser.add_argument("action", nargs="?", default="list",
                            choices=["list", "add", "cordon", "drain", "activate", "remove"])
        parser.add_argument("url", nargs="?")
        parser.add_argument("--note", default="", help="why (shown in the list and the admin)")

    def handle(self, *args, action: str, url: str | None, note: str, **options) -> None:
        if action == "list":
            self._list()
            return
        if not url:
            raise CommandError(f"lab_hosts {action} needs the host's URL (as `lab_hosts` lists it)")
        try:
            if action == "add":
                host = actions.add_host(url=url)
                self.stdout.write(f"{host.url}: {host.state}, taking new instances")
            elif action == "remove":
                actions.remove_host(url=url)
                self.stdout.write(f"{url}: removed")
            else:
                state = {"cordon": "cordoned", "drain": "draining", "activate": "active"}[action]
                host = actions.set_host_state(url=url, state=state, note=note)
                self.stdout.write(f"{host.url}: {host.state}")
        except PlaygroundError as exc:
            raise CommandError(exc.message) from None

    def _list(self) -> None:
        rows = actions.fleet()
        if not rows:
            self.stdout.write("no lab host registered (PLAYGROUND_LAB_HOSTS seeds the list)")
            return
        self.stdout.write(f"{'url':40} {'state':9} {'health':8} {'instances':>9} {'pooled':>6} "
                          f"{'memory MiB (reserved/total/available)':>38} {'CPUs (reserved/total)':>22}")
        for row in rows:
            health = "ok" if row["ok"] else "DOWN"
            memory = f"{_mib(row['memory_reserved'])}/{_mib(row['memory_bytes'])}/{_mib(row['memory_available_bytes'])}"
            cpus = f"{row['cpus_reserved']}/{row['cpus'] if row['cpus'] is not None else '?'}"
            self.stdout.write(f"{row['url']:40} {row['state']:9} {health:8} {row['instances']:>9} {row['pooled']:>6} "
                              f"{memory:>38} {cpus:>22}")
            if row["note"] or row["error"]:
                self.stdout.write(f"    {row['note'] or ''}{' - ' if row['note'] and row['error'] else ''}{row['error']}")
