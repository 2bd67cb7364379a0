"""Local mode's memory once it is up: the resident memory of every process it runs, and their total.

Starts `./deploy-marketplace.sh --local` (as `python -m operations.cli --local`) on free ports, waits for
.local/endpoints.json, lets it settle, reads each process of its process group from /proc, then stops it
with SIGINT, as Ctrl-C does. Goal: <= 500 MB in total. Then it starts local mode again at once on the same
ports, which must work (the ports' last connections are still in TIME_WAIT).

    .venv/bin/python bench/local_footprint.py [--settle SECONDS]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ENDPOINTS = PROJECT_ROOT / ".local" / "endpoints.json"
GOAL_MB = 500
LISTING_PORTS = 3  # the seed config's two listings and the console


def _free_run_of_ports(count: int) -> int:
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            first = int(probe.getsockname()[1])
        if first + count >= 65535:
            continue
        try:
            for port in range(first, first + count):
                with socket.socket() as other:
                    other.bind(("127.0.0.1", port))
        except OSError:
            continue
        return first


def _start(port: int) -> tuple[subprocess.Popen[bytes], float]:
    ENDPOINTS.unlink(missing_ok=True)
    started = time.monotonic()
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "operations.cli", "--local", "--port", str(port)],
        cwd=PROJECT_ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    while not ENDPOINTS.exists():
        if process.poll() is not None:
            output = process.stdout.read().decode() if process.stdout else ""
            raise SystemExit(f"local mode did not start:\n{output[-3000:]}")
        time.sleep(0.2)
    return process, time.monotonic() - started


def _group(pgid: int) -> list[tuple[float, str]]:
    """(resident MB, command) of every process in the process group."""
    page = os.sysconf("SC_PAGE_SIZE")
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) != pgid:
                continue
            resident = int((stat.parent / "statm").read_text().split()[1]) * page / 2**20
            command = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except (OSError, IndexError, ValueError):
            continue  # it ended while it was read
        found.append((resident, command.replace(str(PROJECT_ROOT) + "/", "")))
    return sorted(found, reverse=True)


def _stop(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--settle", type=float, default=5.0, help="seconds to wait after start-up")
    arguments = parser.parse_args()
    print(f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}, {os.cpu_count()} CPUs")
    port = _free_run_of_ports(LISTING_PORTS)
    process, seconds = _start(port)
    try:
        time.sleep(arguments.settle)
        members = _group(process.pid)
    finally:
        _stop(process)
    print(f"local mode up in {seconds:.1f} s; resident memory {arguments.settle:g} s later:")
    for resident, command in members:
        print(f"  {resident:8.1f} MB  {command[:100]}")
    total = sum(resident for resident, _ in members)
    verdict = "met" if total <= GOAL_MB else "NOT met"
    print(f"  {total:8.1f} MB  in total, {len(members)} processes (goal <= {GOAL_MB} MB: {verdict})")
    again, seconds = _start(port)  # at once, on the same ports
    _stop(again)
    print(f"restarted at once on the same ports: up in {seconds:.1f} s")


if __name__ == "__main__":
    main()
