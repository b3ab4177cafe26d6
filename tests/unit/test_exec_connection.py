"""A long exec gives its database connection back while it waits on the
engine (issue #15): a hundred execs of up to 600 s must not hold a hundred
database connections."""
from __future__ import annotations

import pytest
from django import db

from playground.sessions import actions, hosts


@pytest.mark.django_db(transaction=True)  # as in a request: no test transaction around it
def test_an_exec_closes_its_database_connection_before_waiting_on_the_engine(alice, start, monkeypatch):
    session = start(user=alice)
    node1 = session.instances.get()
    driver = hosts.driver_for(node1.host)
    seen = []
    close = db.connection.close

    def closing():
        seen.append("connection closed")
        close()

    real_exec = type(driver).exec

    def exec_(self, state, command, *, timeout=30.0):
        seen.append("exec")
        return real_exec(self, state, command, timeout=timeout)

    monkeypatch.setattr(db.connection, "close", closing)
    monkeypatch.setattr(type(driver), "exec", exec_)
    result = actions.exec_command(instance=node1, command="echo hello", timeout=5)
    assert result.exit_code == 0
    assert seen == ["connection closed", "exec"]
