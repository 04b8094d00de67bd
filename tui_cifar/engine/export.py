"""A run's model for other runtimes: a TensorFlow SavedModel (TF Serving) and a TFLite file (phones, a Raspberry Pi).

Both take what model.keras takes, a batch of 32x32 RGB images as float32 0..255, and give the
10 class probabilities. Flip test-time augmentation is not inside them: average the
probabilities of an image and of its mirror to get it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..runs import reader, store

FORMATS = ("saved_model", "tflite")
_SUFFIX = {"saved_model": "_saved_model", "tflite": ".tflite"}


def model_file(run_or_model: Path) -> Path:
    """The .keras file of a run folder, or the file itself; a run with no cifar-tui model says why (ModelLoadError)."""
    from .prediction import ModelLoadError

    path = Path(run_or_model).expanduser()
    if not path.is_dir():
        return path
    reason = reader.no_model_reason(path)
    if reason:
        raise ModelLoadError(f"{path}: {reason}")
    return path / store.MODEL_FILE


def default_out(run_or_model: Path, fmt: str) -> Path:
    """Beside the model: RUN/model_saved_model/ or RUN/model.tflite."""
    source = model_file(run_or_model)
    return source.with_name(f"{source.stem}{_SUFFIX[fmt]}")


def export_model(run_or_model: Path, fmt: str, out: Path | None = None) -> Path:
    """Write the model in `fmt` to `out` (default: default_out) and return the path.

    Written under a temporary name and renamed, so a failed export leaves an earlier one whole.
    """
    from .prediction import load_model_checked

    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    model = load_model_checked(model_file(run_or_model))
    out = Path(out).expanduser() if out else default_out(run_or_model, fmt)
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "tflite":  # the very conversion cifar-tui's LiteRT runtime runs (and its parity tests check)
        from ..files import atomic_write
        from .forward import convert

        content = convert(model)
        atomic_write(out, lambda tmp: tmp.write_bytes(content))
        return out
    tmp = out.with_name(f".tmp-{os.getpid()}-{out.stem}{_SUFFIX[fmt]}")
    try:
        model.export(str(tmp), format="tf_saved_model", verbose=False)  # Keras' own exporter: a `serve` signature
        if out.is_dir():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp)
        else:
            tmp.unlink(missing_ok=True)
    return out
