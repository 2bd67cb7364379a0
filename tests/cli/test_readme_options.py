"""The README's options table and the command's --help name every option the command line takes: a seller
reads there what the command can do, so an option added to the parser without them fails here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from operations import cli

README = Path(__file__).resolve().parents[2] / "README.md"


def parser_options(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """Every long option of the parser that `cli.parse_args` builds (the one the command uses)."""
    built: list[cli.CommandLineParser] = []

    class Recording(cli.CommandLineParser):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]
            built.append(self)

    monkeypatch.setattr(cli, "CommandLineParser", Recording)
    cli.parse_args(["--help"])
    (parser,) = built
    return {
        option for action in parser._actions for option in action.option_strings if option.startswith("--")
    }


def readme_options_table() -> set[str]:
    """The options named in the first column of the table under '### The command'."""
    section = README.read_text(encoding="utf-8").split("### The command", 1)[1].split("\n#", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| Option |"), "the table under '### The command' starts with an Option column"
    return {option for row in rows[2:] for option in re.findall(r"`(--[a-z][a-z-]*)", row.split(" | ")[0])}


def test_the_parser_has_the_options_the_readme_table_is_checked_against(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert {"--local", "--port", "--metering-interval", "--status", "--destroy-disabled"} <= parser_options(
        monkeypatch
    )


def test_every_option_of_the_command_is_in_the_readmes_options_table(monkeypatch: pytest.MonkeyPatch) -> None:
    missing = parser_options(monkeypatch) - readme_options_table()
    assert not missing, f"README.md, '### The command': add {', '.join(sorted(missing))} to the options table"


def test_the_readmes_options_table_names_no_option_the_command_lacks(monkeypatch: pytest.MonkeyPatch) -> None:
    unknown = readme_options_table() - parser_options(monkeypatch)
    assert not unknown, f"README.md names options the command does not take: {', '.join(sorted(unknown))}"


def test_every_option_is_in_the_commands_help(monkeypatch: pytest.MonkeyPatch) -> None:
    missing = {option for option in parser_options(monkeypatch) if option not in cli.USAGE}
    assert not missing, f"operations/cli.py USAGE (--help): add {', '.join(sorted(missing))}"
