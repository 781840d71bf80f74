"""`python -m worker check-precision DIR [--precision P]`: what a precision costs on
your images, with your weights.

Runs every image in DIR through the model at fp32 and at the chosen precision
(`--precision`, else `MODEL_PRECISION`; same engine, weights and cache as the
worker) and prints how often the two agree: top-1 agreement, top-5 overlap and the
cosine similarity of their logits. With real weights (`MODEL_WEIGHTS`), this is how
to see what int8 (or bf16) costs before serving it. With `MODEL_WEIGHTS=random` it
only shows that the numbers stay close: random weights have no accuracy to lose.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from shared.settings import SettingsError
from worker.calibration import MAX_PIXELS, SUFFIXES
from worker.preprocess import preprocess
from worker.settings import Precision, WorkerSettings


def load_crops(directory: Path) -> tuple[list[str], np.ndarray]:
    names, crops = [], []
    for path in sorted(p for p in directory.iterdir() if p.suffix.lower() in SUFFIXES):
        try:
            crops.append(preprocess(path.read_bytes(), MAX_PIXELS))
            names.append(path.name)
        except Exception as error:
            print(f"  skipped {path.name}: {error}", file=sys.stderr)
    return names, (np.stack(crops) if crops else np.empty((0, 224, 224, 3), np.uint8))


def logits_of(engine, crops: np.ndarray, batch: int) -> np.ndarray:
    return np.concatenate([engine.infer(crops[i:i + batch]) for i in range(0, len(crops), batch)])


def cosines(reference: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Cosine similarity of each image's logits (rows of two N×1000 arrays)."""
    return (reference * other).sum(1) / (np.linalg.norm(reference, axis=1)
                                         * np.linalg.norm(other, axis=1))


def top5_overlap(reference: np.ndarray, other: np.ndarray) -> float:
    """Mean share of each image's five likeliest classes the two arrays agree on."""
    return float(np.mean([len(set(np.argsort(-a)[:5]) & set(np.argsort(-b)[:5])) / 5
                          for a, b in zip(reference, other, strict=True)]))


def compare(reference: np.ndarray, other: np.ndarray) -> dict:
    """Agreement of two N×1000 logit arrays, over all images."""
    cosine = cosines(reference, other)
    return {"images": len(reference),
            "top1_agreement": float(np.mean(reference.argmax(1) == other.argmax(1))),
            "top5_overlap": top5_overlap(reference, other),
            "cosine_mean": float(cosine.mean()), "cosine_min": float(cosine.min())}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m worker check-precision",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("directory", type=Path)
    parser.add_argument("--precision", choices=[p.value for p in Precision if p.value != "fp32"])
    args = parser.parse_args(argv)
    if not args.directory.is_dir():
        print(f"check-precision: {args.directory}: no such directory", file=sys.stderr)
        return 2
    try:
        settings = WorkerSettings.load(**({"model_precision": args.precision} if args.precision
                                    else {}))
    except SettingsError as error:
        print(f"check-precision: {error}", file=sys.stderr)
        return 2
    from worker.engine import load_engine
    from worker.runtime import torch_threads

    names, crops = load_crops(args.directory)
    if not names:
        print(f"check-precision: no usable images in {args.directory}", file=sys.stderr)
        return 2
    threads = torch_threads(settings)
    batch = settings.batch_max_size
    chosen = load_engine(settings, threads)
    reference = load_engine(settings.model_copy(update={"model_precision": Precision.FP32}),
                            threads)
    result = compare(logits_of(reference, crops, batch), logits_of(chosen, crops, batch))
    print(f"{result['images']} images from {args.directory}; weights {chosen.weights_name}; "
          f"engine {chosen.name}")
    print(f"{chosen.precision} against fp32: top-1 agreement {result['top1_agreement']:.1%}, "
          f"top-5 overlap {result['top5_overlap']:.1%}, logits cosine mean "
          f"{result['cosine_mean']:.5f} (lowest {result['cosine_min']:.5f})")
    if chosen.weights_name == "random":
        print("(random weights: this shows the numbers stay close, not what the precision "
              "costs in accuracy; set MODEL_WEIGHTS to your weights for that)")
    return 0
