"""A lab host reached over the network is spoken to over mutual TLS only: the
settings refuse one without the three files (every process stops at start-up
with the setting named), and the driver itself refuses to build a client that
would speak plain HTTP or skip verifying the engine. The handshakes against a
real engine are in tests/integration/test_lab_host_tls.py."""
from __future__ import annotations

import pytest

from playground.settings import TLS_FILE_SETTINGS, env_tls_file, lab_host_tls
from sandboxes.base import DriverError
from sandboxes.docker import DockerDriver

TCP_HOST = "tcp://lab1.internal:2376"


@pytest.fixture
def pem_files(tmp_path) -> dict[str, str]:
    """Stand-ins for the CA, certificate and key (only their paths matter here)."""
    files = {}
    for name in TLS_FILE_SETTINGS:
        path = tmp_path / f"{name.lower()}.pem"
        path.write_text("-----BEGIN CERTIFICATE-----\n")
        files[name] = str(path)
    return files


@pytest.mark.parametrize("left_out", TLS_FILE_SETTINGS)
def test_a_tcp_lab_host_without_all_three_tls_files_is_refused_naming_the_missing_setting(pem_files, left_out):
    del pem_files[left_out]
    with pytest.raises(ValueError, match=f"{TCP_HOST} .*mutual TLS: set {left_out}"):
        lab_host_tls(["unix:///run/playground/docker.sock", TCP_HOST], pem_files)


def test_https_and_address_only_hosts_need_tls_too_and_plain_http_is_refused_outright(pem_files):
    with pytest.raises(ValueError, match="PLAYGROUND_LAB_HOST_TLS_CA"):
        lab_host_tls(["https://lab1.internal:2376"], {})
    with pytest.raises(ValueError, match="PLAYGROUND_LAB_HOST_TLS_CA"):
        lab_host_tls(["lab1.internal:2376"], {})
    with pytest.raises(ValueError, match="plain HTTP"):
        lab_host_tls(["http://lab1.internal:2376"], pem_files)


def test_unix_sockets_need_no_tls_and_tcp_hosts_get_the_three_paths(pem_files):
    assert lab_host_tls(["unix:///run/playground/docker.sock"], {}) == {}
    assert lab_host_tls([TCP_HOST], pem_files) == {
        "tls_ca_cert": pem_files["PLAYGROUND_LAB_HOST_TLS_CA"],
        "tls_client_cert": pem_files["PLAYGROUND_LAB_HOST_TLS_CERT"],
        "tls_client_key": pem_files["PLAYGROUND_LAB_HOST_TLS_KEY"],
    }


def test_a_tls_file_setting_takes_a_path_or_the_secrets_file_form_and_it_must_be_readable(monkeypatch, tmp_path):
    key = tmp_path / "key.pem"
    key.write_text("-----BEGIN PRIVATE KEY-----\n")
    monkeypatch.delenv("X_TLS_KEY", raising=False)
    assert env_tls_file("X_TLS_KEY") == ""
    monkeypatch.setenv("X_TLS_KEY_FILE", str(key))  # a mounted secret: its path, never its content
    assert env_tls_file("X_TLS_KEY") == str(key)
    monkeypatch.setenv("X_TLS_KEY_FILE", str(tmp_path / "missing.pem"))
    with pytest.raises(ValueError, match="X_TLS_KEY=.*missing.pem.*no such readable file"):
        env_tls_file("X_TLS_KEY")
    monkeypatch.delenv("X_TLS_KEY_FILE")
    monkeypatch.setenv("X_TLS_KEY", key.read_text())
    with pytest.raises(ValueError, match="path of a PEM file, not its content"):
        env_tls_file("X_TLS_KEY")


def driver_options(files: dict[str, str]) -> dict[str, str]:
    """The three options, as the settings give them to every lab host's driver."""
    return lab_host_tls([TCP_HOST], files)


@pytest.mark.parametrize("given", [(), ("tls_client_cert", "tls_client_key"), ("tls_ca_cert",)])
def test_the_driver_refuses_a_tcp_host_without_a_ca_and_a_client_certificate(pem_files, given):
    options = {option: path for option, path in driver_options(pem_files).items() if option in given}
    with pytest.raises(DriverError, match="needs mutual TLS") as refused:
        DockerDriver(url=TCP_HOST, deployment="unit", **options)
    assert refused.value.permanent


def test_the_driver_refuses_plain_http_even_with_certificates(pem_files):
    with pytest.raises(DriverError, match="plain HTTP is refused"):
        DockerDriver(url="http://lab1.internal:2376", deployment="unit", **driver_options(pem_files))


def test_the_driver_verifies_the_engine_against_the_ca_and_shows_its_own_certificate(pem_files, monkeypatch):
    # requests would let these win over the client's own CA (docker/docker-py#2433).
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    monkeypatch.setenv("CURL_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    driver = DockerDriver(url=TCP_HOST, deployment="unit", **driver_options(pem_files))
    assert driver.api.base_url == "https://lab1.internal:2376"
    sent = driver.api.merge_environment_settings(driver.api.base_url, {}, None, None, None)
    assert sent["verify"] == pem_files["PLAYGROUND_LAB_HOST_TLS_CA"]
    assert sent["cert"] == (pem_files["PLAYGROUND_LAB_HOST_TLS_CERT"], pem_files["PLAYGROUND_LAB_HOST_TLS_KEY"])
    assert not sent["proxies"]


def test_a_unix_socket_needs_no_tls():
    assert DockerDriver(url="unix:///run/playground/docker.sock", deployment="unit").api.base_url.startswith(
        "http+docker://")
