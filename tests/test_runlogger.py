"""RunLogger: a plain Keras script's model.fit, followed from another process through the run folder."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tui_cifar.engine.resources import resource_usage
from tui_cifar.runs import reader, store

# A plain Keras script (no cifar-tui trainer): a binary classifier with an AUC metric.
# GATE (if set) holds fit after the first epoch until that file exists; FAIL_AFTER makes the
# data raise after that many batches; SLOW makes every batch after epoch 1 take 0.2 s (EPOCHS: 3 unless set).
SCRIPT = """
import os, sys, time
import numpy as np, keras
from tui_cifar import RunLogger

rng = np.random.default_rng(0)
x = rng.random((256, 6)).astype("float32")
y = (x[:, :3].sum(1) > 1.5).astype("float32")

class Data(keras.utils.PyDataset):
    def __len__(self):
        return 8
    calls = 0
    def __getitem__(self, i):
        self.calls += 1
        if os.environ.get("FAIL_AFTER") and self.calls > int(os.environ["FAIL_AFTER"]):
            raise RuntimeError("the data reader broke")
        return x[i * 32:(i + 1) * 32], y[i * 32:(i + 1) * 32]

class Hold(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        gate = os.environ.get("GATE")
        while epoch == 0 and gate and not os.path.exists(gate):
            time.sleep(0.05)
    def on_train_batch_end(self, batch, logs=None):
        if os.environ.get("SLOW") and self.epoch > 0:
            time.sleep(0.2)
    epoch = 0
    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="relu"),
                          keras.layers.Dense(1, activation="sigmoid")], name="plain_mlp")
model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9), loss="binary_crossentropy",
              metrics=["accuracy", keras.metrics.AUC(name="auc")])
model.fit(Data(), validation_data=(x[:64], y[:64]), epochs=int(os.environ.get("EPOCHS", 3)), verbose=0,
          callbacks=[RunLogger(sys.argv[1], hparams={"hidden": 8}), Hold()])
print("after fit", flush=True)
"""


def start_script(tmp_path: Path, **env) -> tuple[subprocess.Popen, Path]:
    import os

    script = tmp_path / "plain_keras.py"
    script.write_text(SCRIPT)
    runs = tmp_path / "runs"
    proc = subprocess.Popen([sys.executable, str(script), str(runs)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **env})
    return proc, runs


def wait_for(predicate, timeout: float = 120.0, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the script ended early: {proc.communicate()[1][-2000:]}")
        time.sleep(0.1)
    pytest.fail("timed out")


def the_run(runs: Path) -> Path | None:
    found = list(store.iter_run_dirs(runs))
    return found[0] if found else None


def test_package_import_loads_no_tensorflow_and_runlogger_no_textual():
    probe = ("import sys, tui_cifar, tui_cifar.runs.store\n"
             "assert not {'tensorflow', 'keras', 'textual'} & set(sys.modules), sys.modules.keys()\n"
             "from tui_cifar import RunLogger\n"
             "assert 'keras' in sys.modules and 'textual' not in sys.modules\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]


def test_a_plain_fit_is_followed_live_from_another_process(tmp_path):
    gate = tmp_path / "go"
    proc, runs = start_script(tmp_path, GATE=str(gate))
    try:
        run_dir = wait_for(lambda: the_run(runs), proc=proc)
        tail = store.MetricsTail(run_dir / store.METRICS_LOG)
        records: list[dict] = []

        def first_epoch():
            records.extend(tail.read_new())
            return reader.epoch_records(records)

        epochs = wait_for(first_epoch, proc=proc)
        # fit is held after epoch 1: the reader sees it running, from this script's process
        summary = reader.summarize_run(run_dir)
        assert summary.state == "running"
        assert store.read_status(run_dir).pid == proc.pid
        assert summary.kind == "keras" and summary.model == "plain_mlp"
        assert summary.problems == []
        first = epochs[0]
        assert first["epoch"] == 1 and first["epochs"] == 3
        for name in ("loss", "accuracy", "auc", "val_loss", "val_accuracy", "val_auc"):
            assert isinstance(first[name], float), name
        assert first["memory"]["rss"] > 0 and first["memory"]["rss_peak"] >= first["memory"]["rss"]
        assert [r for r in records if r["type"] == "batch"][0]["auc"] is not None
        gate.touch()
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, err[-2000:]
    assert "after fit" in out
    records.extend(tail.read_new())
    assert [r["epoch"] for r in reader.epoch_records(records)] == [1, 2, 3]
    assert records[-1]["type"] == "run_end" and records[-1]["state"] == "finished"
    summary = reader.summarize_run(run_dir)
    assert summary.state == "finished" and summary.best_val_accuracy is not None
    config, _ = store.read_json(run_dir / store.CONFIG_FILE)
    assert config["kind"] == "keras" and config["hparams"] == {"hidden": 8}
    assert config["optimizer"]["name"] == "sgd" and config["optimizer"]["momentum"] == pytest.approx(0.9)
    assert config["epochs"] == 3 and config["steps_per_epoch"] == 8
    assert config["total_params"] == 6 * 8 + 8 + 8 + 1 == config["trainable_params"]
    assert store.no_cifar_model_reason(config)


def test_an_exception_in_fit_marks_the_run_failed(tmp_path):
    proc, runs = start_script(tmp_path, FAIL_AFTER="12")  # in epoch 2 (8 batches an epoch)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 1
    assert "the data reader broke" in err  # the script's own traceback still shows
    run_dir = the_run(runs)
    status = store.read_status(run_dir)
    assert status.state == "failed" and "RuntimeError: the data reader broke" in status.message
    assert "the data reader broke" in (run_dir / "error.txt").read_text()
    records, problems = store.read_metrics(run_dir)
    assert problems == [] and records[-1]["state"] == "failed"
    assert [r["epoch"] for r in reader.epoch_records(records)] == [1]


@pytest.mark.parametrize("how", ["sigint", "sigterm", "app_stop", "stop_file"])
def test_ctrl_c_or_the_apps_stop_marks_the_run_stopped(tmp_path, how):
    proc, runs = start_script(tmp_path, SLOW="1", EPOCHS="50")
    try:
        run_dir = wait_for(lambda: the_run(runs), proc=proc)
        wait_for(lambda: reader.epoch_records(store.read_metrics(run_dir)[0]), proc=proc)
        if how in ("sigint", "sigterm"):
            proc.send_signal(signal.SIGINT if how == "sigint" else signal.SIGTERM)
        elif how == "app_stop":
            from tui_cifar.engine.launcher import request_stop

            assert request_stop(run_dir)
        else:
            (run_dir / store.STOP_FILE).touch()  # from another host sharing the folder
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    status = store.read_status(run_dir)
    assert status.state == "stopped", status
    records, problems = store.read_metrics(run_dir)
    assert problems == [] and records[-1]["type"] == "run_end" and records[-1]["state"] == "stopped"
    if how in ("app_stop", "stop_file"):  # fit returns after the current batch and the script goes on
        assert proc.returncode == 0 and "after fit" in out
        assert status.message == "stopped by a stop request"
        assert reader.epoch_records(records)[-1]["partial"] is True
        return
    assert "after fit" not in out  # the signal ends the script as it would without RunLogger
    if how == "sigint":
        assert "KeyboardInterrupt" in err and status.message == "stopped by SIGINT"
    else:
        assert proc.returncode == -signal.SIGTERM and status.message == "stopped by SIGTERM"


def test_resource_usage_on_cpu_reports_this_process():
    usage = resource_usage()
    assert usage["rss"] > 10 * 2**20  # the Python interpreter alone is larger than 10 MiB
    assert usage["rss_peak"] >= usage["rss"]
    block = bytearray(200 * 2**20)
    block[::4096] = b"x" * len(block[::4096])  # touch every page so it becomes resident
    after = resource_usage()  # (the peak may predate this test in a long test session: compare the current size)
    assert after["rss"] >= usage["rss"] + 150 * 2**20 and after["rss_peak"] >= after["rss"]
    del block


def test_the_docs_example_records_a_run_that_the_cli_reads(tmp_path):
    root = Path(__file__).resolve().parents[1]
    runs = tmp_path / "runs"
    out = subprocess.run([sys.executable, str(root / "docs" / "runlogger_example.py"), "--runs-dir", str(runs),
                          "--epochs", "2", "--samples", "400"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    run_dir = the_run(runs)
    assert store.read_status(run_dir).state == "finished"
    epochs = reader.epoch_records(store.read_metrics(run_dir)[0])
    assert [r["epoch"] for r in epochs] == [1, 2] and "val_top3" in epochs[-1]
    for command in (["predict", str(run_dir), str(root / "README.md")], ["train", "--resume", str(run_dir)]):
        refused = subprocess.run([sys.executable, "-m", "tui_cifar", *command], capture_output=True, text=True,
                                 timeout=120)
        assert refused.returncode == 1 and "recorded by RunLogger" in refused.stderr, command


def test_runlogger_writes_telemetry_records(tmp_path):
    """Every few seconds (here: every batch) the process's CPU and memory go into the run log."""
    import keras
    import numpy as np

    from tui_cifar import RunLogger
    from tui_cifar.engine import telemetry

    x = np.random.default_rng(0).random((64, 4)).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)], name="tiny")
    model.compile("sgd", "mse")
    model.fit(x, x[:, :1], batch_size=16, epochs=1, verbose=0,
              callbacks=[RunLogger(tmp_path, telemetry_interval=0.0)])
    run_dir = next(store.iter_run_dirs(tmp_path))
    records, _ = store.read_metrics(run_dir)
    samples = [r for r in records if r["type"] == "telemetry"]
    # at interval 0, one after each other record but the run's end (the last record stays run_end)
    others = [r for r in records if r["type"] != "telemetry"]
    assert len(samples) == len(others) - 1 and records[-1]["type"] == "run_end"
    assert sum(1 for r in others if r["type"] == "batch") == 4
    assert all(r["rss"] > 0 and r["cpu_pct"] is not None and "wall_time" in r for r in samples)
    assert samples[0]["gpu_problem"].startswith(telemetry.NO_GPU)
