"""The feature-ranking picture: Cohen's d (should-call vs no-call) against Δ, by latent group."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLORS = {"a_excl": "tab:red", "shared": "tab:gray", "b_excl": "tab:blue"}


def plot_d_vs_delta(ranking: dict, path: Path, title: str = "") -> Path:
    fig, axes = plt.subplots(1, 2 if "paper_d" in ranking["latents"][0] else 1, figsize=(10, 4), squeeze=False)
    panels = [("strict_d", "Cohen's d, should-call vs no-call (calibration)")]
    if axes.shape[1] == 2:
        panels.append(("paper_d", "Cohen's d, tool prompts vs generic text (paper)"))
    for ax, (key, label) in zip(axes[0], panels):
        for group, color in COLORS.items():
            rows = [r for r in ranking["latents"] if r["group"] == group]
            ax.scatter([r["delta"] for r in rows], [r[key] for r in rows], s=8, alpha=0.6,
                       color=color, label=f"{group} ({len(rows)})")
        dominant = [r for r in ranking["latents"] if r["rl_dominant"]]
        ax.scatter([r["delta"] for r in dominant], [r[key] for r in dominant], s=30,
                   facecolors="none", edgecolors="black", label="shared, >80% RL norm")
        ax.set_xlabel("Δ relative decoder norm (0 = RL only, 1 = base only)")
        ax.set_ylabel(label)
        ax.axhline(0, color="black", lw=0.5)
        ax.legend(fontsize=7)
    fig.suptitle(title or "Tool-feature candidates")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
