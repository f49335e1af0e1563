"""Alerts: debounced messages by e-mail (a real SMTP server on loopback: STARTTLS with a
certificate of a test CA, then a login) and by webhook (an HTTP server on loopback), driven by
the real sync job against two Orthanc servers and Dagster's run-status sensors."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from dagster import (
    DagsterEventType,
    DagsterInstance,
    build_run_status_sensor_context,
)

from dicom_sync_dagster.alerts.channels import Alert, deliver, webhook_payload
from dicom_sync_dagster.alerts.sensors import (
    ON_FAILURE,
    ON_SUCCESS,
    alert_sensors,
    on_quiet_routes,
)
from dicom_sync_dagster.alerts.settings import load_alert_settings
from dicom_sync_dagster.definitions import defs, route_definitions
from dicom_sync_dagster.orchestration.check_state import (
    CheckState,
    write_check_state,
)
from dicom_sync_dagster.routes import Route
from dicom_sync_dagster.settings import ConfigError
from dicom_sync_dagster.synthetic import SyntheticStudy

from .alert_servers import SMTP_PASSWORD, SMTP_USER, SmtpServer, WebhookServer
from .conftest import Site
from .helpers import run_sync
from .test_tls import pki  # noqa: F401 - the fixture: a test CA and a 127.0.0.1 certificate

UI = "http://dicom-sync.example.org:3000"
ROUTE = Route("default")


@pytest.fixture
def smtp(pki):  # noqa: F811
    server = SmtpServer(pki.server_crt, pki.server_key).start()
    yield server
    server.stop()


@pytest.fixture
def webhook():
    server = WebhookServer()
    yield server
    server.stop()


def _settings(smtp: SmtpServer | None, webhook: WebhookServer | None, pki=None, **more):  # noqa: F811
    env = {"DICOM_SYNC_ROUTES_FILE": "none", "DICOM_SYNC_ALERT_UI_URL": UI}
    if smtp:
        env |= {
            "DICOM_SYNC_ALERT_EMAIL_TO": "pacs-team@example.org, it-oncall@example.org",
            "DICOM_SYNC_ALERT_EMAIL_FROM": "dicom-sync@example.org",
            "DICOM_SYNC_ALERT_SMTP_HOST": "127.0.0.1",
            "DICOM_SYNC_ALERT_SMTP_PORT": str(smtp.port),
            "DICOM_SYNC_ALERT_SMTP_USER": SMTP_USER,
            "DICOM_SYNC_ALERT_SMTP_PASSWORD": SMTP_PASSWORD,
            "DICOM_SYNC_ALERT_SMTP_CA": pki.ca_crt,
        }
    if webhook:
        env["DICOM_SYNC_ALERT_WEBHOOK_URL"] = webhook.url
    return load_alert_settings({**env, **more})


def _finish(sensors: dict, instance: DagsterInstance, run_id: str) -> None:
    """What the daemon does when the run's last event is stored: call the matching sensor."""
    run = instance.get_run_by_id(run_id)
    [event] = [
        entry.dagster_event
        for entry in instance.all_logs(run_id)
        if entry.dagster_event
        and entry.dagster_event.event_type
        in (DagsterEventType.RUN_SUCCESS, DagsterEventType.RUN_FAILURE)
    ]
    failed = event.event_type == DagsterEventType.RUN_FAILURE
    name = ON_FAILURE if failed else ON_SUCCESS
    context = build_run_status_sensor_context(
        sensor_name=name, dagster_event=event, dagster_instance=instance, dagster_run=run
    )
    sensors[name](context)


@pytest.mark.servers
def test_a_failure_seen_after_a_newer_success_says_nothing(site, tmp_path, webhook, monkeypatch):
    """The failure and success sensors each keep their own cursor, so the daemon may hand them
    runs out of order: an older failure must not report a route that already works again."""
    settings = _settings(None, webhook)
    sensors = {
        s.name: s for s in alert_sensors([ROUTE], [defs().resolve_job_def("dicom_sync")], settings)
    }
    site.add_remote(SyntheticStudy(site.ago(hours=1), [2]))
    good = site.env()
    env = {"now": good | {"DICOM_SYNC_MOVE_DESTINATION": "NOWHERE"}}
    monkeypatch.setattr(Site, "env", lambda self: env["now"])

    with DagsterInstance.from_config(str(tmp_path)) as instance:
        failed = run_sync(site, instance, mode="all").run_id
        env["now"] = good
        succeeded = run_sync(site, instance, mode="all").run_id
        _finish(sensors, instance, succeeded)  # the success sensor's tick comes first
        _finish(sensors, instance, failed)

    assert webhook.posts == []


@pytest.mark.servers
def test_a_route_failing_is_told_once_and_its_recovery_once(
    site,
    tmp_path,
    smtp,
    webhook,
    pki,  # noqa: F811
    monkeypatch,
):
    settings = _settings(smtp, webhook, pki)
    sensors = {
        s.name: s for s in alert_sensors([ROUTE], [defs().resolve_job_def("dicom_sync")], settings)
    }
    study = site.add_remote(SyntheticStudy(site.ago(hours=1), [2, 3], patient_name="DOE^JANE"))
    good = site.env()
    bad = good | {"DICOM_SYNC_MOVE_DESTINATION": "NOWHERE"}  # Orthanc: 0xC000, nothing moved
    env = {"now": bad}
    monkeypatch.setattr(Site, "env", lambda self: env["now"])
    options = {"failing_runs_limit": 1}

    with DagsterInstance.from_config(str(tmp_path)) as instance:
        runs = []
        for destination in (bad, bad, bad, good):
            env["now"] = destination
            runs.append(run_sync(site, instance, options=options, mode="all").run_id)
            _finish(sensors, instance, runs[-1])

    subjects = [" ".join(message["Subject"].split()) for message in smtp.mailbox.messages]
    assert subjects == [
        "dicom-sync: route default is failing",  # run 1
        "dicom-sync: route default: series keep failing",  # run 2
        "dicom-sync: route default works again",  # run 4; run 3 said nothing new
        "dicom-sync: route default: no series keeps failing",
    ]
    assert smtp.mailbox.logins == [SMTP_USER] * 4  # logged in (after STARTTLS: required)
    first = smtp.mailbox.messages[0]
    assert first["To"] == "pacs-team@example.org, it-oncall@example.org"
    body = first.get_content()
    assert f"{UI}/runs/{runs[0]}" in body
    assert "REMOTEPACS" in body and "LOCALPACS" in body and "move destination NOWHERE" in body
    assert "What failed: step report: 2 of 2 series not transferred" in body
    assert "does not know move destination NOWHERE" in body
    assert f"{UI}/runs/{runs[3]}" in smtp.mailbox.messages[2].get_content()
    assert [post["json"]["event"] for post in webhook.posts] == [
        "failing",
        "series_failing",
        "recovered",
        "series_recovered",
    ]
    assert webhook.posts[0]["json"]["text"].split() == body.split()  # the same words
    everything = json.dumps(webhook.posts) + "".join(m.as_string() for m in smtp.mailbox.messages)
    assert "DOE" not in everything and study.study_uid not in everything  # no patient data
    assert SMTP_PASSWORD not in everything


def _write_check(tmp_path, minutes_ago: float, ok: bool = True) -> None:
    checked_at = datetime.now(timezone.utc) - timedelta(minutes=minutes_ago)
    state = CheckState(checked_at.isoformat(), ok, {"series_planned": 0})
    write_check_state(tmp_path, "default", state)  # as the route's schedule check does


def test_no_successful_check_for_the_set_minutes_is_told_once(tmp_path, webhook):
    settings = _settings(None, webhook, DICOM_SYNC_ALERT_NO_CHECK_MINUTES="30")
    now = datetime.now(timezone.utc)

    def evaluate() -> list[str]:
        with DagsterInstance.from_config(str(tmp_path)) as instance:
            return [a.kind for a in on_quiet_routes(instance, [ROUTE], settings, now, _Log())]

    assert evaluate() == []  # no check file, no run: nothing known, nothing said
    _write_check(tmp_path, minutes_ago=20)
    assert evaluate() == []
    _write_check(tmp_path, minutes_ago=45)
    assert evaluate() == ["no_check"]
    assert evaluate() == []  # told once
    _write_check(tmp_path, minutes_ago=1, ok=False)
    assert evaluate() == []  # a failed check is no success
    _write_check(tmp_path, minutes_ago=1)
    assert evaluate() == ["checks_back"]
    [told, back] = [post["json"] for post in webhook.posts]
    assert told["title"] == "dicom-sync: route default: no successful check for 45 minutes"
    assert "job%3Adicom_sync" in told["url"] and told["url"].startswith(UI)
    assert back["event"] == "checks_back"


class _Log:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, text: str) -> None:
        self.lines.append(text)

    error = info


def test_teams_and_slack_get_payloads_they_accept(webhook):
    alert = Alert(
        "failing", "ct_north", "dicom-sync: route ct_north is failing", ["x"], f"{UI}/runs/1"
    )
    for shape in ("teams", "slack"):
        settings = _settings(None, webhook, DICOM_SYNC_ALERT_WEBHOOK_FORMAT=shape)
        assert deliver(settings, alert) == (1, [])
    teams, slack = (post["json"] for post in webhook.posts)
    [attachment] = teams["attachments"]
    assert teams["type"] == "message"
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard" and card["body"][0]["text"] == alert.title
    assert card["actions"] == [
        {"type": "Action.OpenUrl", "title": "Open in Dagster", "url": alert.url}
    ]
    assert slack == {"text": f"*{alert.title}*\nx\n<{alert.url}|Open in Dagster>"}


def test_delivery_failures_name_the_channel_never_the_secret(smtp, pki):  # noqa: F811
    settings = _settings(smtp, None, pki, DICOM_SYNC_ALERT_SMTP_PASSWORD="wrong-Pa55")
    bad_hook = _settings(None, None, DICOM_SYNC_ALERT_WEBHOOK_URL="http://127.0.0.1:9/hooks/TOKEN")
    alert = Alert("failing", "default", "t", [], "")

    delivered, [mail_error] = deliver(settings, alert)
    _, [hook_error] = deliver(bad_hook, alert)

    assert delivered == 0 and smtp.mailbox.messages == []
    assert f"SMTP server 127.0.0.1:{smtp.port}: login as 'alerts' refused" in mail_error
    assert "wrong-Pa55" not in mail_error
    assert hook_error.startswith("webhook at 127.0.0.1:9: ") and "TOKEN" not in hook_error


def test_alerts_are_off_unless_configured(webhook):
    assert route_definitions([ROUTE]).sensors in (None, [])
    configured = route_definitions([ROUTE], _settings(None, webhook))
    assert {s.name for s in configured.sensors} == {
        "dicom_sync_alert_on_failure",
        "dicom_sync_alert_on_success",
        "dicom_sync_alert_no_check",
    }


def test_bad_alert_settings_name_the_variable_and_value_never_the_password():
    with pytest.raises(ConfigError) as error:
        load_alert_settings(
            {
                "DICOM_SYNC_ROUTES_FILE": "none",
                "DICOM_SYNC_ALERT_EMAIL_TO": "pacs-team@example.org, not-an-address",
                "DICOM_SYNC_ALERT_SMTP_PORT": "70000",
                "DICOM_SYNC_ALERT_SMTP_PASSWORD": "hunter2-secret",
                "DICOM_SYNC_ALERT_WEBHOOK_URL": "hooks.example.org/x",
                "DICOM_SYNC_ALERT_NO_CHECK_MINUTES": "0",
            }
        )
    problems = error.value.problems
    assert "DICOM_SYNC_ALERT_EMAIL_TO='not-an-address' is not an e-mail address" in problems
    assert (
        "DICOM_SYNC_ALERT_WEBHOOK_URL='hooks.example.org/x' is not an http:// or https:// URL"
        in problems
    )
    assert "DICOM_SYNC_ALERT_NO_CHECK_MINUTES='0' must be a number of minutes, 1-10080" in problems
    assert "hunter2" not in str(error.value)


def test_the_routes_files_alerts_block_is_checked_naming_its_fields(tmp_path):
    routes = tmp_path / "dicom_sync.yaml"
    routes.write_text(
        "local: {ae_title: LOCALPACS, host: 127.0.0.1, port: 4242}\n"
        "routes: [{name: ct, remote: {ae_title: CT, host: 127.0.0.1, port: 104}}]\n"
        "alerts:\n  email_to: [pacs-team@example.org]\n  smtp_host: smtp.example.org\n"
        "  smtp_port: nope\n  smtp_user: dicom-sync\n"
    )
    env = {"DICOM_SYNC_ROUTES_FILE": str(routes)}
    with pytest.raises(ConfigError) as error:
        load_alert_settings(env)
    assert error.value.problems == [
        f"{routes}: alerts.smtp_port='nope' is not a TCP port (a whole number 1-65535)",
        f"{routes}: alerts.smtp_user is set but DICOM_SYNC_ALERT_SMTP_PASSWORD is not "
        "(login needs both)",
    ]
    routes.write_text(routes.read_text().replace("smtp_port: nope", "smtp_port: 2525"))
    settings = load_alert_settings(env | {"DICOM_SYNC_ALERT_SMTP_PASSWORD": "pw"})
    assert (settings.email_to, settings.smtp_port, settings.smtp_password) == (
        ("pacs-team@example.org",),
        2525,
        "pw",
    )
    routes.write_text(routes.read_text() + "  smtp_pasword: x\n")
    with pytest.raises(ConfigError, match=r"alerts: unknown field 'smtp_pasword'"):
        load_alert_settings(env)


def test_a_login_in_clear_text_and_an_unloadable_ca_file_are_refused(tmp_path):
    broken_ca = tmp_path / "ca.pem"
    broken_ca.write_text("not a certificate")
    env = {
        "DICOM_SYNC_ROUTES_FILE": "none",
        "DICOM_SYNC_ALERT_EMAIL_TO": "pacs-team@example.org",
        "DICOM_SYNC_ALERT_SMTP_HOST": "smtp.example.org",
        "DICOM_SYNC_ALERT_SMTP_SECURITY": "none",
        "DICOM_SYNC_ALERT_SMTP_USER": "dicom-sync",
        "DICOM_SYNC_ALERT_SMTP_PASSWORD": "hunter2-secret",
        "DICOM_SYNC_ALERT_SMTP_CA": str(broken_ca),
    }
    with pytest.raises(ConfigError) as error:
        load_alert_settings(env)
    [clear, ca] = error.value.problems
    assert clear.startswith(
        "DICOM_SYNC_ALERT_SMTP_USER is set with DICOM_SYNC_ALERT_SMTP_SECURITY=none"
    )
    assert ca.startswith(f"DICOM_SYNC_ALERT_SMTP_CA={str(broken_ca)!r}: ")
    assert "hunter2" not in str(error.value)


def test_peer_text_cannot_mention_a_whole_slack_channel():
    alert = Alert("failing", "default", "route default is failing", ["error: <!channel> & co"])

    text = webhook_payload(alert, "slack")["text"]

    assert "<!channel>" not in text and "&lt;!channel&gt; &amp; co" in text
