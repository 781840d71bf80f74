"""Writes the benchmark's JSON and plot, and prints the ratios last."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def write_json(results: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, sort_keys=False) + "\n")


def plot(sweep: list[dict], ceiling: float, baseline: float, path: Path, title: str) -> None:
    concurrency = [row["concurrency"] for row in sweep]
    figure, (throughput, latency) = plt.subplots(1, 2, figsize=(11, 4.2))
    throughput.plot(concurrency, [row["images_per_s"] for row in sweep], "o-", label="end to end")
    throughput.axhline(ceiling, color="green", linestyle="--", label="pipeline ceiling")
    throughput.axhline(baseline, color="red", linestyle=":", label="seed baseline")
    throughput.set(xscale="log", xlabel="concurrent clients", ylabel="images/s",
                   title="Throughput")
    throughput.set_xticks(concurrency, [str(c) for c in concurrency])
    throughput.legend()
    latency.plot(concurrency, [row["p95_ms"] for row in sweep], "o-", color="orange", label="p95")
    latency.plot(concurrency, [row["p50_ms"] for row in sweep], "o--", color="gray", label="p50")
    latency.set(xscale="log", yscale="log", xlabel="concurrent clients", ylabel="wait latency (ms)",
                title="Latency of POST /jobs?wait=")
    latency.set_xticks(concurrency, [str(c) for c in concurrency])
    latency.legend()
    figure.suptitle(title)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def ratios(results: dict) -> dict:
    """The figures the targets are stated in, each a ratio within this one run."""
    e2e = results["e2e_images_per_s"]
    out = {
        "e2e / seed baseline": e2e / results["seed_baseline_images_per_s"],
        "e2e / pipeline ceiling": e2e / results["pipeline_ceiling_images_per_s"],
        "wait p50 (1 client) - pipeline latency (ms)":
            results["wait_p50_ms_1_client"] - results["pipeline_latency_ms_1_image"],
    }
    engines = results.get("engines", {})
    torch_auto = engines.get("torch-auto")
    for key, row in engines.items():
        if torch_auto is not None and key != "torch-auto":
            out[f"e2e {key} / e2e torch-auto"] = (row["e2e_images_per_s"]
                                                  / torch_auto["e2e_images_per_s"])
    for key, row in engines.items():
        out[f"{key}: e2e / pipeline ceiling"] = row["e2e / pipeline ceiling"]
        out[f"{key}: e2e / model only"] = row["e2e / model only"]
        out[f"{key}: CPU share outside decode and model"] = \
            row["cpu_outside_decode_and_model_share"]
    lanes = results.get("lanes")
    if lanes:
        one_batch_ms = results["max_batch"] / results["pipeline_ceiling_images_per_s"] * 1000
        waits = lanes["interactive_under_backlog"]
        out["interactive wait p95 behind a backlog - one batch's pipeline latency (ms)"] = (
            waits["p95_ms"] - one_batch_ms)
        out["worker CPU per expired job (ms)"] = lanes["expired"]["worker_cpu_ms_per_expired_job"]
    for part in ("batches", "result_cache"):
        for name, value in results.get(part, {}).get("ratios", {}).items():
            if value is not None:
                out[f"{part.replace('_', ' ')}: {name}"] = value
    return out


def print_ratios(results: dict) -> None:
    mode = "compiled" if results["compiled"] else "eager"
    print(f"\nresq benchmark ({results['engine']} {results['precision']}, batches of "
          f"{results['max_batch']}, {mode}; {results.get('cpu', '')}):")
    for name, value in ratios(results).items():
        print(f"  {name:55s} {value:8.2f}")


def run_alone(doc: str, name: str, count: tuple[str, int, int], run, env: dict) -> None:
    """A part of the benchmark on its own (`python -m bench.<part>`): `--<count> N`
    (its default, or the quick one with `--quick`) and `--out DIR`; `run(work, n,
    env)` gives the results, written as `<name>.json`, its ratios printed."""
    import argparse
    import tempfile

    flag, default, quick = count
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument(f"--{flag}", type=int, default=default)
    parser.add_argument("--quick", action="store_true", help=f"{quick} {flag}")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix=f"resq-bench-{name}-") as work:
        results = run(Path(work), quick if args.quick else getattr(args, flag), env)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{name}.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results["ratios"], indent=2))
