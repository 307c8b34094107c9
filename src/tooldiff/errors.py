"""The one exception type for user errors.

Anything raised as `UserError` is printed by the CLI as a single line and exits non-zero;
every other exception is a bug and keeps its traceback.
"""


class UserError(Exception):
    """A problem with the user's input (config, file, model pair, request), not a bug."""


def describe_validation(err) -> str:
    """A pydantic ValidationError as one line: where the first error is (`a.b[0].c`) and what.

    The one place where a validation error becomes text: configs, checkpoints, requests and
    interventions all read the same way.
    """
    first = err.errors()[0]
    where = error_location(first.get("loc", ()))
    if first["type"] == "extra_forbidden":
        return f"unknown key {where!r}"
    msg = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    return f"{where}: {msg}" if where else msg


def validated(model_cls, data: dict, source: str):
    """`model_cls` validated from `data`; a ValidationError becomes one UserError line naming `source`."""
    from pydantic import ValidationError

    try:
        return model_cls.model_validate(data)
    except ValidationError as e:
        raise UserError(f"{source}: {describe_validation(e)}") from None


def error_location(loc) -> str:
    """("steering", 0, "alpha") -> "steering[0].alpha"."""
    where = ""
    for part in loc:
        where += f"[{part}]" if isinstance(part, int) else (f".{part}" if where else str(part))
    return where


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


def iter_jsonl(path, what: str = "file"):
    """(line number, value) of each non-blank line of a JSONL file; a missing file or a line that
    is not JSON is a one-line UserError naming the file and line. Lazy: large files stream."""
    import json
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} {path} does not exist")
    with open(path, encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield line_no, json.loads(line)
            except json.JSONDecodeError as e:
                raise UserError(f"{path}:{line_no}: not valid JSON ({e.msg})") from None
