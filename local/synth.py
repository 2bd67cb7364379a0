"""Writes the templates local mode runs, in a process of its own.

The CDK runs on a Node.js process (jsii) that lives as long as the Python process that loaded the CDK, some
650 MB. Synthesizing here, in a child that exits when the templates are written, frees that memory before
local mode starts its servers.

    python -m local.synth CONFIG PATH...   → last stdout line: {"<path>": "<template file>", ...}
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from local.run import PROJECT_ROOT, STATE_DIR
from stacks.config import load_config


def main(argv: list[str]) -> int:
    from aws_cdk import App

    from stacks.app_builder import build_app

    config_path, *paths = argv
    config = load_config(Path(config_path))
    outdir = STATE_DIR / "cdk.out"
    flags = json.loads((PROJECT_ROOT / "cdk.json").read_text())["context"]
    # The same templates a deploy uses, without building the Lambda bundle: handlers run from source.
    app = App(outdir=str(outdir), context={**flags, "aws:cdk:bundling-stacks": []})
    _, stacks = build_app(config, only_paths=paths, account="000000000000", app=app)
    app.synth()
    print(
        json.dumps(
            {stack.listing.path: str(outdir / f"{stack.stack_name}.template.json") for stack in stacks}
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
