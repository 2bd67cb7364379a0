"""How synth time grows with the number of listings.

Synthesizes configs of 1, 10 and 50 enabled listings in one run, each in a fresh process exactly as the
CDK CLI does (`python app.py` with the cdk.json feature flags, real Lambda bundling and every cdk-nag check),
and prints the wall time of each and the 50/1 ratio. The fixed cost is the jsii/Node start-up and the
import of aws-cdk-lib; each listing should add little (goal: ratio <= 1.5).

    .venv/bin/python bench/synth_scaling.py [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SIZES = (1, 10, 50)


def config_with(count: int) -> dict[str, object]:
    listings = {
        f"listing-{index}": {
            "name": f"Listing {index}",
            "description": f"Benchmark listing {index}",
            "productCode": f"BENCH_{index}",
            "path": f"listing-{index}",
            "dimensions": [{"name": "users", "description": "Active users"}],
        }
        for index in range(count)
    }
    return {"marketplaceListings": listings, "deploymentSettings": {"region": "us-east-1"}}


def synth_seconds(count: int, workdir: Path) -> float:
    config = workdir / f"config-{count}.json"
    config.write_text(json.dumps(config_with(count)))
    outdir = workdir / f"out-{count}"
    flags = json.loads((PROJECT_ROOT / "cdk.json").read_text())["context"]
    env = {
        **os.environ,
        "CDK_OUTDIR": str(outdir),
        "CDK_CONTEXT_JSON": json.dumps({**flags, "config": str(config)}),
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
    }
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "app.py"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"synth of {count} listings failed:\n{result.stderr[-3000:]}")
    templates = list(outdir.glob("*.template.json"))
    if len(templates) != count:
        raise SystemExit(f"expected {count} templates, got {len(templates)}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs per size; the median is reported")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        synth_seconds(1, workdir)  # warm the Lambda dependency cache and the OS file cache
        results = {}
        for count in SIZES:
            runs = [synth_seconds(count, workdir) for _ in range(args.repeat)]
            results[count] = statistics.median(runs)
            seconds = results[count]
            print(f"{count:>3} listing(s): {seconds:6.2f} s  ({seconds / count:5.2f} s per listing)")
    print(f"ratio 50/1: {results[50] / results[1]:.2f}  (goal <= 1.5)")
    print(f"ratio 10/1: {results[10] / results[1]:.2f}")


if __name__ == "__main__":
    main()
