from __future__ import annotations

import pytest

from playground.settings import env, env_bool, env_int, env_list


def test_booleans_are_strict(monkeypatch):
    monkeypatch.setenv("X_FLAG", "yes")
    assert env_bool("X_FLAG", False) is True
    monkeypatch.setenv("X_FLAG", "off")
    assert env_bool("X_FLAG", True) is False
    monkeypatch.setenv("X_FLAG", "maybe")
    with pytest.raises(ValueError, match="X_FLAG"):
        env_bool("X_FLAG", True)


def test_integers_have_a_minimum(monkeypatch):
    monkeypatch.setenv("X_NUM", "3")
    assert env_int("X_NUM", 1) == 3
    monkeypatch.setenv("X_NUM", "-1")
    with pytest.raises(ValueError, match="minimum"):
        env_int("X_NUM", 1)
    monkeypatch.setenv("X_NUM", "ten")
    with pytest.raises(ValueError, match="not an integer"):
        env_int("X_NUM", 1)


def test_secrets_come_from_a_file(monkeypatch, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    monkeypatch.setenv("X_SECRET_FILE", str(secret))
    assert env("X_SECRET") == "s3cret"


def test_lists_are_comma_separated(monkeypatch):
    monkeypatch.setenv("X_LIST", "a, b,,c")
    assert env_list("X_LIST", []) == ["a", "b", "c"]
    monkeypatch.delenv("X_LIST")
    assert env_list("X_LIST", ["d"]) == ["d"]
