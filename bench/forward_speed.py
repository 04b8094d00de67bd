"""The frozen forward pass cifar-tui runs, through Keras and through LiteRT (and ONNX Runtime if it converts), same run.

For each input size: the feature extractor (32x32 images -> boundary activations
and pooled features, what training caches) and the full model (-> class
probabilities, what the test report and `cifar-tui predict` run), MobileNetV2
with ImageNet weights, cut where the default preset cuts it. Keras runs
``predict_on_batch`` on padded batches, as cifar-tui did; LiteRT runs the model
converted by tui_cifar.engine.forward with XNNPACK at several batch sizes. The
measurements are interleaved and repeated (the CPU may be shared), and each
ratio is taken within one repeat. Real CIFAR-10 test images. Writes JSON to
--out and a short markdown beside it.

    KERAS_HOME=... python bench/forward_speed.py --data-dir ../shared/datasets --out bench/forward_speed.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))


def weights_files(sizes: list[int]) -> dict[str, str]:
    """Which file Keras loads for each size, and what it really is (the shared copy links other sizes to 224 px)."""
    home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models"
    out = {}
    for size in sizes:
        rows = size if size in (96, 128, 160, 192, 224) else 224  # keras.applications.MobileNetV2's rule
        path = home / f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{rows}_no_top.h5"
        out[str(size)] = f"{path.name} -> {Path(os.path.realpath(path)).name}" if path.exists() else f"{path.name} (absent)"
    return out


def keras_pass(model, x, batch):
    """cifar-tui's Keras path: predict_on_batch over batches, the last one padded."""
    import numpy as np

    outs = []
    for start in range(0, len(x), batch):
        b = x[start : start + batch]
        n = len(b)
        r = model.predict_on_batch(np.pad(b, ((0, batch - n), (0, 0), (0, 0), (0, 0))))
        outs.append([o[:n] for o in (r if isinstance(r, list) else [r])])
    return [np.concatenate(parts) for parts in zip(*outs)]


def as_list(r):
    return r if isinstance(r, list) else [r]


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def onnx_session(model, threads):
    """An ONNX Runtime session for the model, or the reason there is none."""
    try:
        import onnxruntime as ort
        import tensorflow as tf
        import tf2onnx
    except ImportError as exc:
        return None, f"not installed: {exc}"
    try:
        spec = (tf.TensorSpec((None, 32, 32, 3), tf.float32, name="image"),)
        proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=17)
    except Exception as exc:  # noqa: BLE001  (recorded, not fatal)
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        return None, f"tf2onnx {tf2onnx.__version__} from_keras failed: {type(exc).__name__}: {first}"
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"]), \
        f"tf2onnx {tf2onnx.__version__}, onnxruntime {ort.__version__}"


def main() -> None:
    from tui_cifar.engine.forward import (  # numpy only: TensorFlow is imported when a model converts
        LITERT_BATCH,
        Forward,
    )

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="CIFAR-10 folder (default: Keras' cache)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[112, 160, 192])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, LITERT_BATCH, 16, 64])
    parser.add_argument("--keras-batch", type=int, default=64, help="cifar-tui's extraction batch")
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--fine-tune-blocks", type=int, default=3, help="where the extractor is cut (the default preset's)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    import ai_edge_litert
    import keras
    import numpy as np
    import tensorflow as tf
    from run_bench import provenance

    from tui_cifar.engine.data import load_test_images
    from tui_cifar.engine.model import build_transfer_model

    threads = len(os.sched_getaffinity(0))
    x = load_test_images(args.data_dir)[0][: args.images].astype(np.float32)
    results = {
        **provenance(),  # its machine names the CPU flags
        "threads": threads,
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__, "ai_edge_litert": ai_edge_litert.__version__,
                     "numpy": np.__version__},
        "setup": {"backbone": "mobilenetv2", "weights": "imagenet", "fine_tune_blocks": args.fine_tune_blocks,
                  "images": len(x), "repeats": args.repeats, "keras_batch": args.keras_batch, "litert_batches": args.batches,
                  "keras_path": "model.predict_on_batch on padded batches", "litert_path": "tui_cifar.engine.forward.Forward (XNNPACK)",
                  "cifar_tui_litert_batch": LITERT_BATCH,
                  "onnx_note": "bench only: tf2onnx and onnxruntime are not cifar-tui dependencies"},
        "weights_files": weights_files(args.sizes),
        "weights_note": "The shared Keras home links the 160 and 192 px weight names (and 112 px uses the 224 name) to "
                        "MobileNetV2's 224 px ImageNet file: real ImageNet weights, but trained at 224 px.",
        "models": [],
    }
    onnx_outcome = None
    tmp = tempfile.mkdtemp(prefix="forward-speed-")
    for size in args.sizes:
        keras.backend.clear_session()
        tm = build_transfer_model("mobilenetv2", size, args.fine_tune_blocks)
        for name, model in (("extractor", tm.extractor), ("full", tm.full)):
            print(f"{size}px {name}: converting", flush=True)
            converted = Path(tmp) / f"{size}-{name}.tflite"
            _, convert_s = timed(Forward(model, "litert", converted).ready)
            # One interpreter per batch size, each loading the converted file.
            by_batch = {b: Forward(model, "litert", converted, threads, litert_batch=b) for b in args.batches}
            assert all(f.ready() == "litert" for f in by_batch.values()), by_batch[args.batches[0]].note
            session, onnx_note = onnx_session(model, threads) if onnx_outcome is None or "failed" not in onnx_outcome else (None, onnx_outcome)
            onnx_outcome = onnx_note
            # Warm-up (tracing, tensor allocation per batch size), and the outputs compared.
            reference = keras_pass(model, x, args.keras_batch)
            diffs = {}
            for b in args.batches:
                got = as_list(by_batch[b].predict(x))
                diffs[str(b)] = [float(np.abs(g - r).max()) for g, r in zip(got, reference)]
            if session:
                got = session.run(None, {session.get_inputs()[0].name: x})
                diffs["onnx"] = [float(np.abs(g - r).max()) for g, r in zip(got, reference)]
            speeds: dict[str, list[float]] = {"keras": [], **{f"litert_b{b}": [] for b in args.batches}}
            if session:
                speeds["onnx_b64"] = []
            for _ in range(args.repeats):  # interleaved: a neighbour's load hits both runtimes alike
                speeds["keras"].append(len(x) / timed(lambda: keras_pass(model, x, args.keras_batch))[1])
                for b in args.batches:
                    speeds[f"litert_b{b}"].append(len(x) / timed(lambda: by_batch[b].predict(x))[1])
                if session:
                    def run_onnx():
                        for s in range(0, len(x), 64):
                            session.run(None, {session.get_inputs()[0].name: x[s : s + 64]})
                    speeds["onnx_b64"].append(len(x) / timed(run_onnx)[1])
            ratios = {k: round(statistics.median(v / k_ for v, k_ in zip(speeds[k], speeds["keras"])), 2)
                      for k in speeds if k != "keras"}
            entry = {
                "size": size, "model": name, "outputs": [tuple(o.shape[1:]) for o in model.outputs],
                "convert_seconds": round(convert_s, 1),
                "images_per_sec": {k: [round(s, 1) for s in v] for k, v in speeds.items()},
                "median_images_per_sec": {k: round(statistics.median(v), 1) for k, v in speeds.items()},
                "ratio_to_keras": ratios,
                "max_abs_diff_vs_keras": diffs,
                "output_max_abs": [float(np.abs(r).max()) for r in reference],
            }
            print(json.dumps(entry), flush=True)
            results["models"].append(entry)
    results["onnx"] = onnx_outcome
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    write_markdown(args.out.with_suffix(".md"), results)
    print(args.out.with_suffix(".md").read_text())


def write_markdown(path: Path, r: dict) -> None:
    m = r["machine"]
    batches = r["setup"]["litert_batches"]
    lines = [
        "# Frozen forward pass: Keras vs LiteRT", "",
        f"- date: {r['date']}; command: `{r['command']}`",
        f"- machine: {m['cpu']}, {m['cores']} cores ({', '.join(m['flags'])}); {r['threads']} threads",
        f"- versions: {', '.join(f'{k} {v}' for k, v in r['versions'].items())}",
        f"- {r['setup']['images']} CIFAR-10 test images, {r['setup']['repeats']} interleaved repeats, medians; "
        f"Keras batch {r['setup']['keras_batch']} (predict_on_batch, as cifar-tui ran it); cifar-tui's LiteRT batch: "
        f"{r['setup']['cifar_tui_litert_batch']}; MobileNetV2 cut at {r['setup']['fine_tune_blocks']} blocks",
        f"- weights: {r['weights_note']}",
        f"- ONNX Runtime: {r['onnx']}", "",
        "| size | model | Keras img/s | " + " | ".join(f"LiteRT b{b} img/s (x Keras)" for b in batches)
        + " | ONNX Runtime b64 img/s (x Keras) | LiteRT max abs diff |",
        "|---|---|---|" + "---|" * len(batches) + "---|---|",
    ]
    for e in r["models"]:
        med, ratio = e["median_images_per_sec"], e["ratio_to_keras"]
        diff = [max(d[i] for k, d in e["max_abs_diff_vs_keras"].items() if k != "onnx") for i in range(len(e["outputs"]))]
        lines.append(f"| {e['size']} | {e['model']} | {med['keras']} | "
                     + " | ".join(f"{med[f'litert_b{b}']} ({ratio[f'litert_b{b}']}x)" for b in batches)
                     + (f" | {med['onnx_b64']} ({ratio['onnx_b64']}x)" if "onnx_b64" in med else " | -")
                     + f" | {', '.join(f'{d:.1e}' for d in diff)} |")
    path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
