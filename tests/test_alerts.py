"""Alert rules on recorded logs: each fires where it must and stays quiet where it must not."""

from __future__ import annotations

import copy
import math

from fixtures.tui_support import RESUMED, recorded_records

from tui_cifar.runs import diagnostics
from tui_cifar.runs.reader import epoch_records

KERAS = {"kind": "keras"}


def recorded_epochs(path=None):
    records = recorded_records(path) if path else recorded_records()
    return copy.deepcopy(epoch_records(records)), records[0]["config"]


def rules(epochs, config=None, batches=()):
    return [a.rule for a in diagnostics.alerts(epochs, config, batches)]


def stage_of(values, key="val_loss", train=None):
    """A stage-1 log built on the recorded epochs' records, with these losses."""
    base = recorded_epochs()[0][0]
    out = []
    for k, v in enumerate(values):
        rec = dict(base, epoch=k + 1, stage=1, **{key: v})
        if train is not None:
            rec["loss"] = train[k]
        out.append(rec)
    return out


def test_recorded_runs_raise_no_alert():
    for path in (None, RESUMED):
        epochs, config = recorded_epochs(path)
        assert rules(epochs, config) == []


def test_nan_loss_fires_with_the_learning_rate_to_lower():
    epochs, config = recorded_epochs()
    epochs[-1]["loss"] = math.nan  # what TerminateOnNaN leaves in the last epoch
    (alert,) = diagnostics.alerts(epochs, config)
    assert alert.rule == "nonfinite" and "loss is nan" in alert.why
    assert "--lr-fine now 0.0003" in alert.advice
    batch = {"type": "batch", "stage": 2, "epoch": 3, "batch": 7, "loss": math.inf}
    assert rules(recorded_epochs()[0], config, [batch]) == ["nonfinite"]


def test_diverging_training_loss_fires_but_a_noisy_epoch_does_not():
    train = [1.0, 0.8, 0.7, 0.9, 1.2]  # up two epochs running, to 1.7x its lowest
    assert "diverging" in rules(stage_of([1.0] * 5, train=train), KERAS)
    noisy = [1.0, 0.8, 0.7, 0.75, 0.72]
    assert "diverging" not in rules(stage_of([1.0] * 5, train=noisy), KERAS)


def test_validation_plateau_fires_and_steady_progress_does_not():
    flat = [1.0, 0.8, 0.7, 0.701, 0.702, 0.699, 0.703, 0.70]
    (alert,) = [a for a in diagnostics.alerts(stage_of(flat), KERAS) if a.rule == "plateau"]
    assert "ReduceLROnPlateau" in alert.advice
    # the verdict before the options: at 80x24 the panel's second line may end mid-advice, never before "not"
    assert alert.advice.startswith("More epochs will not help")
    assert diagnostics.alerts(stage_of(flat))[0].advice.startswith("More epochs will not help")
    improving = [1.0, 0.8, 0.7, 0.65, 0.6, 0.55, 0.5, 0.45]
    assert "plateau" not in rules(stage_of(improving), KERAS)


def test_overfitting_onset_is_judged_on_the_curves_scale():
    train = [1.0, 0.8, 0.6, 0.5, 0.4, 0.3]
    assert "overfitting" in rules(stage_of([0.9, 0.8, 0.7, 0.75, 0.8, 0.85], train=train), KERAS)
    # val loss "up from 0.000 to 0.001": not up at all on a curve that started at 0.3
    tiny = [0.3, 0.1, 0.0, 0.0004, 0.0008, 0.001]
    assert "overfitting" not in rules(stage_of(tiny, train=train), KERAS)


def test_advice_fits_the_runs_kind():
    train = [1.0, 0.8, 0.6, 0.5, 0.4, 0.3]
    epochs = stage_of([0.9, 0.8, 0.7, 0.75, 0.8, 0.85], train=train)
    keras_alert = next(a for a in diagnostics.alerts(epochs, KERAS) if a.rule == "overfitting")
    assert "fine-tune" not in keras_alert.advice and "EarlyStopping" in keras_alert.advice
    tb_alert = next(a for a in diagnostics.alerts(epochs, {"kind": "tensorboard"}) if a.rule == "overfitting")
    assert "fine-tune" not in tb_alert.advice
    ours = next(a for a in diagnostics.alerts(epochs, {"dropout": 0.3, "fine_tune_blocks": 2}) if a.rule == "overfitting")
    assert "fewer fine-tune blocks (now 2)" in ours.advice


def test_alert_watch_reports_each_alert_once():
    watch = diagnostics.AlertWatch()
    train = [1.0, 0.8, 0.6, 0.5, 0.4, 0.3, 0.25]
    vals = [0.9, 0.8, 0.7, 0.75, 0.8, 0.85, 0.9]
    epochs = stage_of(vals, train=train)
    assert watch.new_alerts(epochs[:5], KERAS) == []
    assert [a.rule for a in watch.new_alerts(epochs[:6], KERAS)] == ["overfitting"]
    assert watch.new_alerts(epochs[:7], KERAS) == []  # still holds: not again


def test_watch_alerts_prints_plain_lines_until_the_run_ends(tmp_path, capsys):
    import os

    from fixtures.tui_support import make_running_run, write_status

    from tui_cifar.cli import commands

    records = recorded_records()
    cut = next(k for k, r in enumerate(records) if r["type"] == "run_end")
    nan_epoch = dict(next(r for r in reversed(records[:cut]) if r["type"] == "epoch"), loss=float("nan"))
    run_dir = make_running_run(tmp_path / "runs", records=records[:cut] + [nan_epoch] + records[cut:])
    write_status(run_dir, "finished", os.getpid())
    assert commands.main(["watch", str(run_dir), "--alerts"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{run_dir.name}: stage 2 epoch 2: nonfinite: loss is nan")


def test_watch_alerts_runs_the_notify_command_for_each_alert(tmp_path, capsys):
    """`watch RUN --alerts --notify CMD` runs CMD once per alert, the alert in its environment (a real shell)."""
    import os

    from fixtures.tbevents import append_scalars

    from tui_cifar.cli import commands

    run = tmp_path / "logs" / "torch-run"  # a TensorBoard run whose loss goes NaN at step 2
    events = run / "events.out.tfevents.1.host"
    for step, loss in enumerate([1.0, 0.8, float("nan")]):
        append_scalars(events, step, {"loss/train": loss, "loss/val": 1.1 - step / 10}, wall_time=1_700_000_000 + step)
    os.utime(events, (1_700_000_010, 1_700_000_010))  # written long ago: the run has ended
    out = tmp_path / "alerts.txt"
    command = f'printf "%s|%s|%s|%s|%s\\n" "$CIFAR_TUI_ALERT" "$CIFAR_TUI_RUN_NAME" "$CIFAR_TUI_EPOCH" ' \
              f'"$CIFAR_TUI_MESSAGE" "$CIFAR_TUI_ALERT_ADVICE" >> {out}'
    assert commands.main(["watch", str(run), "--alerts", "--notify", command]) == 0
    printed = capsys.readouterr().out.splitlines()
    written = out.read_text().splitlines()
    assert len(printed) == len(written) == 1
    rule, name, epoch, message, advice = written[0].split("|")
    assert (rule, name, epoch) == ("nonfinite", "torch-run", "3") and message.startswith("loss is nan")
    assert printed[0].endswith(message) and advice and "fine-tune" not in advice  # a TensorBoard run has no blocks
