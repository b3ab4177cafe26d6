"""System checks for settings that each parse but contradict each other
(docs/operations.md, "Checks"). Django's ``manage.py check`` (and
``check --deploy``) and every management command run them; Daphne and the
Celery processes run them at start-up (playground/apps.py), where an error
stops the process and a warning is logged.

Ids: ``playground.E0xx`` (the installation cannot work as configured) and
``playground.W0xx`` (it works, but not as whoever set it meant). Silence a
warning with ``SILENCED_SYSTEM_CHECKS`` only by editing code: each is a real
mistake.
"""
from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

TAG = "playground"
# The lab page reads its session this often (frontend/src/lab.ts); the
# session page more often (every 2 to 5 s).
LAB_PAGE_POLL_SECONDS = 15


def _site_hosts() -> list[str]:
    """The site's own host names from ALLOWED_HOSTS (lower case, without a
    leading dot), leaving out the ports' origins (``.<ports domain>``, which
    the compose file allows too) and wildcards."""
    domain = settings.PLAYGROUND_PORTS_DOMAIN
    hosts = []
    for entry in settings.ALLOWED_HOSTS:
        host = entry.lower().rstrip(".")
        if host in ("*", "") or host.startswith("["):
            continue
        if host.startswith(".") and host.lstrip(".") == domain:
            continue  # the port origins themselves
        hosts.append(host)
    return hosts


def _under(name: str, host: str) -> bool:
    """Whether ``name`` is ``host`` or a subdomain of it (".x": x and below)."""
    base = host.lstrip(".")
    return name == base or name.endswith("." + base)


@register(TAG, Tags.security)
def check_ports_domain(app_configs=None, **kwargs):
    """Each instance port is its own origin under PLAYGROUND_PORTS_DOMAIN; a
    page a learner serves there must not share cookies with the site."""
    if not settings.HTTPS:
        return []  # the quick start serves *.localhost beside localhost, on purpose
    domain = settings.PLAYGROUND_PORTS_DOMAIN
    for host in _site_hosts():
        if _under(domain, host):
            return [Error(
                f"PLAYGROUND_PORTS_DOMAIN={domain!r} is the site's host {host!r} or under it "
                "(DJANGO_ALLOWED_HOSTS): a page served from an instance's port could set cookies for the site.",
                hint="Use a domain of its own for the ports, e.g. play-ports.example.net for play.example.org.",
                id="playground.E005",
            )]
    return []


@register(TAG)
def check_catalogue(app_configs=None, **kwargs):
    errors = []
    images = settings.PLAYGROUND_IMAGES
    if settings.PLAYGROUND_DEFAULT_IMAGE not in images:
        errors.append(Error(
            f"PLAYGROUND_DEFAULT_IMAGE={settings.PLAYGROUND_DEFAULT_IMAGE!r} is no image of the catalogue "
            f"({', '.join(sorted(images))}).",
            hint="Name one of them, or add the image (PLAYGROUND_CATALOGUE_FILE).",
            id="playground.E001",
        ))
    for name, spec in settings.PLAYGROUND_TEMPLATES.items():
        if spec.get("image") not in images:
            errors.append(Error(
                f"Template {name!r} uses the image {spec.get('image')!r}, which is no image of the catalogue.",
                hint="Change the template's image or remove the template (PLAYGROUND_CATALOGUE_FILE).",
                id="playground.E002",
            ))
    return errors


@register(TAG)
def check_capacity(app_configs=None, **kwargs):
    messages = []
    if not settings.PLAYGROUND_HOST_MIN_FREE_MEMORY < 1:
        messages.append(Error(
            f"PLAYGROUND_HOST_MIN_FREE_MEMORY={settings.PLAYGROUND_HOST_MIN_FREE_MEMORY} is a share of a lab "
            "host's memory: at 1 or more no lab host ever takes an instance.",
            hint="A fraction below 1, e.g. 0.10.",
            id="playground.E003",
        ))
    for name in ("PLAYGROUND_HOST_MEMORY_OVERCOMMIT", "PLAYGROUND_HOST_CPU_OVERCOMMIT"):
        value = getattr(settings, name)
        if value < 1:
            messages.append(Warning(
                f"{name}={value} is below 1: lab hosts take fewer instances than their own resources hold.",
                hint="Overcommit factors are 1 or more; to keep memory free, use PLAYGROUND_HOST_MIN_FREE_MEMORY.",
                id="playground.W001",
            ))
    return messages


@register(TAG)
def check_periods(app_configs=None, **kwargs):
    messages = []
    if settings.PLAYGROUND_ACTIVITY_FLUSH_SECONDS >= settings.PLAYGROUND_IDLE_TIMEOUT:
        messages.append(Error(
            f"PLAYGROUND_ACTIVITY_FLUSH_SECONDS={settings.PLAYGROUND_ACTIVITY_FLUSH_SECONDS} is not shorter than "
            f"PLAYGROUND_IDLE_TIMEOUT={settings.PLAYGROUND_IDLE_TIMEOUT}: sessions in use would end as idle "
            "before their activity is written.",
            hint="Keep the flush period a small part of the idle timeout (default 5 s against 1800 s).",
            id="playground.E004",
        ))
    if settings.PLAYGROUND_WATCH_SECONDS < LAB_PAGE_POLL_SECONDS:
        messages.append(Warning(
            f"PLAYGROUND_WATCH_SECONDS={settings.PLAYGROUND_WATCH_SECONDS} is shorter than the lab page's poll "
            f"({LAB_PAGE_POLL_SECONDS} s): a session open on a lab page counts as unwatched between polls, and "
            "its ports and stats go stale.",
            hint=f"At least {LAB_PAGE_POLL_SECONDS} (default 30).",
            id="playground.W002",
        ))
    if settings.PLAYGROUND_HOST_DOWN_GRACE < settings.PLAYGROUND_HEALTH_SECONDS:
        messages.append(Warning(
            f"PLAYGROUND_HOST_DOWN_GRACE={settings.PLAYGROUND_HOST_DOWN_GRACE} is shorter than the health probe's "
            f"period PLAYGROUND_HEALTH_SECONDS={settings.PLAYGROUND_HEALTH_SECONDS}: one failed probe (a blip) "
            "fails every instance of a lab host.",
            hint="A grace of several probe periods (default 30 s against 3 s).",
            id="playground.W003",
        ))
    return messages


@register(TAG)
def check_request_size(app_configs=None, **kwargs):
    if settings.PLAYGROUND_MAX_REQUEST_BYTES < settings.PLAYGROUND_MAX_FILE_BYTES:
        return [Warning(
            f"PLAYGROUND_MAX_REQUEST_BYTES={settings.PLAYGROUND_MAX_REQUEST_BYTES} is below "
            f"PLAYGROUND_MAX_FILE_BYTES={settings.PLAYGROUND_MAX_FILE_BYTES}: uploads the files endpoint would "
            "take are refused before they arrive.",
            hint="Unset it (the default is PLAYGROUND_MAX_FILE_BYTES + 1 MiB).",
            id="playground.W004",
        )]
    return []


@register(TAG, Tags.security)
def check_networks(app_configs=None, **kwargs):
    everyone = [str(n) for n in settings.PLAYGROUND_TRUSTED_PROXIES if n.prefixlen == 0]
    if everyone:
        return [Error(
            f"PLAYGROUND_TRUSTED_PROXIES holds {', '.join(everyone)}: every client would be a trusted proxy, and "
            "X-Forwarded-For (which clients write) would decide their address for rate limits and guest caps.",
            hint="List the proxies in front only (their addresses or the network they reach Daphne from).",
            id="playground.E006",
        )]
    return []


@register(TAG, Tags.security)
def check_production(app_configs=None, **kwargs):
    if settings.HTTPS and settings.CELERY_TASK_ALWAYS_EAGER:
        return [Warning(
            "CELERY_TASK_ALWAYS_EAGER is on with DJANGO_HTTPS: jobs run inside the web requests that queue them, "
            "without retries or the lost-job sweep (a debugging aid).",
            hint="Unset CELERY_TASK_ALWAYS_EAGER and run the Celery worker.",
            id="playground.W005",
        )]
    return []

