"""The Docker driver's reading of a container's terminal relay (no engine)."""
from __future__ import annotations

from sandboxes.docker import LABEL_RELAY, RELAY_TOKEN, _addresses, _relay_of, _tail_from_line


def info(labels=None, env=None, networks=None) -> dict:
    return {
        "Config": {"Labels": labels or {}, "Env": env or []},
        "NetworkSettings": {"Networks": networks or {}},
    }


def test_a_relay_needs_both_the_image_label_and_the_key():
    assert _relay_of(info({LABEL_RELAY: "4622"}, [f"{RELAY_TOKEN}=k3y=with=equals", "TERM=x"])) == (4622, "k3y=with=equals")
    assert _relay_of(info({LABEL_RELAY: "4622"}, ["TERM=x"])) is None  # made before keys existed
    assert _relay_of(info({}, [f"{RELAY_TOKEN}=k"])) is None  # an image without a relay
    assert _relay_of(info({LABEL_RELAY: "not-a-port"}, [f"{RELAY_TOKEN}=k"])) is None
    assert _relay_of(info({LABEL_RELAY: "4622"}, [f"{RELAY_TOKEN}="])) is None
    assert _relay_of({"Config": {"Labels": None, "Env": None}}) is None


def test_the_session_network_address_comes_first_and_empty_ones_are_skipped():
    networks = {
        "other": {"IPAddress": "10.0.0.5"},
        "pg-session": {"IPAddress": "10.0.1.7"},
        "none": {"IPAddress": ""},
    }
    assert _addresses(info(networks=networks), {"network": "pg-session"}) == ["10.0.1.7", "10.0.0.5"]
    assert _addresses(info(), {"network": None}) == []


def test_recent_output_is_cut_at_a_line_start():
    assert _tail_from_line(b"short", 10) == b"short"
    assert _tail_from_line(b"aaaa\nbbbb\ncccc", 7) == b"cccc"
    assert _tail_from_line(b"x" * 20, 5) == b"x" * 5  # no line to cut at


def test_reading_a_relay_stops_at_its_size_cap_and_its_deadline():
    import socket
    import threading

    from sandboxes.docker import RELAY_READ_LIMIT, _read_to_end

    ours, flooder = socket.socketpair()
    stop = threading.Event()

    def flood():  # a relay (or what a learner put in its place) that never stops
        while not stop.is_set():
            try:
                flooder.sendall(b"x" * 65536)
            except OSError:
                return

    threading.Thread(target=flood, daemon=True).start()
    try:
        data, complete = _read_to_end(ours, 30)
        assert len(data) == RELAY_READ_LIMIT and not complete
    finally:
        stop.set()
        ours.close()
        flooder.close()

    ours, silent = socket.socketpair()
    try:
        assert _read_to_end(ours, 0.3) == (b"", False)  # given up at the deadline, no exception
    finally:
        ours.close()
        silent.close()
