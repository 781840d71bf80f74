"""`resq`: submit images to a resq server and read their results.

    resq submit cat.jpg dog.png --wait 30      # files or http(s) URLs
    resq get JOB_ID --wait 10
    resq cancel JOB_ID
    resq watch incoming/                       # submit each new image, print results
    resq batch photos/ --out results.jsonl     # one batch: a folder, files, or --urls FILE
    resq batch --resume BATCH_ID --out results.jsonl

The server and API key come from --url / --api-key or RESQ_URL / RESQ_API_KEY.
Human output by default, one JSON object per job with --json. Exit codes:
0 every job (or batch item) succeeded (or was accepted, without --wait); 1 one failed;
2 a request was refused (bad input, unknown job, bad key); 3 a wait ended before
the job did; 4 the server could not be reached or stayed unavailable.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from resq_client.client import (
    MEDIA_TYPES,
    TERMINAL,
    JobTimeout,
    ResqClient,
    ResqClientError,
    ServiceUnavailable,
)

EXIT_OK, EXIT_FAILED, EXIT_REFUSED, EXIT_TIMEOUT, EXIT_UNAVAILABLE = 0, 1, 2, 3, 4


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="resq", description=__doc__.split("\n\n")[0])
    top.add_argument("--url", default=os.environ.get("RESQ_URL", "http://127.0.0.1:8000"),
                     help="server address (RESQ_URL; default http://127.0.0.1:8000)")
    top.add_argument("--api-key", default=os.environ.get("RESQ_API_KEY"),
                     help="API key (RESQ_API_KEY)")
    top.add_argument("--json", action="store_true", help="one JSON object per job")
    top.add_argument("--retries", type=int, default=5,
                     help="retries of an unreachable, busy (503) or rate-limited (429) server")
    commands = top.add_subparsers(dest="command", required=True)

    submit = commands.add_parser("submit", help="submit images (files or URLs)")
    submit.add_argument("images", nargs="+", help="image files or http(s) URLs")
    submit.add_argument("--wait", type=float, help="seconds to wait for each result")
    submit.add_argument("--top-k", type=int, help="predictions per image (1-20)")

    get = commands.add_parser("get", help="read a job")
    get.add_argument("id")
    get.add_argument("--wait", type=float, help="seconds to wait for it to finish")

    cancel = commands.add_parser("cancel", help="cancel a job that has not finished")
    cancel.add_argument("id")

    watch = commands.add_parser("watch", help="submit every new image in a folder")
    watch.add_argument("directory", type=Path)
    watch.add_argument("--top-k", type=int)
    watch.add_argument("--interval", type=float, default=0.5, help="seconds between scans")
    watch.add_argument("--exit-after", type=int, help="stop after this many results")

    batch = commands.add_parser(
        "batch", help="submit many images as one batch and write each result as it comes",
        description="Submit a folder, files or URLs as one batch; write each item's result "
                    "line to --out (JSON Lines) as it ends, with a progress bar. Ctrl-C "
                    "stops reading (the batch goes on); --resume picks it up where the "
                    "file ends.")
    batch.add_argument("inputs", nargs="*", type=Path, help="image files and folders")
    batch.add_argument("--urls", type=Path, help="a file of http(s) URLs, one a line")
    batch.add_argument("--out", type=Path, required=True, help="results, JSON Lines")
    batch.add_argument("--resume", metavar="BATCH_ID", help="go on reading a batch")
    batch.add_argument("--top-k", type=int)
    batch.add_argument("--no-progress", action="store_true", help="no progress bar")
    return top


class Output:
    def __init__(self, as_json: bool):
        self.as_json = as_json

    def job(self, job: dict, name: str | None = None) -> None:
        if self.as_json:
            print(json.dumps({"source": name, **job} if name else job), flush=True)
            return
        label = f"{name}: " if name else ""
        if job["status"] == "succeeded":
            top = job["result"]["predictions"]
            best = ", ".join(f"{p['label']} {p['score']:.3f}" for p in top[:3])
            print(f"{label}{job['id']} succeeded: {best}", flush=True)
        elif job["status"] == "failed":
            print(f"{label}{job['id']} failed: {job['error']['code']}: "
                  f"{job['error']['message']}", flush=True)
        else:
            print(f"{label}{job['id']} {job['status']}", flush=True)

    def error(self, error: Exception, name: str | None = None) -> None:
        label = f"{name}: " if name else ""
        if self.as_json:
            body = {"error": {"code": getattr(error, "code", "error"), "message": str(error)}}
            print(json.dumps({"source": name, **body} if name else body), flush=True)
        else:
            print(f"{label}error: {error}", file=sys.stderr, flush=True)

    def progress(self, done: int, total: int) -> None:
        if total > 1 and not self.as_json:
            print(f"[{done}/{total}]", file=sys.stderr, flush=True)


def exit_code_of(job: dict, waited: bool) -> int:
    if job["status"] == "succeeded":
        return EXIT_OK
    if job["status"] == "failed":
        return EXIT_FAILED
    return EXIT_TIMEOUT if waited else EXIT_OK


def run_submit(client: ResqClient, args, out: Output) -> int:
    worst = EXIT_OK
    for done, name in enumerate(args.images, 1):
        try:
            job = client.submit(name, top_k=args.top_k, wait=args.wait)
            out.job(job, name)
            code = exit_code_of(job, args.wait is not None)
        except ServiceUnavailable as error:
            out.error(error, name)
            code = EXIT_UNAVAILABLE
        except (ResqClientError, OSError) as error:
            out.error(error, name)
            code = EXIT_REFUSED
        worst = max(worst, code)
        out.progress(done, len(args.images))
    return worst


def run_watch(client: ResqClient, args, out: Output) -> int:
    seen: set[Path] = set()
    pending: dict[str, Path] = {}
    results = 0
    worst = EXIT_OK
    while args.exit_after is None or results < args.exit_after:
        for path in sorted(args.directory.iterdir()):
            if path in seen or path.suffix.lower() not in MEDIA_TYPES or not path.is_file():
                continue
            seen.add(path)
            try:
                pending[client.submit(path, top_k=args.top_k)["id"]] = path
            except ResqClientError as error:
                out.error(error, path.name)
                results += 1
                worst = max(worst, EXIT_REFUSED)
        for job_id, path in list(pending.items()):
            job = client.get(job_id)
            if job["status"] in TERMINAL:
                del pending[job_id]
                out.job(job, path.name)
                results += 1
                worst = max(worst, exit_code_of(job, True))
        time.sleep(args.interval)
    return worst


def batch_files(inputs: list[Path]) -> list[Path]:
    """The image files of `inputs`: files as given, folders walked in name order."""
    found = []
    for given in inputs:
        if given.is_dir():
            found += sorted(p for p in given.rglob("*") if p.is_file()
                            and p.suffix.lower() in MEDIA_TYPES
                            and not any(part.startswith(".") for part in p.parts))
        else:
            found.append(given)
    return found


def lines_already_read(out: Path) -> int:
    """The whole lines `out` holds (a line cut short by an interrupt is dropped)."""
    if not out.exists():
        return 0
    data = out.read_bytes()
    whole = data[: data.rfind(b"\n") + 1]
    if len(whole) != len(data):
        out.write_bytes(whole)
    return whole.count(b"\n")


def run_batch(client: ResqClient, args, out: Output) -> int:
    from tqdm import tqdm

    if args.resume:
        batch_id = args.resume
    else:
        if bool(args.urls) == bool(args.inputs):
            raise ResqClientError(0, "usage", "give image files or folders, or --urls FILE")
        if args.urls:
            urls = [u.strip() for u in args.urls.read_text().splitlines() if u.strip()]
            batch = client.submit_batch(urls=urls, top_k=args.top_k)
        else:
            batch = client.submit_batch(batch_files(args.inputs), top_k=args.top_k)
        batch_id = batch["id"]
        if args.out.exists():
            args.out.unlink()  # a new batch: a new file
    bar = None
    try:
        print(f"batch {batch_id}; resume with: resq batch --resume {batch_id} --out "
              f"{args.out}", file=sys.stderr, flush=True)
        after = lines_already_read(args.out)
        total = client.batch(batch_id)["total"]
        bar = tqdm(total=total, initial=after, unit="image", disable=args.no_progress,
                   file=sys.stderr, dynamic_ncols=True)
        with args.out.open("a") as results:
            for line in client.iter_results(batch_id, after=after):
                results.write(json.dumps(line, separators=(",", ":")) + "\n")
                results.flush()
                bar.update(1)
    except KeyboardInterrupt:
        if bar is not None:
            bar.close()
        print(f"stopped; the batch goes on. resume with: resq batch --resume {batch_id} "
              f"--out {args.out}", file=sys.stderr, flush=True)
        return 130
    bar.close()
    batch = client.batch(batch_id)
    counts = batch["counts"]["status"]
    print(f"batch {batch_id} {batch['status']}: {counts['succeeded']} succeeded, "
          f"{counts['failed']} failed", file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps(batch), flush=True)
    return EXIT_OK if counts["failed"] == 0 and batch["status"] == "succeeded" else EXIT_FAILED


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    client = ResqClient(args.url, args.api_key, retries=args.retries)
    out = Output(args.json)
    try:
        if args.command == "submit":
            return run_submit(client, args, out)
        if args.command == "get":
            job = client.wait(args.id, args.wait) if args.wait else client.get(args.id)
            out.job(job)
            return exit_code_of(job, bool(args.wait))
        if args.command == "cancel":
            job = client.cancel(args.id)
            out.job(job)
            return EXIT_OK
        if args.command == "batch":
            return run_batch(client, args, out)
        return run_watch(client, args, out)
    except JobTimeout as timeout:
        out.job(timeout.job)
        return EXIT_TIMEOUT
    except ServiceUnavailable as error:
        out.error(error)
        return EXIT_UNAVAILABLE
    except ResqClientError as error:
        out.error(error)
        return EXIT_REFUSED
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
