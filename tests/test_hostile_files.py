"""Nothing on disk can be turned against the sync (issue 14): a hostile routes file is refused
with exit 2 and a short message, links planted in the instance folder are not followed, and
the files there that hold UIDs are 0600."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import yaml
from dagster import DagsterInstance

from dicom_sync_dagster.orchestration.check_state import CheckState, write_check_state
from dicom_sync_dagster.synthetic import SyntheticStudy

from .helpers import run_sync
from .test_cli import dicom_sync, project  # noqa: F401 - the fixture

ROUTE = {
    "name": "ct",
    "remote": {"ae_title": "R", "host": "127.0.0.1", "port": 104},
    "local": {"ae_title": "L", "host": "127.0.0.1", "port": 105},
    "timezone": "UTC",
}


def run_with_routes(folder: Path, text: str):
    (folder / "dicom_sync.yaml").write_text(text)
    return dicom_sync(["run", "--once"], {}, folder)


def test_a_routes_file_with_aliases_is_refused_with_exit_2(project):  # noqa: F811
    """Before: aliases were expanded; a 1.2 KB file of them took 2.3 GB, then a MemoryError."""
    text = "local: &node {ae_title: L, host: 127.0.0.1, port: 105}\n" + yaml.safe_dump(
        {"routes": [{**ROUTE, "local": None}]}
    ).replace("local: null", "local: *node")

    done = run_with_routes(project, text)

    assert done.returncode == 2, done.stderr
    assert "aliases (*name) are not allowed in a routes file" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("max_parallel_moves", ".inf", "route ct.max_parallel_moves=inf must be a finite number"),
        ("move_retries", ".nan", "route ct.move_retries=nan must be a finite number"),
        ("move_deadline", "-.inf", "route ct.move_deadline=-inf must be a finite number"),
    ],
)
def test_numbers_that_are_not_finite_exit_2_naming_the_field(project, field, value, words):  # noqa: F811
    """Before: OverflowError and ValueError tracebacks."""
    text = yaml.safe_dump({"routes": [ROUTE]}).replace("name: ct", f"name: ct\n  {field}: {value}")

    done = run_with_routes(project, text)

    assert done.returncode == 2, done.stderr
    assert words in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("size", [500_000, 10_000_000])
def test_a_huge_ae_title_is_not_echoed_whole(project, size):  # noqa: F811
    """Before: a 10 MB AE title was echoed whole in the error."""
    text = yaml.safe_dump({"routes": [{**ROUTE, "calling_ae": "HUGE"}]})
    text = text.replace("HUGE", "A" * size)  # PyYAML takes ~13 s to dump 10 MB itself

    done = run_with_routes(project, text)

    assert done.returncode == 2
    assert len(done.stderr) < 2000
    assert "A" * 100 not in done.stderr
    if size < 1_000_000:
        assert f"is {size} characters long; an AE title has at most 16" in done.stderr
        assert f"... ({size} characters)" in done.stderr
    else:
        assert "larger than 1048576 bytes; not a routes file" in done.stderr


@pytest.mark.servers
def test_a_link_at_the_lock_is_not_followed(site, tmp_path):
    """Before: the lock was opened through a link planted at its name, and its target
    overwritten with the run's id."""
    site.add_remote(SyntheticStudy(site.ago(hours=1), [1]))
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    (tmp_path / "instance").mkdir()
    with DagsterInstance.from_config(str(tmp_path / "instance")) as instance:
        (Path(instance.root_directory) / "dicom-sync.lock").symlink_to(target)

        result = run_sync(site, instance, options={"lock_wait": 0.5}, mode="all")

    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "RESOURCE_INIT_FAILURE"]
    assert "cannot open the lock file" in failure.event_specific_data.error.to_string()
    assert target.read_text() == "keep me"
    assert site.local.instance_count() == 0  # nothing ran


@pytest.mark.servers
def test_links_at_the_state_files_are_not_followed_and_the_files_are_private(site, tmp_path):
    """Before: the settled state went through a fixed 'dicom-sync-settled.tmp', followed
    when it was a link; the lock and state files were 0644."""
    site.add_remote(SyntheticStudy(site.ago(hours=1), [1]))
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    (tmp_path / "instance").mkdir()
    with DagsterInstance.from_config(str(tmp_path / "instance")) as instance:
        root = Path(instance.root_directory)
        (root / "dicom-sync-settled.tmp").symlink_to(target)
        other = tmp_path / "other.txt"
        other.write_text("keep me too")
        (root / "dicom-sync-settled.json").symlink_to(other)

        first = run_sync(site, instance, mode="all")
        second = run_sync(site, instance, mode="all")  # settles the study: state written

    assert first.success and second.success
    assert target.read_text() == "keep me" and other.read_text() == "keep me too"
    state = root / "dicom-sync-settled.json"
    assert not state.is_symlink()  # the link was replaced, not followed
    check = root / "dicom-sync-check.json"
    check.symlink_to(other)  # the schedule's check record: written the same way
    write_check_state(root, "default", CheckState("2026-12-01T00:00:00+00:00", True, {}))
    assert other.read_text() == "keep me too" and not check.is_symlink()
    for name in ("dicom-sync.lock", "dicom-sync-settled.json", "dicom-sync-check.json"):
        assert stat.S_IMODE(os.lstat(root / name).st_mode) == 0o600, name
    assert not [p for p in root.iterdir() if p.name.startswith(".dicom-sync")]  # no leftovers


def test_dicom_sync_keeps_its_run_history_private(project):  # noqa: F811
    """Run history and logs hold accession numbers and UIDs: `dicom-sync` makes its files
    0600 and its folders 0700 whatever the user's umask (before: 0644 and 0755)."""
    from .test_cli import closed_nodes_env

    done = dicom_sync(["run", "--once"], closed_nodes_env(), project)

    assert done.returncode == 1, done.stdout + done.stderr  # nobody listens: the run failed
    made = [p for p in (project / "storage").rglob("*")]
    assert made
    for path in made:
        expected = 0o700 if path.is_dir() else 0o600
        assert stat.S_IMODE(path.stat().st_mode) & ~expected == 0, path
