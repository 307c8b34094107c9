"""tooldiff: find, prove and control the features an RL fine-tune adds for tool calling.

Pipeline (one subpackage per stage):
organism -> activations -> crosscoder -> features -> interventions -> evaluation
-> experiment -> report -> serve, plus cli.
"""

__version__ = "0.1.0"
