"""Frozen forward passes through LiteRT (XNNPACK) on a CPU, Keras elsewhere.

Feature extraction, the test report and prediction only run a model forward.
On a CPU, TensorFlow's kernels are several times slower at that than LiteRT's
XNNPACK delegate (bench/forward_speed.json), so a frozen model is converted
once to a .tflite file, cached by a key that names the exact network and
weights, and run by LiteRT. On a GPU TensorFlow is the fast path. Wherever
LiteRT cannot be imported or the model cannot be converted, Keras runs it, with
one logged line saying why.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
from pathlib import Path

import numpy as np

from ..files import atomic_write

# Each runtime and its name on the Configure screen (the runtime setting's choices).
RUNTIMES = {"auto": "auto", "litert": "LiteRT", "keras": "Keras/TensorFlow"}
# LiteRT runs this many images per invoke: 4 beat 64 for nearly every size and model in bench/forward_speed.json
# (64 images' intermediate tensors outgrow the CPU caches).
LITERT_BATCH = 4
# Bumped when the conversion changes, so that stale converted models are not reused.
_CONVERSION_VERSION = "1"

log = logging.getLogger(__name__)


def converted_key(model_id: str) -> str:
    """The cache key of one converted model: what identifies the network and its weights, plus the converter."""
    import tensorflow as tf

    return hashlib.sha1(f"{model_id}|tf{tf.__version__}|v{_CONVERSION_VERSION}".encode()).hexdigest()[:20]


def file_model_id(path: Path) -> str:
    """A saved model's identity: its bytes (a checkpoint rewritten in place gets a new id)."""
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return f"file:{digest.hexdigest()}"


def converted_path(cache_dir: Path, model_id: str) -> Path:
    return Path(cache_dir) / "litert" / f"{converted_key(model_id)}.tflite"


def saved_model_forward(model, model_path: Path, runtime: str, cache_dir: str | Path | None = None) -> Forward:
    """A run's saved (full) model; its conversion is cached under the feature cache, keyed by the file's bytes."""
    from ..paths import features_cache_dir

    cache = features_cache_dir(cache_dir)
    return Forward(model, runtime, converted_path(cache, file_model_id(model_path)))


def resolve(runtime: str) -> str:
    """auto -> keras when TensorFlow may use a GPU (see the devices setting), litert otherwise."""
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}, not {runtime!r}")
    if runtime != "auto":
        return runtime
    import tensorflow as tf

    return "keras" if tf.config.get_visible_devices("GPU") else "litert"


def convert(model) -> bytes:
    """A Keras 3 model as .tflite bytes, through a SavedModel export (float32, outputs in Keras order)."""
    import tensorflow as tf

    with tempfile.TemporaryDirectory(prefix="cifar-tui-export-") as tmp:
        model.export(tmp, format="tf_saved_model", verbose=False)
        return tf.lite.TFLiteConverter.from_saved_model(tmp).convert()


class Forward:
    """Inference of one frozen model by the runtime chosen, converting (or loading the cached conversion) on first use.

    It answers ``predict`` as keras.Model.predict does, with the same results, so the call sites
    need not know which runtime ran.
    """

    def __init__(self, model, runtime: str = "auto", cache_path: Path | None = None, threads: int | None = None,
                 litert_batch: int = LITERT_BATCH):
        self.model = model
        self.outputs = model.outputs  # their shapes size the callers' buffers
        self.requested = runtime
        self.cache_path = Path(cache_path) if cache_path else None
        # the cores this process may use (Linux), else all of them (macOS has no sched_getaffinity)
        self.threads = threads or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
        self.litert_batch = litert_batch
        self.runtime: str | None = None  # which runtime ran, known after the first call (or ready())
        self.note: str | None = None  # why LiteRT was not used, when it was wanted
        self._interpreter = None
        self._batch = None
        self._lock = threading.Lock()  # the app's workers may share one classifier

    def ready(self) -> str:
        """Settle the runtime (converting if needed) and return its name."""
        with self._lock:
            if self.runtime is None:
                runtime = resolve(self.requested)
                if runtime == "litert":
                    try:
                        self._interpreter = self._load_interpreter()
                    except Exception as exc:  # an import, conversion or load failure: Keras still gives the answer
                        reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else "no details"
                        runtime, self.note = "keras", f"LiteRT unavailable ({type(exc).__name__}: {reason}); using Keras"
                        log.warning(self.note)
                self.runtime = runtime
        return self.runtime

    def _load_interpreter(self):
        from ai_edge_litert.interpreter import Interpreter

        def load(content: bytes):
            interpreter = Interpreter(model_content=content, num_threads=self.threads)
            signature = interpreter._get_full_signature_list()["serving_default"]
            self._input = next(iter(signature["inputs"].values()))
            self._output_index = [signature["outputs"][f"output_{i}"] for i in range(len(self.outputs))]
            return interpreter

        if self.cache_path and self.cache_path.is_file():
            try:
                return load(self.cache_path.read_bytes())
            except (OSError, ValueError, RuntimeError, KeyError):
                pass  # a damaged cached file is converted again
        content = convert(self.model)
        if self.cache_path:
            _cache_converted(self.cache_path, content)
        return load(content)

    def predict(self, x, batch_size: int = 64, verbose=0):
        """Like keras.Model.predict (and called as it is), silent, each batch split across the replicas of the
        model's strategy; LiteRT picks its own batch size."""
        if self.ready() == "keras":
            from .devices import predict_split

            return predict_split(self.model, x, batch_size)
        return self._run(x)

    def _run(self, x):
        """All of x through LiteRT, litert_batch images per invoke; the last batch is padded so the shape never changes."""
        x = np.asarray(x, np.float32)
        step = max(1, min(self.litert_batch, len(x)))
        outs = [np.empty((len(x), *o.shape[1:]), np.float32) for o in self.outputs]
        with self._lock:
            if self._batch != step:  # a new shape costs a re-plan
                self._interpreter.resize_tensor_input(self._input, (step, *x.shape[1:]), strict=True)
                self._interpreter.allocate_tensors()
                self._batch = step
            for start in range(0, len(x), step):
                batch = x[start : start + step]
                n = len(batch)
                self._interpreter.set_tensor(self._input, np.pad(batch, [(0, step - n)] + [(0, 0)] * (x.ndim - 1)))
                self._interpreter.invoke()
                for buf, index in zip(outs, self._output_index):
                    buf[start : start + n] = self._interpreter.get_tensor(index)[:n]
        return outs if len(outs) > 1 else outs[0]


def _cache_converted(path: Path, content: bytes) -> None:
    """Keep the converted model; a full or read-only disk only costs the next run a conversion."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda tmp: tmp.write_bytes(content))
    except OSError as exc:
        log.warning("could not cache the converted model at %s: %s", path, exc)
