"""The claims table's verdict rules on hand-made numbers: every verdict is reachable."""

from tooldiff.report.claims import Claim, Context, Measured, judge

STEER_UP = Claim("steer_up", "one latent steered up raises tool correctness", "+65 pp", sign=+1, paper_effect=0.65,
                 needs=("positive_control", "headroom"))
BRAKE = Claim("brake", "the call-trigger latent is a brake", "(ours)", sign=-1)
OK = Context(positive_control_passed=True, baseline=0.25)


def m(seed, diff, lo, hi, beats=True, rival=None, null=None, null_ci=None):
    return Measured(seed, diff, (lo, hi), 200, beats, rival, null, null_ci)


def test_reproduced_when_it_holds_everywhere_and_beats_rival_and_null():
    v = judge(STEER_UP, [m(s, 0.4, 0.3, 0.5, rival=0.1, null=0.0, null_ci=(-0.05, 0.05)) for s in range(3)], OK)
    assert v.verdict == "reproduced" and v.robust and v.label() == "reproduced (3 of 3 organism seeds)"


def test_reproduced_at_most_seeds_is_not_robust():
    seeds = [m(0, 0.4, 0.3, 0.5), m(1, 0.4, 0.3, 0.5), m(2, 0.05, -0.05, 0.15)]
    v = judge(STEER_UP, seeds, OK)
    assert v.verdict == "reproduced" and not v.robust and v.holds_at == 2


def test_no_better_than_the_rival():
    v = judge(STEER_UP, [m(s, 0.4, 0.3, 0.5, rival=0.45) for s in range(3)], OK)
    assert v.verdict == "reproduced but no better than the rival or the null"


def test_no_better_than_the_null():
    v = judge(BRAKE, [m(s, -0.3, -0.4, -0.2, null=-0.2, null_ci=(-0.3, -0.1)) for s in range(3)], Context())
    assert v.verdict == "reproduced but no better than the rival or the null"


def test_not_reproduced_when_the_ci_holds_zero_or_the_controls_do_as_well():
    assert judge(STEER_UP, [m(s, 0.02, -0.03, 0.07) for s in range(3)], OK).verdict == "not reproduced"
    assert judge(STEER_UP, [m(s, 0.3, 0.2, 0.4, beats=False) for s in range(3)], OK).verdict == "not reproduced"
    assert judge(BRAKE, [m(s, 0.3, 0.2, 0.4) for s in range(3)], Context()).verdict == "not reproduced"  # wrong sign
    half = [m(0, 0.4, 0.3, 0.5), m(1, 0.0, -0.1, 0.1)]
    assert judge(STEER_UP, half, OK).verdict == "not reproduced"  # 1 of 2 is not most


def test_not_testable_without_headroom_positive_control_or_measurement():
    at_ceiling = judge(STEER_UP, [m(0, 0.0, -0.01, 0.01)], Context(True, baseline=0.96))
    assert at_ceiling.verdict == "not testable here" and "4 pp of room" in at_ceiling.label()
    no_control = judge(STEER_UP, [m(0, 0.4, 0.3, 0.5)], Context(False, baseline=0.2))
    assert no_control.verdict == "not testable here" and "failed" in no_control.reason
    assert "did not run" in judge(STEER_UP, [m(0, 0.4, 0.3, 0.5)], Context(None, 0.2)).reason
    assert judge(BRAKE, [], Context()).reason == "not measured in this run"


def test_the_claims_table_reads_one_pre_registered_condition_per_claim_and_seed(tmp_path):
    """From the committed demo run: the crosscoder is chosen by name among the validated kind, not
    by its effect; a null pair's result is matched by organism seed; verdicts follow the rules."""
    from pathlib import Path

    from tooldiff.report.claims_table import CLAIMS, chosen_crosscoder, claims_table, write_claims
    from tooldiff.report.results import read_results

    demo = Path(__file__).resolve().parents[1] / "docs" / "results" / "demo" / "results.json"
    run = read_results(demo)
    assert chosen_crosscoder(run) == sorted(n for n in run.crosscoders if n.startswith("dfc"))[0]
    rows = {r.spec.claim.key: r for r in claims_table([run], [run])}  # the run as its own "null"
    assert set(rows) == {spec.claim.key for spec in CLAIMS}
    for row in rows.values():
        m = row.measured[0]
        assert m.null_diff == m.diff and m.seed == 0 and m.n == run.n_test
    rl_strict = run.models["rl"].strict.mean
    steer = rows["steer_up"].verdict
    assert (steer.verdict == "not testable here") == (1 - rl_strict < 0.65 / 2)
    table = write_claims([demo], [], tmp_path / "claims.md").read_text()
    assert table.count("\n| ") == len(CLAIMS) + 1 and "organism seeds 0" in table


def test_a_headroom_twin_is_judged_on_the_real_runs_crosscoder_without_the_room_rule():
    """The demo's run standing in for a headroom twin (steered and transfer): the headroom rows
    read the same conditions as the final-twin rows, and the room rule, which can make the
    final twin's steering claim untestable, does not apply to a twin chosen for its room."""
    from pathlib import Path

    from tooldiff.report.claims_table import CLAIMS, HEADROOM_CLAIMS, claims_table
    from tooldiff.report.results import read_results

    run = read_results(Path(__file__).resolve().parents[1] / "docs" / "results" / "demo" / "results.json")
    rows = {r.spec.claim.key: r for r in claims_table([run], [], [(run, run)])}
    assert list(rows) == [s.claim.key for s in CLAIMS + HEADROOM_CLAIMS]
    for final, twin in (("steer_up", "steer_up_headroom"), ("transfer", "transfer_headroom")):
        assert rows[twin].measured == rows[final].measured and rows[twin].measured
    assert rows["steer_up_headroom"].verdict.verdict != "not testable here"
    assert rows["steer_up_headroom"].verdict.verdict == "not reproduced" or rows["steer_up"].measured[0].holds(+1)


def test_every_report_judges_the_claims_on_its_own_run(tmp_path):
    """results.json carries the claims judged on the run alone; report.md shows them; the
    committed demo's entries are what the rules give on its numbers."""
    from pathlib import Path

    from tooldiff.report.claims_table import CLAIMS, claim_entries
    from tooldiff.report.markdown import claims_lines
    from tooldiff.report.results import read_results

    demo = read_results(Path(__file__).resolve().parents[1] / "docs" / "results" / "demo" / "results.json")
    assert [c.to_dict() for c in demo.claims] == claim_entries(demo)
    assert [c.key for c in demo.claims] == [spec.claim.key for spec in CLAIMS]
    for c in demo.claims:
        assert c.seed == 0 and c.n == demo.n_test and c.label.startswith(c.verdict)
    lines = claims_lines(demo)
    assert sum(line.startswith("| ") for line in lines) == len(CLAIMS) + 1
    assert claims_lines(demo.with_facts(claims=[])) == ["Not judged in this run."]
