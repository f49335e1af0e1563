"""DICOM TLS: settings checks, and associations and the sync job against an Orthanc on TLS.

Certificates come from the openssl CLI: a CA that signs a server certificate for IP:127.0.0.1
and a client certificate, and another CA that signs a client certificate nobody trusts.
"""

from __future__ import annotations

import dataclasses
import io
import shutil
import subprocess
from pathlib import Path

import pytest
from dagster import EnvVar

from dicom_sync_dagster.dicom import (
    AssociationAborted,
    TlsFailed,
    TlsFiles,
    open_session,
    queries,
)
from dicom_sync_dagster.orchestration.resources import DicomNodeResource, node_resource_from_env
from dicom_sync_dagster.sandbox import OrthancServer, OrthancTls, Peer
from dicom_sync_dagster.settings import (
    REMOTE_TLS_CA,
    REMOTE_TLS_CERT,
    REMOTE_TLS_KEY,
    ConfigError,
    settings_from_env,
)
from dicom_sync_dagster.synthetic import SyntheticStudy

from . import helpers
from .conftest import CALLING_AE, Site, _reference, _require
from .helpers import moved_series, run_sync

servers = pytest.mark.servers

BASE = {
    "DICOM_SYNC_REMOTE_AE": "REMOTEPACS",
    "DICOM_SYNC_REMOTE_HOST": "127.0.0.1",
    "DICOM_SYNC_REMOTE_PORT": "104",
    "DICOM_SYNC_LOCAL_AE": "LOCALPACS",
    "DICOM_SYNC_LOCAL_HOST": "127.0.0.1",
    "DICOM_SYNC_LOCAL_PORT": "4242",
    "DICOM_SYNC_TIMEZONE": "Europe/Berlin",
}


@dataclasses.dataclass
class Pki:
    folder: Path

    def __getattr__(self, name: str) -> str:  # pki.ca_crt: ".../ca.crt"
        if name.startswith("_"):
            raise AttributeError(name)
        return str(self.folder / name.replace("_", "."))

    def files(self, ca: str = "ca", client: str | None = "client") -> TlsFiles:
        """CA ``ca``; and certificate and key of ``client`` unless None."""
        if client is None:
            return TlsFiles(getattr(self, f"{ca}_crt"))
        cert, key = (getattr(self, f"{client}_{kind}") for kind in ("crt", "key"))
        return TlsFiles(getattr(self, f"{ca}_crt"), cert, key)


def _openssl(folder: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)


def _make_ca(folder: Path, name: str) -> None:
    _openssl(
        folder, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", f"/CN=test {name}", "-keyout", f"{name}.key", "-out", f"{name}.crt",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip


def _make_leaf(folder: Path, name: str, ca: str, san: str) -> None:
    _openssl(
        folder, "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN=test {name}",
        "-keyout", f"{name}.key", "-out", f"{name}.csr",
    )  # fmt: skip
    (folder / f"{name}.ext").write_text(
        f"subjectAltName={san}\nbasicConstraints=CA:FALSE\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
    )
    _openssl(
        folder, "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
        "-CAcreateserial", "-days", "2", "-out", f"{name}.crt", "-extfile", f"{name}.ext",
    )  # fmt: skip


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    if not shutil.which("openssl"):
        pytest.skip("the openssl CLI is not installed; the TLS tests make certificates with it")
    folder = tmp_path_factory.mktemp("pki")
    _make_ca(folder, "ca")
    _make_ca(folder, "otherca")
    _make_leaf(folder, "server", "ca", "IP:127.0.0.1")
    _make_leaf(folder, "client", "ca", "DNS:dicomsync.test")
    _make_leaf(folder, "rogue", "otherca", "DNS:rogue.test")  # a client Orthanc must refuse
    _openssl(
        folder, "pkey", "-in", "client.key", "-aes256", "-passout", "pass:x", "-out", "enc.key"
    )
    return Pki(folder)


def _tls_orthanc(folder: Path, pki: Pki, peers: list[Peer], *, required: bool) -> OrthancServer:
    _require("Orthanc", "orthanc")
    tls = OrthancTls(Path(pki.server_crt), Path(pki.server_key), Path(pki.ca_crt), required)
    return OrthancServer(folder, "TLSPACS", peers, tls=tls).start()


@pytest.fixture
def tls_site(tmp_path, pki, local_orthanc):
    """An Orthanc on DICOM TLS (client certificates required) that moves to LOCALPACS."""
    peers = [Peer(CALLING_AE), Peer(local_orthanc.node.ae_title, local_orthanc.node.port)]
    remote = _tls_orthanc(tmp_path / "tls", pki, peers, required=True)
    yield Site(remote, local_orthanc, _reference())
    remote.stop()


def upload(server: OrthancServer, study: SyntheticStudy) -> SyntheticStudy:
    """Seed over REST (synthetic.store speaks plain DICOM only)."""
    for ds in study.datasets():
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        server.rest("/instances", buffer.getvalue())
    return study


def remote_node(site: Site, files: TlsFiles | None, host: str = "127.0.0.1"):
    return dataclasses.replace(site.remote.node, role="remote", host=host, tls=files)


# --- associations ------------------------------------------------------------------------


@servers
def test_echo_and_find_over_tls_with_a_client_certificate(tls_site, pki):
    study = upload(tls_site.remote, SyntheticStudy(tls_site.ago(hours=1), [2, 3]))

    with open_session(remote_node(tls_site, pki.files()), CALLING_AE) as session:
        assert session.echo() == 0
        studies = session.find(queries.studies_by_date("19000101-29991231"))
        assert session.assoc.dul.socket.socket.version().startswith("TLS")

    assert [queries.text(ds, "StudyInstanceUID") for ds in studies] == [study.study_uid]


@servers
def test_tls_failures_say_why_and_name_the_node(tls_site, pki, local_orthanc):
    chain_error = "self-signed certificate in certificate chain"  # Orthanc sends its CA too
    cases = [
        (
            remote_node(tls_site, pki.files("otherca")),
            f"certificate verify failed: {chain_error} (did the CA in {pki.otherca_crt!r} sign",
        ),
        (
            remote_node(tls_site, pki.files(), host="localhost"),  # certificate: IP:127.0.0.1
            "certificate verify failed: Hostname mismatch, certificate is not valid for "
            "'localhost'",
        ),
        (remote_node(tls_site, pki.files(client=None)), "requires a client certificate"),
        (
            remote_node(tls_site, pki.files(client="rogue")),
            "the server refused our client certificate (tlsv1 alert unknown ca)",
        ),
        (
            dataclasses.replace(local_orthanc.node, tls=pki.files()),  # a plain server
            "does the server speak DICOM TLS on this port?",
        ),
    ]
    for node, expected in cases:
        with pytest.raises(TlsFailed) as excinfo:
            with open_session(node, CALLING_AE):
                pass
        message = str(excinfo.value)
        assert message.startswith(f"{node}: TLS handshake failed: "), message
        assert expected in message, message

    # Without TLS on our side the TLS server just drops the association.
    with pytest.raises(AssociationAborted):
        with open_session(remote_node(tls_site, None), CALLING_AE):
            pass


@servers
def test_ca_alone_is_enough_when_the_server_wants_no_client_certificate(tmp_path, pki):
    server = _tls_orthanc(tmp_path / "tls", pki, [Peer(CALLING_AE)], required=False)
    try:
        node = dataclasses.replace(server.node, tls=pki.files(client=None))
        with open_session(node, CALLING_AE) as session:
            assert session.echo() == 0
    finally:
        server.stop()


# --- the sync job ------------------------------------------------------------------------


@servers
def test_sync_job_moves_a_series_from_a_tls_remote_to_a_plain_local(tls_site, pki, monkeypatch):
    study = upload(tls_site.remote, SyntheticStudy(tls_site.ago(hours=1), [4, 2], accession="T"))
    site_resources = helpers.site_resources

    def with_remote_tls(files: TlsFiles):
        def resources(env, **options):
            plain = site_resources(env, **options)
            remote = plain["remote_pacs"]
            tls = {"tls_ca": files.ca, "tls_cert": files.cert or "", "tls_key": files.key or ""}
            fields = {"role": remote.role, "ae_title": remote.ae_title, "host": remote.host}
            return {**plain, "remote_pacs": DicomNodeResource(**fields, port=remote.port, **tls)}

        return resources

    monkeypatch.setattr(helpers, "site_resources", with_remote_tls(pki.files()))
    result = run_sync(tls_site)

    assert result.success, result
    assert moved_series(result) == {study.series_uids[1]}  # the remote's C-STORE: plain
    assert tls_site.local.series_instances(study.series_uids[1]) == 2

    monkeypatch.setattr(helpers, "site_resources", with_remote_tls(pki.files("otherca")))
    failed = run_sync(tls_site)

    assert not failed.success
    failure = next(e for e in failed.all_node_events if e.event_type_value == "STEP_FAILURE")
    description = failure.event_specific_data.error.message
    assert "remote PACS TLSPACS@127.0.0.1" in description
    assert "TLS handshake failed: certificate verify failed" in description


# --- settings ----------------------------------------------------------------------------


def test_tls_settings_from_env(pki):
    env = {**BASE, REMOTE_TLS_CA: pki.ca_crt, REMOTE_TLS_CERT: pki.client_crt}
    env[REMOTE_TLS_KEY] = pki.client_key
    settings = settings_from_env(env)

    assert settings.remote.tls == TlsFiles(pki.ca_crt, pki.client_crt, pki.client_key)
    assert settings.local.tls is None
    assert settings_from_env({**BASE, REMOTE_TLS_CA: pki.ca_crt}).remote.tls == TlsFiles(pki.ca_crt)


def test_tls_settings_errors_name_the_variable_and_the_path(pki, tmp_path):
    missing = str(tmp_path / "nope.crt")
    cases = [
        ({REMOTE_TLS_CA: missing}, f"{REMOTE_TLS_CA}={missing!r} does not exist"),
        (
            {REMOTE_TLS_CA: pki.ca_crt, REMOTE_TLS_CERT: pki.client_crt},
            f"{REMOTE_TLS_CERT}={pki.client_crt!r} is set but {REMOTE_TLS_KEY} is not",
        ),
        (
            {REMOTE_TLS_KEY: pki.client_key},
            f"{REMOTE_TLS_KEY}={pki.client_key!r} is set but {REMOTE_TLS_CA} is not",
        ),
        ({REMOTE_TLS_CA: pki.client_key}, f"{REMOTE_TLS_CA}={pki.client_key!r} holds no PEM"),
        (
            {
                REMOTE_TLS_CA: pki.ca_crt,
                REMOTE_TLS_CERT: pki.client_crt,
                REMOTE_TLS_KEY: pki.ca_key,
            },
            f"{REMOTE_TLS_KEY}={pki.ca_key!r} is not the private key of the certificate",
        ),
        (
            {
                REMOTE_TLS_CA: pki.ca_crt,
                REMOTE_TLS_CERT: pki.client_crt,
                REMOTE_TLS_KEY: pki.enc_key,
            },
            f"{REMOTE_TLS_KEY}={pki.enc_key!r} is an encrypted private key",  # and no prompt
        ),
        (
            {REMOTE_TLS_CA: pki.ca_crt, REMOTE_TLS_CERT: str(tmp_path), REMOTE_TLS_KEY: pki.ca_key},
            f"{REMOTE_TLS_CERT}={str(tmp_path)!r} is a directory",
        ),
    ]
    for changes, expected in cases:
        with pytest.raises(ConfigError) as excinfo:
            settings_from_env({**BASE, **changes})
        assert len(excinfo.value.problems) == 1, excinfo.value.problems
        assert excinfo.value.problems[0].startswith(expected), excinfo.value.problems


def test_node_resource_takes_tls_from_the_environment(pki, monkeypatch):
    monkeypatch.setenv("DICOM_SYNC_LOCAL_TLS_CA", pki.ca_crt)
    monkeypatch.delenv("DICOM_SYNC_LOCAL_TLS_CERT", raising=False)
    resource = node_resource_from_env("local")

    assert resource.tls_ca == EnvVar("DICOM_SYNC_LOCAL_TLS_CA")
    assert resource.tls_cert == ""
    node = DicomNodeResource(role="local", ae_title="L", host="h", port="1", tls_ca=pki.ca_crt)
    assert node.node().tls == TlsFiles(pki.ca_crt)


@servers
def test_configure_echoes_a_tls_node_with_the_tls_files_from_the_environment(
    tls_site, pki, monkeypatch, tmp_path
):
    from dicom_sync_dagster.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DICOM_SYNC_REMOTE_TLS_CA", pki.ca_crt)
    monkeypatch.setenv("DICOM_SYNC_REMOTE_TLS_CERT", pki.client_crt)
    monkeypatch.setenv("DICOM_SYNC_REMOTE_TLS_KEY", pki.client_key)
    local = tls_site.local.node
    code = main(
        ["configure", "--remote-ae", "TLSPACS", "--remote-host", "127.0.0.1",
         "--remote-port", str(tls_site.remote.node.port), "--local-ae", local.ae_title,
         "--local-host", local.host, "--local-port", str(local.port),
         "--calling-ae", CALLING_AE, "--timezone", "UTC"]
    )  # fmt: skip

    assert code == 0  # both nodes answered C-ECHO, the remote over TLS
    assert f"DICOM_SYNC_REMOTE_PORT={tls_site.remote.node.port}" in (tmp_path / ".env").read_text()
