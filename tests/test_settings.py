"""Run settings dataclasses turned into command-line options."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import pytest

from agent.settings import add_settings_arguments, settings_from_arguments


@dataclass(frozen=True)
class ExampleSettings:
    """Settings of an example run."""

    force: bool = False
    """Go on despite a mismatch."""
    limit: int | None = 3
    """Items at most; none for no limit."""
    name: str = "run"
    """Name of the run."""


def parse(*argv: str) -> ExampleSettings:
    parser = argparse.ArgumentParser()
    add_settings_arguments(parser, ExampleSettings)
    return settings_from_arguments(ExampleSettings, parser.parse_args(list(argv)))


def test_defaults_without_options() -> None:
    assert parse() == ExampleSettings()


@pytest.mark.parametrize(
    ("argv", "force"),
    [
        (["--force"], True),
        (["--force", "true"], True),
        (["--force", "false"], False),
        (["--force", "no"], False),
    ],
)
def test_bool_option_alone_means_true(argv: list[str], force: bool) -> None:
    assert parse(*argv).force is force


def test_bool_flag_before_other_options() -> None:
    assert parse("--force", "--name", "b") == ExampleSettings(force=True, name="b")


def test_optional_int_accepts_none() -> None:
    assert parse("--limit", "none").limit is None
    assert parse("--limit", "7").limit == 7


def test_help_shows_field_docs(capsys) -> None:
    with pytest.raises(SystemExit):
        parse("--help")
    printed = " ".join(capsys.readouterr().out.split())
    assert "Go on despite a mismatch. (default: False)" in printed
    assert "Items at most; none for no limit. (default: 3)" in printed


def test_training_paths_stored_absolute(tmp_path, monkeypatch) -> None:
    # Checkpoint programs read these paths from another folder, so they are kept absolute.
    from agent.seq2seq_training import Seq2SeqTrainingSettings
    from agent.training import FollowerTrainingSettings

    monkeypatch.chdir(tmp_path)
    follower = FollowerTrainingSettings(data_dir="world", rxr_dir="RxR", dataset="rxr", features="f.tsv")
    assert follower.data_dir == str(tmp_path / "world")
    assert follower.rxr_dir == str(tmp_path / "RxR")
    assert follower.features == str(tmp_path / "f.tsv")
    assert follower.vocabulary is None  # no file: unchanged
    seq2seq = Seq2SeqTrainingSettings(vocabulary="vocab.{language}.txt", features="none")
    assert seq2seq.vocabulary == str(tmp_path / "vocab.{language}.txt")
    assert seq2seq.features == "none"
