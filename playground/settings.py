"""One settings module, read from the environment.

Every setting has a safe local default so ``make up`` needs no configuration;
docs/operations.md ("Configuration") lists them all, and
tests/unit/test_docs_configuration.py keeps that list whole. Any variable may
come from a file instead: ``<NAME>_FILE`` (playground/config.py). Importing this
module creates nothing, except the quick start's secret key (below); the
system checks of playground/checks.py look for settings that contradict each
other.
"""
from __future__ import annotations

from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from playground.catalogue import apply as apply_catalogue

# The readers (playground/config.py): every one takes NAME_FILE the same way.
# Re-exported here, where tests and tools import them from.
from playground.config import (
    env,
    env_bool,
    env_float,
    env_int,
    env_list,
    env_networks,
    env_networks_default,
    env_tls_file,
    local_secret_key,
    raw,
    source,
)
from sandboxes.base import DEFAULT_CAPABILITIES

BASE_DIR = Path(__file__).resolve().parent.parent

STATE_DIR = Path(env("PLAYGROUND_STATE_DIR", "/var/lib/playground"))

DEBUG = env_bool("DJANGO_DEBUG", False)


# Production serves HTTPS (a TLS proxy in front of Daphne): DJANGO_HTTPS=1 makes
# cookies secure, redirects plain HTTP and turns HSTS on, which is what
# `manage.py check --deploy` asks for. Off for the local quick start (plain HTTP).
HTTPS = env_bool("DJANGO_HTTPS", False)

# One key for every process of the installation (sessions, CSRF tokens and
# port grants are signed with it). The quick start makes one in the state
# directory; production (DJANGO_HTTPS) must be given it, or each replica,
# with a state directory of its own, would sign with a key of its own.
SECRET_KEY = env("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if HTTPS:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY (or DJANGO_SECRET_KEY_FILE) must be set when DJANGO_HTTPS is on: every web "
            "process and worker must sign sessions, CSRF tokens and port grants with the same key "
            "(python3 -c 'import secrets; print(secrets.token_urlsafe(50))' makes one)"
        )
    SECRET_KEY = local_secret_key(STATE_DIR)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", HTTPS)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]  # probes and scrapes from inside the private network
SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 365 * 24 * 3600 if HTTPS else 0)
# Subdomains too: the instance-port proxy's domain (docs/api.md, "Ports") must
# then be served over HTTPS as well, or be no subdomain of this site's. Preload
# lets anyone submit the domain to browsers' HSTS lists: turn it off (and
# silence security.W021) if that commitment is not wanted.
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", HTTPS)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", HTTPS)
if env_bool("DJANGO_BEHIND_TLS_PROXY", HTTPS):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_HTTPONLY = True

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "channels",
    "playground.apps.PlaygroundConfig",  # its system checks (playground/checks.py)
    "playground.accounts",
    "playground.sessions",
    "playground.labs",
    "playground.classrooms",
    "playground.ports",
    "playground.stats",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "playground.urls"
ASGI_APPLICATION = "playground.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# SQLite locally: Daphne and the Celery processes write at once, so WAL mode,
# a busy timeout and IMMEDIATE transactions (no lock upgrade deadlocks).
DATABASES = {
    "default": dj_database_url.parse(
        env("DATABASE_URL", f"sqlite:///{STATE_DIR / 'db.sqlite3'}"), conn_max_age=0
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # A database that is down or unreachable fails a request within seconds
    # (503, docs/api.md) instead of hanging on a TCP connect; the URL's own
    # options (?sslmode=..., ?connect_timeout=...) win. A connection per
    # request (conn_max_age=0): Daphne serves from a thread pool, and kept
    # connections would multiply by its threads and the worker's.
    _pg_options = DATABASES["default"].setdefault("OPTIONS", {})
    _pg_options.setdefault("connect_timeout", env_int("PLAYGROUND_DATABASE_CONNECT_TIMEOUT", 3, minimum=1))
    _pg_options.setdefault("application_name", "playground")

def with_redis_password(url: str, password: str) -> str:
    """``url`` with ``password`` in it, unless it carries one already (or is
    no redis:// or rediss:// URL)."""
    from urllib.parse import quote, urlsplit, urlunsplit

    parts = urlsplit(url)
    if not password or parts.scheme not in ("redis", "rediss") or parts.password:
        return url
    user = quote(parts.username or "", safe="")
    where = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:{quote(password, safe='')}@{where}"))


# Redis behind a password (the compose file sets one): in the URL, or
# PLAYGROUND_REDIS_PASSWORD (or _FILE) put into every Redis URL that has none
# (cache, channel layer, Celery). The local scripts' Redis listens on
# loopback only, where sandboxes never reach, and has none by default.
REDIS_PASSWORD = env("PLAYGROUND_REDIS_PASSWORD")
REDIS_URL = with_redis_password(env("REDIS_URL", "redis://127.0.0.1:6399/0"), REDIS_PASSWORD)
# Seconds to wait for Redis to connect or answer before a request gives up
# with 503 unavailable (docs/api.md: within 5 s, never a hang).
REDIS_TIMEOUT = env_float("PLAYGROUND_REDIS_TIMEOUT", 2.0, minimum=0.1)

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "pg",
        # JSON, not Django's pickle: a value planted in Redis must not run
        # code in the web tier (playground/cache.py).
        "OPTIONS": {"socket_connect_timeout": REDIS_TIMEOUT, "socket_timeout": REDIS_TIMEOUT,
                    "serializer": "playground.cache.JSONSerializer"},
    }
}

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        # redis-py reads with a 5 s timeout by default, as long as the layer's
        # BZPOPMIN waits: on a busy event loop the timeout won the race and
        # killed consumers with a TimeoutError. Give the read time to spare.
        "CONFIG": {
            "hosts": [{"address": REDIS_URL, "socket_timeout": 30, "socket_connect_timeout": REDIS_TIMEOUT}],
            "prefix": "pg-channels",
        },
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env("DJANGO_STATIC_ROOT", str(STATE_DIR / "static")))
STATICFILES_DIRS = [BASE_DIR / "static"]
# Nothing is created at import: collectstatic makes STATIC_ROOT (the app image
# runs it), the frontend build makes static/ (scripts/setup.sh); until then
# the finders serve (below) and playground.apps quiets whitenoise's warning.
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LOGIN_REDIRECT_URL = "/"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Serve from the finders when collectstatic has not run (tests, development).
WHITENOISE_USE_FINDERS = True

# Request bodies (files uploads go through the files endpoint, which reads the
# raw body itself and enforces PLAYGROUND_MAX_FILE_BYTES).
DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # The token decides when both a token and a cookie come.
        "playground.accounts.auth.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "playground.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_THROTTLE_RATES": {
        "session_create_user": env("PLAYGROUND_SESSION_RATE_USER", "10/min"),
        "session_create_guest": env("PLAYGROUND_SESSION_RATE_GUEST", "3/min"),
        "exec_user": env("PLAYGROUND_EXEC_RATE_USER", "120/min"),
        "exec_guest": env("PLAYGROUND_EXEC_RATE_GUEST", "30/min"),
        "session_create_guest_address": env("PLAYGROUND_SESSION_RATE_GUEST_ADDRESS", "30/min"),
        # Adding an instance to a session: like creating one, each is a container.
        "instance_create_user": env("PLAYGROUND_INSTANCE_RATE_USER", "20/min"),
        "instance_create_guest": env("PLAYGROUND_INSTANCE_RATE_GUEST", "6/min"),
        # Pages anyone may post to, per client address: guessing join codes,
        # guessing passwords.
        "join_address": env("PLAYGROUND_JOIN_RATE_ADDRESS", "20/min"),
        "login_address": env("PLAYGROUND_LOGIN_RATE_ADDRESS", "20/min"),
    },
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # The playground's throttles read the client address through
    # playground.accounts.addresses (PLAYGROUND_TRUSTED_PROXIES); 0 keeps DRF's
    # own get_ident on the peer address (its default, None, believes any header).
    "NUM_PROXIES": 0,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Container playground API",
    "DESCRIPTION": "Sessions of sandbox instances on lab hosts. The contract: docs/api.md in the repository.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
}

# -- Celery -----------------------------------------------------------------
CELERY_BROKER_URL = with_redis_password(env("CELERY_BROKER_URL", REDIS_URL), REDIS_PASSWORD)
# Messages are JSON (Celery's default, stated): never pickle from the broker.
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Workers and beat wait for a broker that went away as long as it takes (the
# default gives up after 100 tries); a request queueing a job gives up at once
# instead (the job's row stays, and the lost-job sweep queues it again).
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_BROKER_CONNECTION_TIMEOUT = REDIS_TIMEOUT
CELERY_BROKER_TRANSPORT_OPTIONS = {"socket_connect_timeout": REDIS_TIMEOUT}
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0.2, "interval_step": 0.2, "interval_max": 0.5}
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TIMEZONE = "UTC"

# -- The playground -----------------------------------------------------------
# One id per installation: the value of the playground.deployment label on
# every engine object, so installations sharing an engine never touch each
# other's objects.
PLAYGROUND_DEPLOYMENT = env("PLAYGROUND_DEPLOYMENT", "local")
PLAYGROUND_DRIVER = env("PLAYGROUND_DRIVER", "sandboxes.docker.DockerDriver")
PLAYGROUND_LAB_HOSTS = env_list("PLAYGROUND_LAB_HOSTS", ["unix:///run/playground/docker.sock"])


TLS_FILE_SETTINGS = ("PLAYGROUND_LAB_HOST_TLS_CA", "PLAYGROUND_LAB_HOST_TLS_CERT", "PLAYGROUND_LAB_HOST_TLS_KEY")


def lab_host_tls(hosts: list[str], files: dict[str, str]) -> dict[str, str]:
    """The driver's TLS options (sandboxes.docker.DockerDriver) for ``hosts``.
    An engine's API is root on its host: one reached over the network
    (``tcp://``, ``https://``) is spoken to over mutual TLS only, so such a
    host without all three files, or any ``http://`` one, is refused here,
    before Daphne, a Celery process or the engine watcher starts. A
    ``unix://`` socket needs none."""
    for host in hosts:
        scheme = host.partition("://")[0].lower() if "://" in host else "tcp"
        if scheme == "http":
            raise ValueError(f"PLAYGROUND_LAB_HOSTS: {host} is plain HTTP; use tcp:// or https:// "
                             f"with {', '.join(TLS_FILE_SETTINGS)}")
        missing = [name for name in TLS_FILE_SETTINGS if not files.get(name)]
        if scheme in ("tcp", "https") and missing:
            raise ValueError(f"PLAYGROUND_LAB_HOSTS: {host} is reached over the network, which needs "
                             f"mutual TLS: set {', '.join(missing)} (scripts/lab-host-certs.sh makes them)")
    options = {"tls_ca_cert": "PLAYGROUND_LAB_HOST_TLS_CA", "tls_client_cert": "PLAYGROUND_LAB_HOST_TLS_CERT",
               "tls_client_key": "PLAYGROUND_LAB_HOST_TLS_KEY"}
    return {option: files[name] for option, name in options.items() if files.get(name)}


# Mutual TLS to network lab hosts: the CA that signed the engines'
# certificates, and the web tier's client certificate and key (PEM paths).
PLAYGROUND_LAB_HOST_TLS_CA = env_tls_file("PLAYGROUND_LAB_HOST_TLS_CA")
PLAYGROUND_LAB_HOST_TLS_CERT = env_tls_file("PLAYGROUND_LAB_HOST_TLS_CERT")
PLAYGROUND_LAB_HOST_TLS_KEY = env_tls_file("PLAYGROUND_LAB_HOST_TLS_KEY")
# Options every lab host's driver is built with (playground.sessions.hosts).
PLAYGROUND_LAB_HOST_OPTIONS = lab_host_tls(PLAYGROUND_LAB_HOSTS, {
    "PLAYGROUND_LAB_HOST_TLS_CA": PLAYGROUND_LAB_HOST_TLS_CA,
    "PLAYGROUND_LAB_HOST_TLS_CERT": PLAYGROUND_LAB_HOST_TLS_CERT,
    "PLAYGROUND_LAB_HOST_TLS_KEY": PLAYGROUND_LAB_HOST_TLS_KEY,
})
# Placement: each instance reserves what an instance of its image typically
# uses (PLAYGROUND_IMAGES' "reserve_memory_mb"/"reserve_cpus", else these),
# not its limit; a lab host takes instances while the reservations stay
# within its memory and CPUs (its engine's info) times these overcommit
# factors, and while its available memory stays above this share of the
# whole; past that, 503 no_capacity. (An idle shell instance holds about
# 8 MiB, docs/performance.md; 64 leaves room for what learners run in it.) PLAYGROUND_HOST_CAPACITY, when set
# (0: none), caps the count of instances too (pooled ones included).
PLAYGROUND_RESERVE_MEMORY_MB = env_int("PLAYGROUND_RESERVE_MEMORY_MB", 64, minimum=1)
PLAYGROUND_RESERVE_CPUS = env_float("PLAYGROUND_RESERVE_CPUS", 0.02, minimum=0.001)
PLAYGROUND_HOST_MEMORY_OVERCOMMIT = env_float("PLAYGROUND_HOST_MEMORY_OVERCOMMIT", 2.0, minimum=0.1)
PLAYGROUND_HOST_CPU_OVERCOMMIT = env_float("PLAYGROUND_HOST_CPU_OVERCOMMIT", 8.0, minimum=0.1)
PLAYGROUND_HOST_MIN_FREE_MEMORY = env_float("PLAYGROUND_HOST_MIN_FREE_MEMORY", 0.10, minimum=0.0)
PLAYGROUND_HOST_CAPACITY = env_int("PLAYGROUND_HOST_CAPACITY", 0, minimum=0)
PLAYGROUND_ALLOW_GUESTS = env_bool("PLAYGROUND_ALLOW_GUESTS", True)
# Live instances that guests from one client address may hold together, over
# all their guest identities (a new guest is one cookie-less request away);
# class joins do not count. Guests with no live session, whose last session
# ended (or who were made) this many days ago, are deleted.
PLAYGROUND_GUEST_INSTANCES_PER_ADDRESS = env_int("PLAYGROUND_GUEST_INSTANCES_PER_ADDRESS", 10, minimum=1)
PLAYGROUND_GUEST_RETENTION_DAYS = env_float("PLAYGROUND_GUEST_RETENTION_DAYS", 7.0, minimum=0.0)
PLAYGROUND_GUEST_CLEANUP_SECONDS = env_float("PLAYGROUND_GUEST_CLEANUP_SECONDS", 3600.0, minimum=1.0)
# Proxies in front whose X-Forwarded-For is believed (addresses or CIDRs;
# none by default: the connection's peer is the client). The client is then
# the rightmost address in the header that is not one of these.
PLAYGROUND_TRUSTED_PROXIES = env_networks("PLAYGROUND_TRUSTED_PROXIES")
# GET /metrics (playground/metrics) is served to these client addresses or
# networks only (resolved as above); "none": to nobody. Default: loopback.
PLAYGROUND_METRICS_ALLOW = (
    [] if env("PLAYGROUND_METRICS_ALLOW").strip().lower() == "none"
    else env_networks("PLAYGROUND_METRICS_ALLOW") or env_networks_default("127.0.0.0/8,::1")
)

# Images a session may use: API name -> engine reference and description;
# "nested_docker" gives the instance what a Docker Engine inside it needs
# (sandboxes.base.InstanceSpec.nested_docker; lab hosts must remap user
# namespaces, as scripts/engine.sh does).
PLAYGROUND_IMAGES = {
    "shell": {
        "ref": env("PLAYGROUND_IMAGE_SHELL", "playground-shell:latest"),
        "description": "Debian 12 with bash, curl, git, vim, nano, python3 and network tools.",
    },
    "docker": {
        "ref": env("PLAYGROUND_IMAGE_DOCKER", "playground-docker:latest"),
        "description": (
            "The shell image plus a Docker Engine of its own: docker run, docker build, docker compose."
        ),
        "nested_docker": True,
        # Kept ready by default (PLAYGROUND_POOL_IMAGES unset): its inner
        # engine takes about a second to start, too long to wait for.
        "pool": 1,
        # An idle one holds about 64 MiB (its inner engine; docs/performance.md); learners'
        # nested containers add to it.
        "reserve_memory_mb": env_int("PLAYGROUND_IMAGE_DOCKER_RESERVE_MEMORY_MB", 256, minimum=1),
        "reserve_cpus": env_float("PLAYGROUND_IMAGE_DOCKER_RESERVE_CPUS", 0.05, minimum=0.001),
    },
}
PLAYGROUND_DEFAULT_IMAGE = env("PLAYGROUND_DEFAULT_IMAGE", "shell")

# Templates: ready-made multi-instance sessions (POST /api/sessions/
# {"template": name}). Instances are named by role; a "swarm" entry has the
# playground initialise a Docker swarm and join every node for the learner.
PLAYGROUND_TEMPLATES = {
    "swarm-1m1w": {
        "description": "A Docker swarm of one manager and one worker, initialised and joined.",
        "image": "docker",
        "swarm": {"managers": ["manager1"], "workers": ["worker1"]},
    },
    "swarm-3m2w": {
        "description": "A Docker swarm of three managers and two workers, initialised and joined.",
        "image": "docker",
        "swarm": {"managers": ["manager1", "manager2", "manager3"], "workers": ["worker1", "worker2"]},
    },
}
# An operator's catalogue (playground/catalogue.py; docs/operations.md, "The
# image and template catalogue"): YAML or JSON adding, changing or removing
# images and templates, from PLAYGROUND_CATALOGUE_FILE (or the text itself in
# PLAYGROUND_CATALOGUE), read at start-up; a mistake stops the process there.
apply_catalogue(PLAYGROUND_IMAGES, PLAYGROUND_TEMPLATES, env("PLAYGROUND_CATALOGUE"), source("PLAYGROUND_CATALOGUE"))
# Classes: a learner is flagged "stuck" after this long without activity, or
# after this many failed checks in a row (or when they raise their hand).
PLAYGROUND_CLASS_STUCK_IDLE = env_int("PLAYGROUND_CLASS_STUCK_IDLE", 600, minimum=30)
PLAYGROUND_CLASS_STUCK_FAILURES = env_int("PLAYGROUND_CLASS_STUCK_FAILURES", 3, minimum=1)
# Hot start of classes: this long before a class starts, a session of its lab
# is made for every seat; those not claimed this long after the start are
# removed. The pool's sessions belong to a system user of this name.
PLAYGROUND_CLASS_WARM_LEAD = env_int("PLAYGROUND_CLASS_WARM_LEAD", 600, minimum=0)
PLAYGROUND_CLASS_WARM_WINDOW = env_int("PLAYGROUND_CLASS_WARM_WINDOW", 900, minimum=60)
PLAYGROUND_CLASS_WARM_SECONDS = env_float("PLAYGROUND_CLASS_WARM_SECONDS", 15.0, minimum=0.5)
PLAYGROUND_POOL_USERNAME = env("PLAYGROUND_POOL_USERNAME", "playground-pool")
# The class dashboard looks at the roster again this often (for idle times;
# joins, hands and checks are pushed at once).
PLAYGROUND_CLASS_DASHBOARD_SECONDS = env_float("PLAYGROUND_CLASS_DASHBOARD_SECONDS", 10.0, minimum=1.0)
# How long a template's set-up (e.g. forming the swarm) may take in all.
PLAYGROUND_TEMPLATE_SETUP_SECONDS = env_int("PLAYGROUND_TEMPLATE_SETUP_SECONDS", 300, minimum=30)
# The lab host's read-only registry mirror (scripts/registry.sh): the inner
# engines of nested-Docker images pull Docker Hub images from it, at their
# network's gateway on this port; 0: no mirror.
PLAYGROUND_MIRROR_PORT = env_int("PLAYGROUND_MIRROR_PORT", 5099, minimum=0)

PLAYGROUND_SESSION_LIFETIME = env_int("PLAYGROUND_SESSION_LIFETIME", 4 * 3600, minimum=60)
PLAYGROUND_IDLE_TIMEOUT = env_int("PLAYGROUND_IDLE_TIMEOUT", 30 * 60, minimum=10)
PLAYGROUND_EXTENSION = env_int("PLAYGROUND_EXTENSION", 3600, minimum=60)
PLAYGROUND_MAX_EXTENSIONS = env_int("PLAYGROUND_MAX_EXTENSIONS", 2)
PLAYGROUND_MAX_INSTANCES = env_int("PLAYGROUND_MAX_INSTANCES", 5, minimum=1)
PLAYGROUND_MAX_SESSIONS_USER = env_int("PLAYGROUND_MAX_SESSIONS_USER", 2, minimum=1)
PLAYGROUND_MAX_SESSIONS_GUEST = env_int("PLAYGROUND_MAX_SESSIONS_GUEST", 1, minimum=1)

PLAYGROUND_INSTANCE_MEMORY_MB = env_int("PLAYGROUND_INSTANCE_MEMORY_MB", 512, minimum=16)
PLAYGROUND_INSTANCE_CPUS = env_float("PLAYGROUND_INSTANCE_CPUS", 1.0, minimum=0.01)
PLAYGROUND_INSTANCE_PIDS = env_int("PLAYGROUND_INSTANCE_PIDS", 512, minimum=16)
PLAYGROUND_INSTANCE_LOG_KB = env_int("PLAYGROUND_INSTANCE_LOG_KB", 1024, minimum=64)
# Capabilities a shell instance keeps (every other one is dropped); names as in
# capabilities(7) without CAP_. The nested-Docker image has a profile of its own.
PLAYGROUND_INSTANCE_CAPABILITIES = [
    c.upper().removeprefix("CAP_")
    for c in env_list("PLAYGROUND_INSTANCE_CAPABILITIES", list(DEFAULT_CAPABILITIES))
]
# Disk an instance may write (its files, their metadata, nested Docker's
# data). A lab host whose engine runs on btrfs (scripts/engine.sh's default)
# enforces it: writes past it fail ("Disk quota exceeded"). On one without
# (overlay2 on ext4) a watchdog measures every PLAYGROUND_DISK_CHECK_SECONDS
# and ends the instances over the limit (failed, with the reason shown); on
# btrfs it measures only instances made without a limit. Per image kind:
# PLAYGROUND_IMAGE_DISK_MB ("docker=8192,shell=1024"); the docker image's
# own default is 8192 (its inner engine pulls and builds images).
PLAYGROUND_INSTANCE_DISK_MB = env_int("PLAYGROUND_INSTANCE_DISK_MB", 2048, minimum=1)
PLAYGROUND_DISK_CHECK_SECONDS = env_float("PLAYGROUND_DISK_CHECK_SECONDS", 30.0, minimum=0.5)
if "docker" in PLAYGROUND_IMAGES:
    PLAYGROUND_IMAGES["docker"].setdefault("disk_mb", 8192)


def env_image_disk(name: str, images: dict) -> None:
    """``image=MB`` pairs, written into each image's "disk_mb"."""
    for item in env_list(name, []):
        image, _, mb = (part.strip() for part in item.partition("="))
        if image not in images:
            raise ValueError(f"{name}: unknown image {image!r} (images: {', '.join(sorted(images))})")
        if not mb.isdigit() or int(mb) < 1:
            raise ValueError(f"{name}: {item!r} is not image=MB (a whole number, at least 1)")
        images[image]["disk_mb"] = int(mb)


env_image_disk("PLAYGROUND_IMAGE_DISK_MB", PLAYGROUND_IMAGES)
# Where instances may send traffic (docs/security.md, "Egress"): "none" (not
# even to each other), "session" (to their session's instances only) or
# "internet" (beyond, through the lab host's NAT). The install's default;
# PLAYGROUND_IMAGE_EGRESS sets it per image ("docker=internet,shell=none") and
# a lab's lab.yaml (environment.egress) per lab, the lab first. The booleans
# of earlier versions still work: false is "session", true "internet".
EGRESS_POLICIES = ("none", "session", "internet")


def env_egress(name: str, default: str) -> str:
    value = (raw(name) or "").strip().lower()
    if not value:
        return default
    if value in EGRESS_POLICIES:
        return value
    if value in {"0", "false", "no", "off"}:
        return "session"
    if value in {"1", "true", "yes", "on"}:
        return "internet"
    raise ValueError(f"{name}={value!r}: use one of {', '.join(EGRESS_POLICIES)}")


def env_image_egress(name: str, images: dict) -> None:
    """``image=policy`` pairs, written into each image's "egress"."""
    for item in env_list(name, []):
        image, _, policy = (part.strip() for part in item.partition("="))
        if image not in images:
            raise ValueError(f"{name}: unknown image {image!r} (images: {', '.join(sorted(images))})")
        if policy not in EGRESS_POLICIES:
            raise ValueError(f"{name}: {item!r} is not image=policy ({', '.join(EGRESS_POLICIES)})")
        images[image]["egress"] = policy


PLAYGROUND_EGRESS = env_egress("PLAYGROUND_EGRESS", "session")
env_image_egress("PLAYGROUND_IMAGE_EGRESS", PLAYGROUND_IMAGES)

PLAYGROUND_MAX_FILE_BYTES = env_int("PLAYGROUND_MAX_FILE_BYTES", 64 * 1024 * 1024, minimum=1024)
# Any request body (the API's, an instance port's) over this is refused by the
# web server as it arrives, before it is held whole: 400 invalid.
PLAYGROUND_MAX_REQUEST_BYTES = env_int("PLAYGROUND_MAX_REQUEST_BYTES", PLAYGROUND_MAX_FILE_BYTES + 1024 * 1024,
                                       minimum=DATA_UPLOAD_MAX_MEMORY_SIZE)
PLAYGROUND_EXEC_MAX_TIMEOUT = env_int("PLAYGROUND_EXEC_MAX_TIMEOUT", 600, minimum=1)

# Labs: seconds a step's check may run, and a lab's set-up script (and, in
# check_lab, each step's solution) unless lab.yaml gives its own timeout.
PLAYGROUND_LAB_CHECK_TIMEOUT = env_float("PLAYGROUND_LAB_CHECK_TIMEOUT", 30.0, minimum=1.0)
PLAYGROUND_LAB_SETUP_TIMEOUT = env_float("PLAYGROUND_LAB_SETUP_TIMEOUT", 300.0, minimum=1.0)

# Hot start: ready instances kept per lab host, handed to new sessions as
# their node1 (joining the session's network then) instead of being created on
# the learner's clock. PLAYGROUND_POOL_IMAGES says how many of each image
# ("shell=2,docker=1"; a name alone takes PLAYGROUND_POOL_SIZE); unset, the
# pool holds PLAYGROUND_POOL_SIZE of the default image and an image's own
# "pool" of each other (one docker instance). PLAYGROUND_POOL_SIZE=0 with
# PLAYGROUND_POOL_IMAGES unset turns the pool off. An image whose pooled
# instance fails to start waits PLAYGROUND_POOL_BACKOFF_SECONDS on that host.
PLAYGROUND_POOL_SIZE = env_int("PLAYGROUND_POOL_SIZE", 2, minimum=0)
PLAYGROUND_POOL_SECONDS = env_float("PLAYGROUND_POOL_SECONDS", 5.0, minimum=0.5)
PLAYGROUND_POOL_BACKOFF_SECONDS = env_float("PLAYGROUND_POOL_BACKOFF_SECONDS", 60.0, minimum=0.0)


def env_pool_images(name: str, images: dict) -> dict[str, int | None]:
    """``image=count`` pairs (a bare image name: count None, the default size)."""
    sizes: dict[str, int | None] = {}
    for item in env_list(name, []):
        image, _, count = (part.strip() for part in item.partition("="))
        if image not in images:
            raise ValueError(f"{name}: unknown image {image!r} (images: {', '.join(sorted(images))})")
        if not count:
            sizes[image] = None
            continue
        try:
            sizes[image] = int(count)
        except ValueError:
            raise ValueError(f"{name}: {item!r} is not image=count") from None
        if sizes[image] < 0:
            raise ValueError(f"{name}: {item!r} asks for fewer than 0 instances")
    return sizes


PLAYGROUND_POOL_IMAGES = env_pool_images("PLAYGROUND_POOL_IMAGES", PLAYGROUND_IMAGES)

# Ports (docs/api.md, "Ports"): what instances listen on is found every
# PLAYGROUND_PORTS_SECONDS and served by the web tier's proxy, each port on its
# own origin <scheme>://<instance>-<port>.<PLAYGROUND_PORTS_DOMAIN>:<public port>/.
# The domain must resolve to the web tier for every subdomain (browsers map
# *.localhost to loopback; elsewhere a wildcard DNS record), and should not be
# a subdomain of the playground's own site (a page there could set cookies for
# it). Public port 0: the port the playground's page was requested on.
PLAYGROUND_PORTS_DOMAIN = env("PLAYGROUND_PORTS_DOMAIN", "localhost").strip(".").lower()
PLAYGROUND_PORTS_SCHEME = env("PLAYGROUND_PORTS_SCHEME", "https" if HTTPS else "http")
PLAYGROUND_PORTS_PUBLIC_PORT = env_int("PLAYGROUND_PORTS_PUBLIC_PORT", 0)
PLAYGROUND_PORTS_SECONDS = env_float("PLAYGROUND_PORTS_SECONDS", 3.0, minimum=0.5)
# Seconds a port link's grant is good for (then the proxy's cookie takes over).
PLAYGROUND_PORTS_GRANT_SECONDS = env_int("PLAYGROUND_PORTS_GRANT_SECONDS", 300, minimum=10)
# Ports never listed: the inner Docker Engine's API and swarm's own.
PLAYGROUND_PORTS_HIDDEN = [int(p) for p in env_list("PLAYGROUND_PORTS_HIDDEN", ["2375", "2376", "2377", "7946"])]

# Instance stats: CPU and memory each running instance uses, sampled every
# PLAYGROUND_STATS_SECONDS (CPU % over the time between two samples).
PLAYGROUND_STATS_SECONDS = env_float("PLAYGROUND_STATS_SECONDS", 5.0, minimum=0.5)
# Ports and stats are looked for only in sessions somebody read through the
# API (the session page polls it every few seconds, the lab page every 15 s)
# within this many seconds: an idle session nobody looks at costs no
# periodic work.
PLAYGROUND_WATCH_SECONDS = env_float("PLAYGROUND_WATCH_SECONDS", 30.0, minimum=1.0)

# Jobs: how often beat sweeps due sessions, reconciles lab hosts and checks
# their health; how long a host may be silent before its instances fail.
PLAYGROUND_SWEEP_SECONDS = env_float("PLAYGROUND_SWEEP_SECONDS", 5.0, minimum=0.5)
PLAYGROUND_RECONCILE_SECONDS = env_float("PLAYGROUND_RECONCILE_SECONDS", 30.0, minimum=1.0)
PLAYGROUND_HEALTH_SECONDS = env_float("PLAYGROUND_HEALTH_SECONDS", 3.0, minimum=0.5)
PLAYGROUND_HOST_DOWN_GRACE = env_float("PLAYGROUND_HOST_DOWN_GRACE", 30.0, minimum=0.0)
# The engine watcher (manage.py watch_engines) renews each lab host's event
# stream this often, so a remote engine that vanished without closing the
# connection is noticed within that time (a closed one at once).
PLAYGROUND_ENGINE_EVENTS_RENEW_SECONDS = env_float("PLAYGROUND_ENGINE_EVENTS_RENEW_SECONDS", 300.0, minimum=5.0)
# Jobs a dead worker leaves (playground/jobs.py): a running job holds a lease
# renewed every third of PLAYGROUND_JOB_LEASE_SECONDS; one whose lease lapsed,
# or that waited PLAYGROUND_JOB_QUEUE_SECONDS in the queue without starting, is
# queued again, at most PLAYGROUND_JOB_ATTEMPTS times, then its row fails.
PLAYGROUND_JOB_LEASE_SECONDS = env_int("PLAYGROUND_JOB_LEASE_SECONDS", 10, minimum=3)
PLAYGROUND_JOB_QUEUE_SECONDS = env_int("PLAYGROUND_JOB_QUEUE_SECONDS", 60, minimum=5)
PLAYGROUND_JOB_ATTEMPTS = env_int("PLAYGROUND_JOB_ATTEMPTS", 3, minimum=1)
# Activity (exec, terminal input) is noted in the cache and written to the
# database at most this often per session.
PLAYGROUND_ACTIVITY_FLUSH_SECONDS = env_float("PLAYGROUND_ACTIVITY_FLUSH_SECONDS", 5.0, minimum=0.0)

# The web tier's nice value (playground/priority.py): below the sandboxes'
# (0) so that terminals stay quick while instances are busy; 0 leaves it.
PLAYGROUND_WEB_NICE = env_int("PLAYGROUND_WEB_NICE", -10, minimum=-20, maximum=19)

# Browser terminal (the shared TTY of each instance, docs/api.md "Terminal").
# Output kept per instance and replayed to a new connection (at least 64 KiB).
PLAYGROUND_TERMINAL_REPLAY_KB = env_int("PLAYGROUND_TERMINAL_REPLAY_KB", 256, minimum=64)
# How long a TTY attachment stays open after its last viewer leaves (a reload
# reattaches without losing anything).
PLAYGROUND_TERMINAL_LINGER_SECONDS = env_float("PLAYGROUND_TERMINAL_LINGER_SECONDS", 10.0, minimum=0.0)
# Terminal WebSockets read and written on their own socket once Daphne has
# accepted them (playground/rawsocket.py; plain connections, not TLS): a
# keystroke's echo skips Twisted, Autobahn and Channels. Off: all through ASGI.
PLAYGROUND_TERMINAL_DIRECT = env_bool("PLAYGROUND_TERMINAL_DIRECT", True)
# Threads doing blocking socket work for attachments (one per busy TTY).
PLAYGROUND_TERMINAL_THREADS = env_int("PLAYGROUND_TERMINAL_THREADS", 64, minimum=4)
# Input a connection may send: a sustained rate and a burst (KiB), and frames
# per second with their burst; over them the socket closes with 4429.
PLAYGROUND_TERMINAL_INPUT_KB_RATE = env_int("PLAYGROUND_TERMINAL_INPUT_KB_RATE", 1024, minimum=1)
PLAYGROUND_TERMINAL_INPUT_KB_BURST = env_int("PLAYGROUND_TERMINAL_INPUT_KB_BURST", 4096, minimum=1)
PLAYGROUND_TERMINAL_FRAME_RATE = env_int("PLAYGROUND_TERMINAL_FRAME_RATE", 1000, minimum=1)
PLAYGROUND_TERMINAL_FRAME_BURST = env_int("PLAYGROUND_TERMINAL_FRAME_BURST", 5000, minimum=1)
# Terminal WebSockets one user may hold at once, counted across web processes
# in Redis (0: no cap); one more is closed with 4429 (too_many_connections).
PLAYGROUND_WS_CONNECTIONS_PER_USER = env_int("PLAYGROUND_WS_CONNECTIONS_PER_USER", 20, minimum=0)
# Input queued for a TTY that is not reading (a paste into a busy program).
PLAYGROUND_TERMINAL_INPUT_BUFFER_KB = env_int("PLAYGROUND_TERMINAL_INPUT_BUFFER_KB", 4096, minimum=64)

# Logs go to stderr, one line per record: "plain" text, or "json" (one object
# per line, playground/logs.py) for a collector. The audit log (the logger
# playground.audit) goes with them, or, with PLAYGROUND_AUDIT_LOG, to that file
# only (appended to by every process; reopened when logrotate moves it).
PLAYGROUND_LOG_FORMAT = env("PLAYGROUND_LOG_FORMAT", "plain").strip().lower()
if PLAYGROUND_LOG_FORMAT not in ("plain", "json"):
    raise ValueError(f"PLAYGROUND_LOG_FORMAT={PLAYGROUND_LOG_FORMAT!r}: use plain or json")
PLAYGROUND_AUDIT_LOG = env("PLAYGROUND_AUDIT_LOG", "").strip()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "json": {"()": "playground.logs.JSONFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": PLAYGROUND_LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": env("PLAYGROUND_LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
if PLAYGROUND_AUDIT_LOG:
    LOGGING["handlers"]["audit"] = {"class": "logging.handlers.WatchedFileHandler", "filename": PLAYGROUND_AUDIT_LOG,
                                    "formatter": PLAYGROUND_LOG_FORMAT, "delay": True}
    LOGGING["loggers"]["playground.audit"] = {"handlers": ["audit"], "level": "INFO", "propagate": False}
# Celery's worker and beat replace the root logger's handlers with their own
# text format unless told not to: in JSON they keep the one above.
CELERY_WORKER_HIJACK_ROOT_LOGGER = PLAYGROUND_LOG_FORMAT != "json"
CSRF_FAILURE_VIEW = "playground.errors.csrf_failure"
