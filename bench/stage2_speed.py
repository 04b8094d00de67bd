"""Stage 2 (fine-tuning the top blocks on cached activations): what makes its training steps faster.

Each variant runs in a process of its own (thread counts and oneDNN's instruction set are fixed
when TensorFlow starts), on the default preset's stage-2 model (MobileNetV2, 160 px, top 3
blocks, ImageNet weights) fed the way cifar-tui feeds it: a PyDataset over cached float16
activations, one view drawn per sample. The activations are random (a training step's cost does
not depend on the values), so the script needs no feature cache. Each variant trains one warm-up
epoch, then --epochs timed ones; img/s is images over the timed epochs' total time (the median over
--repeats interleaved rounds), each speedup taken within one round against that round's baseline.

On this project's 2-core machine, with TensorFlow's default two intra-op threads, whole epochs
ran at half speed now and then (about 800 against 1,600 img/s, flipping between epochs of one
process; one thread ran a steady ~900): hence several epochs per variant, the slowest and
fastest epoch kept beside the overall figure.

With --isa AVX2 the variants run again under ONEDNN_MAX_CPU_ISA=AVX2: TensorFlow's oneDNN
kernels (its convolutions and matrix products) then use what an AVX2-only CPU has, an
approximation of such a CPU (XLA, Eigen and the memory system are unchanged).

    KERAS_HOME=... python bench/stage2_speed.py --out bench/stage2_speed.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

# name -> what differs from the baseline (cifar-tui's stage 2 before this measurement)
VARIANTS: dict[str, dict] = {
    "baseline": {},
    "float16 batches": {"feed": "float16"},
    "tf.data over one float16 tensor": {"feed": "tf.data"},
    "steps_per_execution 8": {"steps_per_execution": 8},
    "XLA (jit_compile)": {"jit": True, "samples": 1024},  # ~10x slower: fewer samples keep it short
    "batch 256": {"batch": 256},
    "intra 2 / inter 1 threads": {"intra": 2, "inter": 1},
    "intra 1 / inter 2 threads": {"intra": 1, "inter": 2},
    "intra 1 / inter 1 threads": {"intra": 1, "inter": 1},
    "oneDNN off (Eigen kernels)": {"env": {"TF_ENABLE_ONEDNN_OPTS": "0"}},
    "mixed_bfloat16": {"policy": "mixed_bfloat16"},
}


def child(spec: dict) -> dict:
    """One variant in this process: returns img/s per timed epoch."""
    import tensorflow as tf

    if spec.get("intra"):
        tf.config.threading.set_intra_op_parallelism_threads(spec["intra"])
        tf.config.threading.set_inter_op_parallelism_threads(spec["inter"])
    import keras
    import numpy as np

    from tui_cifar.engine.model import build_transfer_model
    from tui_cifar.engine.training import view_batches

    keras.mixed_precision.set_global_policy(spec.get("policy", "float32"))
    keras.utils.set_random_seed(0)
    tm = build_transfer_model("mobilenetv2", 160, 3, "imagenet", 0.3)
    tm.unfreeze_top()
    model = tm.trainable_on_activations()
    shape = tuple(tm.bottom.output.shape[1:])
    rng = np.random.default_rng(0)
    n = spec["samples"]
    views = [np.maximum(rng.normal(0, 1, (n, *shape)), 0).astype(np.float16) for _ in range(2)]
    labels = keras.utils.to_categorical(rng.integers(0, 10, n), 10)
    batch = spec.get("batch", 128)
    data = view_batches(views, labels, batch, 0, in_place=spec.get("feed") != "tf.data")
    if spec.get("feed") == "float16":
        data.dtype = np.float16
    model.compile(optimizer=keras.optimizers.AdamW(3e-4, weight_decay=1e-4),
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=0.1), metrics=["accuracy"],
                  steps_per_execution=spec.get("steps_per_execution", 1), jit_compile=spec.get("jit", False))
    times = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.t0)

    model.fit(data, epochs=1 + spec["epochs"], callbacks=[Timer()], verbose=0, shuffle=False)
    return {"images_per_sec": [round(n / t, 1) for t in times[1:]],
            "overall_images_per_sec": round(n * spec["epochs"] / sum(times[1:]), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=6144)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--isa", nargs="+", default=["native", "AVX2"], help="native and/or oneDNN ISA caps")
    parser.add_argument("--out", type=Path, default=HERE / "stage2_speed.json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-timeout", type=int, default=600, help="seconds before a variant counts as failed")
    parser.add_argument("--render", action="store_true", help="only rewrite the markdown from --out's JSON")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    if args.render:
        out = json.loads(args.out.read_text())
        out["results"] = summarize(out["raw"])
        args.out.write_text(json.dumps(out, indent=2) + "\n")
        write_markdown(out, args.out.with_suffix(".md"))
        return

    import keras
    import tensorflow as tf
    from run_bench import provenance

    rows = {isa: {name: [] for name in args.variants} for isa in args.isa}
    for round_ in range(args.repeats):
        for isa in args.isa:
            env = dict(os.environ)
            if isa != "native":
                env["ONEDNN_MAX_CPU_ISA"] = isa
            for name in args.variants:
                spec = {"samples": args.samples, "epochs": args.epochs, **VARIANTS[name]}
                try:  # mixed_bfloat16 without avx512_bf16 once failed and then hung instead of exiting
                    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)],
                                          env={**env, **spec.get("env", {})}, capture_output=True, text=True,
                                          timeout=args.child_timeout)
                except subprocess.TimeoutExpired:
                    proc = subprocess.CompletedProcess([], 1, "", f"no result after {args.child_timeout} s")
                if proc.returncode:
                    result = {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"}
                else:
                    result = json.loads(proc.stdout.strip().splitlines()[-1])
                rows[isa][name].append(result)
                print(round_, isa, name, result, flush=True)

    out = {
        **provenance(),  # date, command, machine with its CPU flags
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__},
        "setup": (f"MobileNetV2 160 px, top 3 blocks trainable on random float16 activations, {args.samples} samples "
                  f"(XLA: {VARIANTS['XLA (jit_compile)']['samples']}), 1 warm-up + {args.epochs} timed epochs, "
                  f"{args.repeats} interleaved round(s); baseline: batch 128, float32 batches from a PyDataset, "
                  "1 step per execution, no XLA, TensorFlow's default threads, float32"),
        "variants": {name: VARIANTS[name] for name in args.variants},
        "results": summarize(rows),
        "raw": rows,
    }
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    write_markdown(out, args.out.with_suffix(".md"))


def summarize(rows: dict) -> dict:
    """Per ISA and variant: overall img/s and its ratio to the baseline (median over rounds), and the fastest
    epoch against the baseline's fastest (what a variant does when the CPU is not halved, see the docstring)."""
    summary = {}
    for isa, by_name in rows.items():
        summary[isa] = {}
        base = [r for r in by_name["baseline"] if "images_per_sec" in r]
        base_fastest = max((v for r in base for v in r["images_per_sec"]), default=None)
        for name, rounds in by_name.items():
            ok = [r for r in rounds if "images_per_sec" in r]
            ratios = [r["overall_images_per_sec"] / b["overall_images_per_sec"] for r, b in zip(ok, base)]
            epochs = [v for r in ok for v in r["images_per_sec"]]
            summary[isa][name] = {
                "images_per_sec": round(statistics.median(r["overall_images_per_sec"] for r in ok), 1) if ok else None,
                "speedup_vs_baseline": round(statistics.median(ratios), 3) if ratios else None,
                "epoch_images_per_sec_min_max": [min(epochs), max(epochs)] if epochs else None,
                "fastest_epoch_vs_baseline_fastest": round(max(epochs) / base_fastest, 3) if epochs and base_fastest else None,
                "errors": [r["error"] for r in rounds if "error" in r],
            }
    return summary


def write_markdown(out: dict, path: Path) -> None:
    summary = out["results"]
    lines = [f"# Stage 2 training speed ({out['date']})", "", f"- machine: {out['machine']}",
             f"- versions: {out['versions']}", f"- command: `{out['command']}`", f"- {out['setup']}", "",
             "| variant | " + " | ".join(f"{isa}: img/s overall (x baseline) | {isa}: slowest-fastest epoch "
                                        f"(fastest x baseline's)" for isa in summary) + " |",
             "|---|" + "---|---|" * len(summary)]
    for name in out["variants"]:
        cells = []
        for isa in summary:
            r = summary[isa][name]
            if r["images_per_sec"] is None:
                cells += [f"failed: {r['errors'][0][:80] if r['errors'] else '?'}", "-"]
                continue
            low, high = r["epoch_images_per_sec_min_max"]
            cells += [f"{r['images_per_sec']} ({r['speedup_vs_baseline']}x)",
                      f"{low:.0f}-{high:.0f} ({r['fastest_epoch_vs_baseline_fastest']}x)"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    path.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))

if __name__ == "__main__":
    main()
