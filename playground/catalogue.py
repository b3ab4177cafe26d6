"""The images and templates an operator adds or changes without code.

``PLAYGROUND_CATALOGUE_FILE`` names a YAML (or JSON) file; ``PLAYGROUND_CATALOGUE``
may hold the same text itself. It is read once at start-up, on top of the
built-in catalogue in playground/settings.py, and every mistake in it stops
the process there, naming the file and the entry (docs/operations.md,
"The image and template catalogue")::

    images:
      python:                        # a new image: ref and description needed
        ref: registry.example.org/playground-python:3.12
        description: Python 3.12 with pip and venv.
        reserve_memory_mb: 96
      docker:                        # a built-in one: only what changes
        ref: registry.example.org/playground-docker:2026.12
      shell: null                    # null removes an entry (built-in or not)
    templates:
      pair:
        description: Two Python machines on one network.
        image: python
        instances: [alice, bob]

No Django import: settings.py applies it before Django is set up.
"""
from __future__ import annotations

import copy
import re

NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
HOSTNAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
EGRESS_POLICIES = ("none", "session", "internet")


class CatalogueError(ValueError):
    """A mistake in the catalogue (the message names where it came from)."""


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# Each key an image may have: (is it right?, what it must be).
IMAGE_FIELDS = {
    "ref": (lambda v: isinstance(v, str) and v.strip() != "", "an engine image reference (text)"),
    "description": (lambda v: isinstance(v, str) and v.strip() != "", "text"),
    "nested_docker": (lambda v: isinstance(v, bool), "true or false"),
    "pool": (lambda v: _is_int(v) and v >= 0, "a whole number, 0 or more"),
    "reserve_memory_mb": (lambda v: _is_int(v) and v >= 1, "a whole number of MiB, at least 1"),
    "reserve_cpus": (lambda v: _is_number(v) and v >= 0.001, "a number of CPUs, at least 0.001"),
    "disk_mb": (lambda v: _is_int(v) and v >= 1, "a whole number of MiB, at least 1"),
    "egress": (lambda v: v in EGRESS_POLICIES, f"one of {', '.join(EGRESS_POLICIES)}"),
}
TEMPLATE_FIELDS = ("description", "image", "swarm", "instances")


def parse(text: str, where: str) -> dict:
    """The catalogue in ``text`` (YAML, of which JSON is a part)."""
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CatalogueError(f"{where}: not YAML or JSON: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise CatalogueError(f"{where}: must be a mapping with images: and/or templates:")
    unknown = sorted(set(data) - {"images", "templates"})
    if unknown:
        raise CatalogueError(f"{where}: unknown key(s) {', '.join(map(str, unknown))} (images, templates)")
    for section in ("images", "templates"):
        if not isinstance(data.get(section) or {}, dict):
            raise CatalogueError(f"{where}: {section} must be a mapping of name to entry")
    return data


def _image(name, entry, built_in: dict | None, where: str) -> dict:
    at = f"{where}: images.{name}"
    if not isinstance(name, str) or not NAME.match(name):
        raise CatalogueError(f"{at}: a name is lower-case letters, digits, '.', '_' or '-' (at most 63)")
    if not isinstance(entry, dict):
        raise CatalogueError(f"{at}: must be a mapping (or null to remove it)")
    for key, value in entry.items():
        if key not in IMAGE_FIELDS:
            raise CatalogueError(f"{at}: unknown key {key!r} (known: {', '.join(IMAGE_FIELDS)})")
        right, what = IMAGE_FIELDS[key]
        if not right(value):
            raise CatalogueError(f"{at}.{key}: {value!r} is not {what}")
    merged = {**copy.deepcopy(built_in or {}), **entry}
    missing = [key for key in ("ref", "description") if key not in merged]
    if missing:
        raise CatalogueError(f"{at}: a new image needs {' and '.join(missing)}")
    return merged


def _hostnames(value, at: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and HOSTNAME.match(v) for v in value):
        raise CatalogueError(f"{at}: must be a list of host names (lower-case letters, digits, '-')")
    return value


def _template(name, entry, built_in: dict | None, images: dict, where: str) -> dict:
    at = f"{where}: templates.{name}"
    if not isinstance(name, str) or not NAME.match(name):
        raise CatalogueError(f"{at}: a name is lower-case letters, digits, '.', '_' or '-' (at most 63)")
    if not isinstance(entry, dict):
        raise CatalogueError(f"{at}: must be a mapping (or null to remove it)")
    unknown = sorted(set(entry) - set(TEMPLATE_FIELDS))
    if unknown:
        raise CatalogueError(f"{at}: unknown key(s) {', '.join(map(str, unknown))} (known: {', '.join(TEMPLATE_FIELDS)})")
    merged = {**copy.deepcopy(built_in or {}), **entry}
    if not isinstance(merged.get("description"), str) or not merged["description"].strip():
        raise CatalogueError(f"{at}.description: needed (text)")
    if merged.get("image") not in images:
        raise CatalogueError(f"{at}.image: {merged.get('image')!r} is no image of the catalogue "
                             f"({', '.join(sorted(images)) or 'none'})")
    names: list[str] = []
    swarm = merged.get("swarm")
    if swarm is not None:
        if not isinstance(swarm, dict) or set(swarm) - {"managers", "workers"}:
            raise CatalogueError(f"{at}.swarm: must be a mapping of managers: and workers:")
        managers = _hostnames(swarm.get("managers"), f"{at}.swarm.managers")
        if not managers:
            raise CatalogueError(f"{at}.swarm.managers: a swarm needs at least one manager")
        names += managers + _hostnames(swarm.get("workers", []), f"{at}.swarm.workers")
    if "instances" in merged:
        names += _hostnames(merged["instances"], f"{at}.instances")
    if not names:
        raise CatalogueError(f"{at}: needs instances: (host names) or a swarm:")
    if len(set(names)) != len(names):
        raise CatalogueError(f"{at}: a host name appears twice")
    return merged


def apply(images: dict, templates: dict, text: str | None, where: str) -> None:
    """Change ``images`` and ``templates`` (the built-in catalogue) in place by
    the catalogue in ``text``; nothing changes when ``text`` is empty."""
    if not text or not text.strip():
        return
    data = parse(text, where)
    new_images = dict(images)
    for name, entry in (data.get("images") or {}).items():
        if entry is None:
            new_images.pop(name, None)
        else:
            new_images[name] = _image(name, entry, images.get(name), where)
    if not new_images:
        raise CatalogueError(f"{where}: leaves no image at all")
    new_templates = {}
    changes = data.get("templates") or {}
    for name in [*templates, *(n for n in changes if n not in templates)]:
        if name in changes and changes[name] is None:
            continue
        if name in changes:
            new_templates[name] = _template(name, changes[name], templates.get(name), new_images, where)
        elif templates[name].get("image") in new_images:
            new_templates[name] = templates[name]
        # A built-in template whose image was removed goes with it.
    images.clear()
    images.update(new_images)
    templates.clear()
    templates.update(new_templates)
