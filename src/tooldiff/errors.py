"""The one exception type for user errors.

Anything raised as `UserError` is printed by the CLI as a single line and exits non-zero;
every other exception is a bug and keeps its traceback.
"""


class UserError(Exception):
    """A problem with the user's input (config, file, model pair, request), not a bug."""


def describe_validation(err) -> str:
    """A pydantic ValidationError as one line naming the first bad key."""
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "config"
    if first["type"] == "extra_forbidden":
        return f"unknown key {where!r}"
    return f"{where}: {str(first['msg']).removeprefix('Value error, ')}"


def read_toml(path, what: str) -> dict:
    """A TOML file as a dict; a missing or malformed file is a one-line UserError."""
    import tomllib
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} {path} does not exist")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{path}: not valid TOML: {e}") from None
