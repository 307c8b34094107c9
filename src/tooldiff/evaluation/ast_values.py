"""BFCL-AST checking of one parameter value against its accepted values.

The rules (and the error-type strings) are those of the official `bfcl_eval` AST checker for
Python, including its quirks, because our numbers must be comparable with the leaderboard's:

- a value's Python type must equal the schema's (bool is not int, int is not float) except
  that an int is accepted for a float; if the accepted answers hold another type (BFCL writes
  variables as strings), a value of that type is accepted and then compared literally;
- array elements are type-checked one level deep, without the int -> float allowance;
- strings (also inside lists and dicts) are compared after `standardize`;
- lists are compared in order; dicts key by key; lists of dicts element by element.

`tests/test_evaluation_ast_official.py` holds this module to the official checker.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tooldiff.evaluation.schema import NESTED_CHECKED, PYTHON_TYPES, checker_type

OMITTED = ""  # in an accepted-values list: the parameter may be left out
_IGNORED_CHARS = str.maketrans("", "", " ,./-_*^")


@dataclass(frozen=True)
class AstResult:
    """Outcome of an AST check: `error_type` uses the official BFCL strings."""

    valid: bool
    error_type: str | None = None
    errors: list[str] = field(default_factory=list)


PASS = AstResult(True)


def fail(error_type: str, message: str) -> AstResult:
    return AstResult(False, error_type, [message])


def standardize(text: str) -> str:
    """BFCL's string normal form: drop spaces and `,./-_*^`, fold case, `'` -> `"`."""
    return text.translate(_IGNORED_CHARS).lower().replace("'", '"')


def _standardized(value: Any) -> Any:
    return standardize(value) if type(value) is str else value


def _answer_type(accepted: list) -> type | None:
    """The type of the first accepted value that is not the 'may omit' marker."""
    for answer in accepted:
        if answer != OMITTED:
            return type(answer)
    return None


# --- type check ---------------------------------------------------------------------------
@dataclass(frozen=True)
class _TypeVerdict:
    result: AstResult
    is_variable: bool = False


def _element_type_ok(element: Any, accepted_list: Any, element_type: type) -> bool:
    """One array element against one accepted list (a non-list alternative accepts anything)."""
    if type(accepted_list) is not list:
        return True
    if type(element) is element_type:
        return True
    answer_type = _answer_type(accepted_list)
    return answer_type is not None and type(element) is answer_type


def _check_type(param: str, value: Any, accepted: list, expected: type,
                element_type: type | None, type_name: str) -> _TypeVerdict:
    answer_type = _answer_type(accepted)
    # BFCL marks a value as a "variable" when the accepted answers have another type than the
    # schema; such values skip the structured comparisons below and are compared literally.
    is_variable = answer_type is not None and answer_type is not expected
    if type(value) is expected:
        if element_type is None:
            return _TypeVerdict(PASS, is_variable)
        if any(all(_element_type_ok(e, alternative, element_type) for e in value)
               for alternative in accepted):
            return _TypeVerdict(PASS, is_variable)
        if answer_type is not None and type(value) is answer_type:
            return _TypeVerdict(fail(
                "type_error:nested",
                f"Nested type check failed for {param!r}: expected {type_name} of "
                f"{element_type.__name__}, got {value!r}."))
    elif answer_type is not None and type(value) is answer_type:
        return _TypeVerdict(PASS, is_variable=True)
    return _TypeVerdict(fail(
        "type_error:simple",
        f"Wrong type for {param!r}: expected {type_name}, got {type(value).__name__} ({value!r})."))


# --- structured comparisons --------------------------------------------------------------
def _check_string(param: str, value: str, accepted: list) -> AstResult:
    wanted = [standardize(a) for a in accepted if type(a) is str]
    if standardize(value) in wanted:
        return PASS
    return fail("value_error:string",
                f"Invalid value for {param!r}: {value!r}; expected one of {accepted} (normalized).")


def _check_list(param: str, value: list, accepted: list) -> AstResult:
    produced = [_standardized(v) for v in value]
    # Iterating each alternative (not `list(...)`) keeps BFCL's behaviour for the "" marker:
    # it becomes [], so an empty list matches an omittable parameter.
    wanted = [[_standardized(a) for a in alternative] for alternative in accepted]
    if produced in wanted:
        return PASS
    return fail("value_error:list/tuple",
                f"Invalid value for {param!r}: {value!r}; expected one of {accepted} (in order).")


def _dict_mismatch(value: dict, alternative: dict) -> str | None:
    """The error type of `value` against one accepted dict, or None when it matches."""
    error_type = None
    for key, item in value.items():
        if key not in alternative:
            error_type = "value_error:dict_key"
            break
        if _standardized(item) not in [_standardized(a) for a in alternative[key]]:
            error_type = "value_error:dict_value"
            break
    # BFCL checks missing keys even after a bad value, and then reports the key error.
    for key, item_accepted in alternative.items():
        if key not in value and OMITTED not in item_accepted:
            return "value_error:dict_key"
    return error_type


def _check_dict(param: str, value: Any, accepted: list) -> AstResult:
    if not isinstance(value, dict):
        # Deliberate difference: the official checker raises here (a string element in a list
        # of dicts whose answers hold strings); we fail the example instead. docs/scoring.md.
        return fail("value_error:dict_value", f"Expected a dict inside {param!r}, got {value!r}.")
    error_type = "dict_checker:unclear"
    for alternative in accepted:
        if alternative == OMITTED:
            continue
        mismatch = _dict_mismatch(value, alternative)
        if mismatch is None:
            return PASS
        error_type = mismatch
    return fail(error_type, f"Invalid dict for {param!r}: {value!r}; expected one of {accepted}.")


def _check_list_of_dicts(param: str, value: list, accepted: list) -> AstResult:
    result = fail("list_dict_checker:unclear", f"No accepted list of dicts for {param!r}.")
    for alternative in accepted:
        if len(value) != len(alternative):
            result = fail("value_error:list_dict_count",
                          f"Wrong number of dicts in {param!r}: {len(value)}.")
            continue
        for item, item_alternative in zip(value, alternative):
            result = _check_dict(param, item, [item_alternative])
            if not result.valid:
                break
        else:
            return PASS
    return result


# --- one parameter ------------------------------------------------------------------------
def check_value(param: str, value: Any, schema: dict, accepted: list) -> AstResult:
    """Check one produced argument against its schema and its accepted values."""
    type_name = checker_type(schema)
    expected = PYTHON_TYPES[type_name]
    element_type = None
    if type_name in NESTED_CHECKED and isinstance(schema.get("items"), dict):
        element_type = PYTHON_TYPES[checker_type(schema["items"])]
    if type_name == "float" and type(value) is int:
        value = float(value)  # Python would convert an int where a float is expected

    verdict = _check_type(param, value, accepted, expected, element_type, type_name)
    if not verdict.result.valid:
        return verdict.result
    if not verdict.is_variable:
        if expected is dict:
            return _check_dict(param, value, accepted)
        if expected is list and element_type is dict:
            return _check_list_of_dicts(param, value, accepted)
        if expected is str:
            return _check_string(param, value, accepted)
        if expected is list:
            return _check_list(param, value, accepted)
    if value in accepted:
        return PASS
    return fail("value_error:others",
                f"Invalid value for {param!r}: {value!r}; expected one of {accepted}.")
