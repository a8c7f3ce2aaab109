"""`gendeg <stage> --help`: a description, every option explained, one example."""

from __future__ import annotations

import argparse

import pytest

from gendeg.cli import build_parser


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.mark.parametrize("name", sorted(subcommands()))
def test_help_has_a_description_every_option_explained_and_an_example(name):
    sub = subcommands()[name]
    assert sub.description and len(sub.description.split()) >= 8, name
    unexplained = [a.dest for a in sub._actions if not isinstance(a, argparse._HelpAction) and not a.help]
    assert unexplained == [], f"gendeg {name}: options without help: {unexplained}"
    assert sub.epilog and f"gendeg " in sub.epilog and name.split()[0] in sub.epilog
    text = sub.format_help()
    assert "example" in text
