"""The one exception type for user errors.

Anything raised as `UserError` is printed by the CLI as a single line and exits non-zero;
every other exception is a bug and keeps its traceback.
"""


class UserError(Exception):
    """A problem with the user's input (config, file, model pair, request), not a bug."""
