"""Two `cifar-tui sweep` workers on one study in a real PostgreSQL server: shared trials, a killed worker's trial retried.

The test starts its own server (initdb into a temporary folder, pg_ctl on a free port; as the `postgres` user
when run as root, since initdb refuses root). Without PostgreSQL's programs it skips and says why; `.ci/run`
installs Debian's `postgresql` package.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pytest
from conftest import SHARED, tiny_config

from tui_cifar import sweep
from tui_cifar.runs import store

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")


def _pg_bin() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(candidates[-1]).parent if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url():
    """A PostgreSQL server of its own in a temporary folder; its URL (trust authentication, local only)."""
    bin_dir = _pg_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed (no initdb on PATH or in /usr/lib/postgresql/*/bin; "
                    "Debian: apt-get install postgresql, as .ci/run does)")
    as_user: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="cifar-tui-pg-"))
    if os.geteuid() == 0:  # initdb refuses root: the server runs as the postgres user
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no postgres user to run the PostgreSQL server as")
        as_user = ["runuser", "-u", "postgres", "--"]
        os.chown(folder, owner.pw_uid, owner.pw_gid)
    data, port = folder / "data", _free_port()
    init = subprocess.run([*as_user, str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"],
                          capture_output=True, text=True)
    if init.returncode != 0:
        pytest.skip(f"initdb failed: {init.stderr.strip()[-500:]}")
    start = subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(folder / "server.log"), "-w",
                            "-o", f"-p {port} -k {folder} -h 127.0.0.1", "start"], capture_output=True, text=True)
    if start.returncode != 0:
        log = (folder / "server.log").read_text(errors="replace") if (folder / "server.log").exists() else ""
        pytest.skip(f"the PostgreSQL server did not start: {start.stderr.strip()[-300:]} {log[-300:]}")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def _worker(url: str, base: Path, data: Path, name: str, trials: int) -> subprocess.Popen:
    values = tiny_config(data, base / f"runs-{name}", epochs_fine=1, label_smoothing=0.1,
                         weights="imagenet" if (SHARED / "make_keras_home.sh").exists() else "none")
    fixed = {k: v for k, v in values.items() if k not in ("augment", "lr_fine", "dropout", "data_dir", "runs_dir")}
    (base / "space.json").write_text(json.dumps({"lr_fine": {"low": 1e-4, "high": 8e-4, "log": True},
                                                 "dropout": {"low": 0.1, "high": 0.5}, "augment": [False, True]}))
    command = [sys.executable, "-m", "tui_cifar", "sweep", "--storage", url, "--study", "two-workers",
               "--trials", str(trials), "--heartbeat", "2", "--pruner", "none", "--space", str(base / "space.json"),
               "--data-dir", str(data), "--runs-dir", str(base / f"runs-{name}"), "--set", f"cache_dir={base / 'cache'}",
               *[a for k, v in fixed.items() for a in ("--set", f"{k}={json.dumps(v)}")]]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "XDG_CACHE_HOME": str(base / "xdg")}
    return subprocess.Popen(command, stdout=open(base / f"{name}.log", "wb"), stderr=subprocess.STDOUT, env=env)


def _trials(url: str) -> list[optuna.trial.FrozenTrial]:
    """The study's trials while the workers run (sweep's storage: it waits out a worker creating the tables),
    its connections closed again: polled every half second, they would fill the server's 100 slots."""
    storage = sweep.open_storage(url)
    try:
        return optuna.load_study(study_name="two-workers", storage=storage).trials
    except KeyError:  # not created yet
        return []
    finally:
        sweep.close_storage(storage)


def _wait_for(condition, what: str, timeout: float, processes=()) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        dead = [p for p in processes if p.poll() is not None]
        assert not dead, f"a worker ended (exit {dead[0].returncode}) while waiting for {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def test_two_workers_share_a_study_and_a_killed_workers_trial_is_retried(postgres_url, fake_cifar, tmp_path):
    host = socket.gethostname()
    a = _worker(postgres_url, tmp_path, fake_cifar, "a", trials=6)
    try:
        _wait_for(lambda: _trials(postgres_url), "worker a to create the study", 180, [a])
        b = _worker(postgres_url, tmp_path, fake_cifar, "b", trials=6)

        def of(worker, state=None):
            return [t for t in _trials(postgres_url) if t.user_attrs.get("worker") == f"{host}:{worker.pid}"
                    and (state is None or t.state == state)]

        # Kill a while it trains a trial that reported an epoch, after it finished one of its own.
        _wait_for(lambda: of(a, optuna.trial.TrialState.COMPLETE) and any(
            t.intermediate_values for t in of(a, optuna.trial.TrialState.RUNNING)), "worker a mid-trial", 240, [a, b])
        killed = next(t for t in of(a, optuna.trial.TrialState.RUNNING) if t.intermediate_values)
        os.kill(a.pid, signal.SIGKILL)
        a.wait()
        assert b.wait(timeout=300) == 0, (tmp_path / "b.log").read_text()[-3000:]
    finally:
        for p in (a, locals().get("b")):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()

    trials = optuna.load_study(study_name="two-workers", storage=postgres_url).trials
    by_number = {t.number: t for t in trials}
    # The killed worker's trial was failed by the other's heartbeat check and run again by it, with its settings.
    assert by_number[killed.number].state == optuna.trial.TrialState.FAIL
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retries) == 1
    retry = retries[0]
    assert retry.state == optuna.trial.TrialState.COMPLETE and retry.params == killed.params
    assert retry.user_attrs["worker"] == f"{host}:{b.pid}"
    # Shared: both workers' finished trials are in the one study every sampler reads, and no trial ran twice.
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert {t.user_attrs["worker"] for t in complete} == {f"{host}:{a.pid}", f"{host}:{b.pid}"}
    assert len(complete) == 6
    run_dirs = [t.user_attrs["run_dir"] for t in trials if "run_dir" in t.user_attrs]
    assert len(run_dirs) == len(set(run_dirs)) == len(trials)
    runs = sorted(p for w in ("a", "b") for p in (tmp_path / f"runs-{w}").iterdir() if p.is_dir())
    assert sorted(map(Path, run_dirs)) == runs  # one run folder per trial, each trial's own
    assert store.effective_state(store.read_status(Path(killed.user_attrs["run_dir"]))) == "killed"
    assert len({json.dumps(t.params, sort_keys=True) for t in complete}) == 6


def test_watching_a_study_keeps_no_connection_open(postgres_url, tmp_path):
    """The Sweep screen looks at the study every 3 s for hours: each look gives its connections back, so a
    watcher never fills the server's slots that the workers need ("too many clients already")."""
    import gc

    import sqlalchemy

    study = optuna.create_study(study_name="watched", storage=postgres_url, direction="maximize")
    study.add_trial(optuna.trial.create_trial(params={"dropout": 0.2}, value=0.5,
                                              distributions={"dropout": optuna.distributions.FloatDistribution(0, 1)}))
    engine = sqlalchemy.create_engine("postgresql+psycopg://" + postgres_url.split("://", 1)[1])
    count = sqlalchemy.text("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'")

    def connections() -> int:
        with engine.connect() as connection:
            return connection.execute(count).scalar_one()

    before = connections()
    gc.disable()  # what a busy app's collector may not get to between looks
    try:
        for _ in range(30):
            summary, why_not = sweep.look_at_study(postgres_url, None)
            assert why_not is None and summary is not None and summary.name == "watched"
        assert connections() - before <= 1
    finally:
        gc.enable()
        engine.dispose()
