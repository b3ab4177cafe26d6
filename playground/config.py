"""Reading settings from the environment: the helpers playground/settings.py
calls, and nothing else (no Django import: settings.py runs before Django is
set up).

Every read goes through :func:`raw`, so every variable takes the secret-file
form the same way: ``NAME_FILE=/run/secrets/name`` reads the file's content
(stripped) as the value of ``NAME``, whatever its type (a string, a number, a
boolean, a list, a catalogue). The file wins over ``NAME``. The one exception
is a setting whose value *is* a path (``env_tls_file``): there ``NAME_FILE``
names the same path, since the driver reads the file itself.

A value that does not parse raises ``ValueError`` naming the variable, which
stops the process at start-up (docs/operations.md, "Configuration").
"""
from __future__ import annotations

import ipaddress
import os
from pathlib import Path

TRUE = frozenset({"1", "true", "yes", "on"})
FALSE = frozenset({"0", "false", "no", "off"})


def raw(name: str) -> str | None:
    """``name``'s value: the content of the file ``<name>_FILE`` names
    (stripped), else the variable itself, else None."""
    file_path = os.environ.get(f"{name}_FILE")
    if file_path:
        try:
            return Path(file_path).read_text().strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise ValueError(f"{name}_FILE={file_path!r}: cannot read it ({reason})") from None
    return os.environ.get(name)


def source(name: str) -> str:
    """Where ``name``'s value came from, for error messages."""
    file_path = os.environ.get(f"{name}_FILE")
    return f"{name}_FILE={file_path}" if file_path else name


def env(name: str, default: str = "") -> str:
    """A string (``default`` when unset)."""
    value = raw(name)
    return default if value is None else value


def env_bool(name: str, default: bool) -> bool:
    value = raw(name)
    if value is None or value == "":
        return default
    lowered = value.strip().lower()
    if lowered in TRUE:
        return True
    if lowered in FALSE:
        return False
    raise ValueError(f"{name}={value!r} is not a boolean (use true or false)")


def env_int(name: str, default: int, *, minimum: int = 0, maximum: int | None = None) -> int:
    value = raw(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"{name}={value!r} is not an integer") from None
    if number < minimum:
        raise ValueError(f"{name}={number} is below its minimum {minimum}")
    if maximum is not None and number > maximum:
        raise ValueError(f"{name}={number} is above its maximum {maximum}")
    return number


def env_float(name: str, default: float, *, minimum: float = 0.0) -> float:
    value = raw(name)
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{name}={value!r} is not a number") from None
    if number < minimum:
        raise ValueError(f"{name}={number} is below its minimum {minimum}")
    return number


def env_list(name: str, default: list[str]) -> list[str]:
    value = raw(name)
    if value is None or value.strip() == "":
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def env_networks(name: str) -> list:
    """Addresses and CIDRs, comma-separated (empty: none). "0", the old
    count-of-proxies form's default, is none too; any other count is refused,
    since a count trusts whoever connects."""
    value = (raw(name) or "").strip()
    if value in ("", "0"):
        return []
    if value.isdigit():
        raise ValueError(f"{name}={value!r}: list the proxies' addresses or networks (e.g. 127.0.0.1,10.0.0.0/8), "
                         "not how many there are")
    try:
        return [ipaddress.ip_network(item.strip(), strict=False) for item in value.split(",") if item.strip()]
    except ValueError as exc:
        raise ValueError(f"{name}={value!r}: {exc}") from None


def env_networks_default(text: str) -> list:
    """``text``'s addresses and CIDRs (a default for env_networks)."""
    return [ipaddress.ip_network(item.strip(), strict=False) for item in text.split(",")]


def env_tls_file(name: str) -> str:
    """The path of a certificate or key file, from ``NAME`` or ``NAME_FILE``
    (the same path: the form for a secret mounted as a file, as compose and
    Kubernetes do). Never the file's content: the driver reads it itself.
    Empty when unset; otherwise it must be a file this process can read."""
    path = os.environ.get(f"{name}_FILE") or os.environ.get(name) or ""
    if not path:
        return ""
    if path.lstrip().startswith("-----BEGIN"):
        raise ValueError(f"{name}: give the path of a PEM file, not its content")
    if not os.path.isfile(path) or not os.access(path, os.R_OK):
        raise ValueError(f"{name}={path!r}: no such readable file")
    return path


def local_secret_key(state_dir: Path) -> str:
    """The quick start's key: made once per state directory (``secret_key``,
    mode 0600) and shared by every process using that directory; processes
    starting together agree on one key. Only without DJANGO_HTTPS: production
    refuses to start without DJANGO_SECRET_KEY (settings.py)."""
    path = state_dir / "secret_key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    import secrets

    state_dir.mkdir(parents=True, exist_ok=True)
    # Written whole under a name of this process's, then linked into place:
    # the link fails if another process starting at the same time won.
    scratch = state_dir / f".secret_key.{os.getpid()}"
    descriptor = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(secrets.token_urlsafe(50))
    try:
        os.link(scratch, path)
    except FileExistsError:
        pass
    finally:
        scratch.unlink()
    return path.read_text().strip()
