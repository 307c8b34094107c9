"""Typed JSON artifacts: one reader and one writer for every file one stage leaves for another.

Each artifact (organism.json, a feature ranking, the experiment summary, results.json) is a
pydantic model deriving from `Artifact`, with a `format` number bumped whenever its shape changes.
Reading checks the file is there, is JSON, is this kind of artifact and of the format this
tooldiff writes; anything else (an older file, another tool's, a typo'd path) is one `UserError`
line naming the file and what is wrong, never a KeyError deep in a consumer. Writing is atomic
(a temporary file renamed into place) and writes exactly the fields that were set, so a file read
and written back is unchanged.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import ClassVar, TypeVar, Union

from pydantic import BaseModel, ConfigDict, ValidationError

from tooldiff.errors import UserError, describe_validation

A = TypeVar("A", bound="Artifact")
Num = Union[int, float]  # a number as written: ints stay ints, so a file read and written back is unchanged


class Record(BaseModel):
    """A typed part of an artifact: known fields are checked, unknown ones are kept as written."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())

    def to_dict(self) -> dict:
        """The fields as they were given (unset defaults left out), in the file's key order."""
        return self.model_dump(exclude_unset=True)


class Artifact(Record):
    """A whole artifact file. Subclasses set WHAT (how messages name it), FORMAT and RERUN (the
    command that writes a current one)."""

    WHAT: ClassVar[str] = "artifact"
    FORMAT: ClassVar[int] = 1
    RERUN: ClassVar[str] = "rerun the stage that writes it"

    format: int

    @classmethod
    def new(cls: type[A], **fields) -> A:
        """The artifact of this tooldiff's format, validated from `fields`."""
        return cls.from_dict({"format": cls.FORMAT, **fields}, "a new " + cls.WHAT)

    @classmethod
    def from_dict(cls: type[A], data: object, source: str) -> A:
        """Validate `data` (what a file held); `source` names it in the one-line error."""
        if not isinstance(data, dict):
            raise UserError(f"{source} is not a {cls.WHAT}: it holds a JSON {type(data).__name__}, not an object")
        if "format" not in data:
            raise UserError(f"{source} is not a {cls.WHAT} of this tooldiff (no \"format\" field: written by an "
                            f"older version or another tool); {cls.RERUN}")
        if data["format"] != cls.FORMAT:
            raise UserError(f"{source} is a {cls.WHAT} of format {data['format']!r}; this tooldiff reads format "
                            f"{cls.FORMAT}; {cls.RERUN}")
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            raise UserError(f"{source} is not a valid {cls.WHAT} ({describe_validation(e)}); {cls.RERUN}") from None


def read_json(path: Path, what: str) -> object:
    """The JSON value in `path`; a missing or unreadable file is one UserError line naming `what`."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} {path} does not exist")
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{what} {path} is not readable JSON ({e})") from None


def read_artifact(cls: type[A], path: Path) -> A:
    """The artifact `cls` in `path`; a missing, unreadable, old or foreign file is one UserError line."""
    return cls.from_dict(read_json(path, cls.WHAT), str(path))


def write_artifact(artifact: Artifact, path: Path, indent: int = 1) -> Path:
    """Write `artifact` to `path` atomically; returns `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(json.dumps(artifact.to_dict(), indent=indent))
    os.replace(tmp, path)
    return path
