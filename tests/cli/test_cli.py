"""`bandit-router --help`: every command says in one line what it does, every option its
default, and the top-level help ends with three example commands."""

from __future__ import annotations

import argparse

import pytest

from bandit_router.cli.main import _parser, main


def _commands(parser: argparse.ArgumentParser, path: str = "bandit-router"):
    """(command path, its parser, its one-line summary) for every (sub)command."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            summaries = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                yield f"{path} {name}", sub, summaries.get(name)
                yield from _commands(sub, f"{path} {name}")


def test_every_command_has_a_one_line_summary():
    commands = list(_commands(_parser()))
    assert {c for c, _, _ in commands} >= {
        "bandit-router serve", "bandit-router rebuild", "bandit-router report",
        "bandit-router migrate-store", "bandit-router bench", "bandit-router bench replay",
        "bandit-router bench load"}
    for command, sub, summary in commands:
        assert summary and "\n" not in summary and len(summary) <= 50, (command, summary)
        assert sub.description.startswith(summary), command


def test_every_option_says_its_default():
    for command, sub, _ in _commands(_parser()):
        for action in sub._actions:
            takes_value = action.option_strings and action.nargs != 0
            if takes_value and action.dest not in ("help", "version"):
                assert "default" in (action.help or ""), (command, action.option_strings)


def test_the_defaults_shown_are_the_real_ones(capsys):
    for argv, shown in ((["serve", "--help"], "8787"),
                        (["bench", "load", "--help"], "benchmarks/results/load"),
                        (["bench", "replay", "--help"], "benchmarks/results/<dataset")):
        with pytest.raises(SystemExit) as done:
            main(argv)
        assert done.value.code == 0
        assert shown in " ".join(capsys.readouterr().out.split()), argv


def test_the_top_level_help_ends_with_three_examples(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    lines = capsys.readouterr().out.rstrip().splitlines()
    assert lines[-4] == "examples:"
    assert all(line.startswith("  bandit-router ") for line in lines[-3:]), lines[-4:]
    assert len({line.split()[1] for line in lines[-3:]}) == 3  # three different commands
