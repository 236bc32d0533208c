"""Does the demo's memory keep growing? Resident memory of the app process over many sequential requests.

    python benchmarks/bench_app_memory.py [--requests 200] [--model DIR]

Starts `python app.py` (the bundled checkpoint unless --model is given) and sends --requests sequential
`/synthesize` calls as users would: two London Set faces in turn, sentences of varying length, a new seed each time.
Prints the app's resident set size (VmRSS) after the first request and every 20th, and the change between request 20
and the last (the target: within 10%). Linux only (reads /proc).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from app_client import FACE, OTHER_FACE, app_env, predict, running_app  # beside this script (benchmarks/)

SENTENCES = [
    "Hello there.",
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background, then read the verse out loud for pleasure.",
    "It is easy to tell the depth of a well. The juice of lemons makes fine punch. The box was thrown beside the "
    "parked truck.",
]


def app_pid(port: int) -> int:
    """The pid of the `app.py ... --port PORT` process."""
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if any(part.endswith(b"app.py") for part in cmdline) and str(port).encode() in cmdline:
                return int(proc.name)
    raise RuntimeError(f"no app.py process on port {port}")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--model", default=None, help="checkpoint (default: the bundled one)")
    args = parser.parse_args()

    from gradio_client import Client

    with tempfile.TemporaryDirectory(prefix="ftv-memory-") as scratch:
        model_args = ["--model", args.model] if args.model else []
        with running_app(model_args, Path(scratch) / "app.log", env=app_env()) as url:
            pid = app_pid(int(url.rstrip("/").rsplit(":", 1)[1]))
            client = Client(url, verbose=False, download_files=str(Path(scratch) / "downloads"))
            faces = [FACE, OTHER_FACE]
            rss: dict[int, float] = {}
            start = time.perf_counter()
            for i in range(1, args.requests + 1):
                predict(client, faces[i % 2], SENTENCES[i % len(SENTENCES)], seed=i)
                if i == 1 or i % 20 == 0:
                    rss[i] = rss_mib(pid)
                    print(
                        f"after request {i:4d}: {rss[i]:7.0f} MiB  ({time.perf_counter() - start:5.0f} s)", flush=True
                    )
    if 20 in rss and args.requests in rss:
        change = rss[args.requests] / rss[20] - 1
        print(f"request 20 -> {args.requests}: {rss[20]:.0f} -> {rss[args.requests]:.0f} MiB ({change:+.1%})")


if __name__ == "__main__":
    main()
