"""BFCL-AST checking of a list of produced calls against a BFCL possible answer.

Categories follow BFCL's routing: "irrelevance" passes when no call is made; "parallel*" matches
calls to gold calls in any order (greedy, first fit, as the official checker does) with equal
counts; "multiple" checks the one call against the gold function; "simple" checks the one call
against the first offered function. "auto" picks one of these from the gold answer.
"""

from __future__ import annotations

from collections.abc import Sequence

from tooldiff.errors import UserError
from tooldiff.evaluation.ast_values import OMITTED, PASS, AstResult, check_value, fail
from tooldiff.evaluation.schema import FunctionDoc, function_doc

AST_CATEGORIES = (
    "simple", "simple_python", "multiple", "parallel", "parallel_multiple", "irrelevance",
    "live_simple", "live_multiple", "live_parallel", "live_parallel_multiple", "live_irrelevance",
    "auto",
)


def resolve_category(category: str, gold: Sequence[dict], tools: Sequence[dict]) -> str:
    """Map "auto" to a concrete category: no gold call -> irrelevance, one -> simple when a
    single tool is offered else multiple, several -> parallel."""
    if category not in AST_CATEGORIES:
        raise UserError(f"unknown AST category {category!r}; valid: {', '.join(AST_CATEGORIES)}")
    if category != "auto":
        return category
    if not gold:
        return "irrelevance"
    if len(gold) == 1:
        return "simple" if len(tools) == 1 else "multiple"
    return "parallel"


def _as_call_pair(call: dict) -> tuple[str, dict] | None:
    name, arguments = call.get("name"), call.get("arguments", {})
    if not isinstance(name, str) or not isinstance(arguments, dict):
        return None
    return name, arguments


def _gold_entry(gold_call: dict) -> tuple[str, dict[str, list]]:
    (name, accepted), = gold_call.items()
    return name, accepted


def check_call(doc: FunctionDoc, name: str, arguments: dict,
               accepted: dict[str, list]) -> AstResult:
    """One produced call against one function doc and its accepted parameter values."""
    if name != doc.name:
        return fail("simple_function_checker:wrong_func_name",
                    f"Function name {doc.name!r} not found in the output (got {name!r}).")
    for param in doc.required:
        if param not in arguments:
            return fail("simple_function_checker:missing_required",
                        f"Missing required parameter {param!r}.")
    for param, value in arguments.items():
        if param not in doc.properties or param not in accepted:
            return fail("simple_function_checker:unexpected_param",
                        f"Unexpected parameter {param!r}.")
        result = check_value(param, value, doc.properties[param], accepted[param])
        if not result.valid:
            return result
    for param, values in accepted.items():
        if param not in arguments and OMITTED not in values:
            return fail("simple_function_checker:missing_optional",
                        f"Parameter {param!r} left out but the answer needs it.")
    return PASS


def _find_doc(docs: list[FunctionDoc], name: str) -> FunctionDoc:
    for doc in docs:
        if doc.name == name:
            return doc
    raise UserError(f"gold call {name!r} names a function that is not among the offered tools")


def _check_unordered(pairs, gold, docs) -> AstResult:
    if len(pairs) != len(gold):
        return fail("parallel_function_checker_no_order:wrong_count",
                    f"Wrong number of functions: {len(pairs)} for {len(gold)} expected.")
    used: set[int] = set()
    for gold_index, gold_call in enumerate(gold):
        gold_name, accepted = _gold_entry(gold_call)
        doc = _find_doc(docs, gold_name)
        match = next((i for i, (name, arguments) in enumerate(pairs)
                      if i not in used and check_call(doc, name, arguments, accepted).valid), None)
        if match is None:
            return fail("parallel_function_checker_no_order:cannot_find_match",
                        f"No produced call matches gold call {gold_index} ({gold_name!r}).")
        used.add(match)
    return PASS


def _check_multiple(pairs, gold, docs) -> AstResult:
    if len(pairs) != len(gold):
        return fail("multiple_function_checker:wrong_count",
                    f"Wrong number of functions: {len(pairs)} for {len(gold)} expected.")
    if not gold:
        raise UserError("a 'multiple' example needs one gold call")
    gold_name, accepted = _gold_entry(gold[0])
    return check_call(_find_doc(docs, gold_name), *pairs[0], accepted)


def _check_simple(pairs, gold, docs) -> AstResult:
    if len(pairs) != 1:
        return fail("simple_function_checker:wrong_count",
                    f"Wrong number of functions: {len(pairs)} for 1 expected.")
    if not gold or not docs:
        raise UserError("a 'simple' example needs one gold call and at least one offered tool")
    _, accepted = _gold_entry(gold[0])
    return check_call(docs[0], *pairs[0], accepted)


def check_ast(calls: Sequence[dict], gold: Sequence[dict], tools: Sequence[dict],
              category: str = "auto") -> AstResult:
    """Check canonical calls `{"name", "arguments"}` against a BFCL possible answer.

    `tools` may be OpenAI tools, bare OpenAI functions or BFCL function docs.
    """
    category = resolve_category(category, gold, tools)
    if "irrelevance" in category:
        if calls:
            return fail("irrelevance_error:decoder_success",
                        f"Made {len(calls)} call(s) where none was wanted.")
        return PASS
    pairs = [_as_call_pair(call) for call in calls]
    if any(pair is None for pair in pairs):
        return fail("ast_decoder:decoder_wrong_output_format",
                    "A call lacks a string name or a dict of arguments.")
    docs = [function_doc(tool) for tool in tools]
    if "parallel" in category:
        return _check_unordered(pairs, gold, docs)
    if "multiple" in category:
        return _check_multiple(pairs, gold, docs)
    return _check_simple(pairs, gold, docs)
