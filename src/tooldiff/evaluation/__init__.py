"""Tool-call scoring: parsers -> BFCL-AST checker -> rewards, metrics and bootstrap CIs.

Used by the RL reward, the experiments, the bench runner and the server alike; imports no
torch. The semantics, and where they differ from the official checker on purpose, are in
docs/scoring.md.
"""

from tooldiff.evaluation.ast_check import AST_CATEGORIES, check_ast
from tooldiff.evaluation.ast_values import AstResult, standardize
from tooldiff.evaluation.batch import ScoreReport, score_example, score_outputs, summarize_rows
from tooldiff.evaluation.bfcl_data import bfcl_categories, load_bfcl, load_bfcl_raw
from tooldiff.evaluation.metrics import lenient_correct, tool_productivity, trigger_metrics
from tooldiff.evaluation.parsing import FORMATS, ParsedOutput, parse_calls
from tooldiff.evaluation.reward import RewardResult, gold_to_calls, toolrl_reward
from tooldiff.evaluation.schema import bfcl_function_to_openai_tool
from tooldiff.evaluation.stats import bootstrap_ci, paired_test

__all__ = [
    "AST_CATEGORIES", "AstResult", "FORMATS", "ParsedOutput", "RewardResult", "ScoreReport",
    "bfcl_categories", "bfcl_function_to_openai_tool", "bootstrap_ci", "check_ast",
    "gold_to_calls", "lenient_correct", "load_bfcl", "load_bfcl_raw", "paired_test",
    "parse_calls", "score_example", "score_outputs", "standardize", "summarize_rows",
    "tool_productivity", "toolrl_reward", "trigger_metrics",
]
