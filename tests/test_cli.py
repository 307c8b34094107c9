"""The CLI contract: every command documents itself; user errors are one line, exit 2."""

import pytest
from typer.main import get_command

from tooldiff.cli import app

COMMANDS = sorted(get_command(app).commands)


def test_top_level_help_lists_every_command(run_cli):
    result = run_cli("--help")
    assert result.returncode == 0
    for name in COMMANDS:
        assert name in result.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command, run_cli):
    result = run_cli(command, "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout


def test_missing_option_is_a_usage_error_not_a_traceback(run_cli):
    result = run_cli("score")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr


def test_user_error_is_one_line_and_exit_2(tmp_path, run_cli):
    result = run_cli("run", tmp_path / "nothing.toml", "--plan")
    assert result.returncode == 2
    assert "nothing.toml" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_verbose_is_a_global_option_that_reaches_the_command(monkeypatch):
    from typer.testing import CliRunner

    import tooldiff.serve
    from tooldiff.progress import VERBOSE_ENV, verbose

    seen = []
    monkeypatch.setenv(VERBOSE_ENV, "0")  # recorded, so the --verbose run below is undone after the test
    monkeypatch.setattr(tooldiff.serve, "serve", lambda settings, announce: seen.append(verbose()))
    assert CliRunner().invoke(app, ["serve", "--model", "m"]).exit_code == 0
    assert CliRunner().invoke(app, ["--verbose", "serve", "--model", "m"]).exit_code == 0
    assert seen == [False, True]
