import pytest

from ncrepro.verdicts import VERDICTS, Verdict, score, tally


def _chapters(**over):
    chapters = {
        "theory": {"theory_worst_rel": 3e-12, "theory_problem": "K = 10", "fl_convex_k_g3": 17},
        "landscape": {"strict_saddles_found": 5, "n_distinct_critical": 9, "starts_total": 432,
                      "starts_worst_gap": 1e-12,
                      "window_evidence": {"K": 30, "c0": 1.184, "window": (1.1804, 1.1956), "starts_per_solver": 36,
                                          "stuck": {"ncrepro": 22, "scipy": 18}, "window_18": (1.20144, 1.20152),
                                          "window_100": (1.0947, 1.1635),
                                          "recipe_c0": {"batch sum": 0.0082, "batch mean": 1.05}}},
        "ufm-experiments": {"n_runs_speed": 3, "ls_ce_nc2_times": "seed 0: 100 against 140"},
        "real-networks": {
            "tpt_evidence": {"runs": 16, "fitted": 16, "scale": "ResNet18", "nc1_drop_min": 40.0,
                             "networks": "ResNet18 at widths 1/8 (3 seeds) and 1/4 (1 seed), CIFAR-10, CPU",
                             "spread_networks": "ResNet18 at width 1/8 (3 seeds), CIFAR-10, CPU",
                             "nc1_order": "MSE < CE", "nc2_above_random": [], "nc3_above_random": [],
                             "losses": 4, "seed_noise_dof": 8,
                             "spreads": {"0.125": {"spread": 1.2, "se": 0.5, "needs": 1.6, "finding": "within noise"}},
                             "spread_change": None},
            "ls_ce_timing": {"networks": "ResNet18 at widths 1/8 (3 seeds) and 1/4 (1 seed), CIFAR-10, CPU",
                             "threshold": 1.0, "settings": 4, "ls_first": 4, "ties": 0, "ce_first": 0,
                             "early_ls_lower": 4}},
        "equivalence": {"eq_evidence": {"networks": "ResNet18 at width 1/8 (3 seeds), CIFAR-10, CPU",
                                        "geometry": "as close as seeds", "agreement": "as close as seeds"}},
    }
    for chapter, values in over.items():
        chapters[chapter] = {**chapters[chapter], **values}
    return chapters


def test_every_rule_reads_the_chapters_and_can_reach_each_outcome():
    verdicts = score(_chapters())
    assert [v.verdict for v in verdicts] == ["reproduced", "reproduced", "partly", "reproduced",
                                             "not tested at this scale", "reproduced", "reproduced"]
    assert tally(verdicts) == "5 reproduced, 1 partly, 1 not tested at this scale"
    assert all(v.evidence and v.rule and v.chapter for v in verdicts)
    # The grid names the networks a real-network verdict rests on, seeds included.
    # Each names only the networks its rule reads: the spread only widths with two losses, the
    # LS-against-CE timing only (width, seed) settings with both.
    assert verdicts[3].scale == "ResNet18 at widths 1/8 (3 seeds) and 1/4 (1 seed), CIFAR-10, CPU"
    assert verdicts[4].scale == verdicts[5].scale == "ResNet18 at width 1/8 (3 seeds), CIFAR-10, CPU"
    assert verdicts[6].scale.startswith("UFM, K = 4; ResNet18 at widths 1/8 (3 seeds)")
    # The same rules turn on the evidence: a solver gap, an unfitted or uncollapsed run, losses
    # further apart than seeds, mixed real-network timing.
    bad = score(_chapters(
        theory={"theory_worst_rel": 1e-3},
        landscape={"strict_saddles_found": 0},
        **{"real-networks": {"tpt_evidence": {**_chapters()["real-networks"]["tpt_evidence"],
                                              "fitted": 15,
                                              "unfitted": ["MSE at width 1/8 with seed 0"],
                                              "nc2_above_random": ["FL at width 1/4 with seed 0",
                                                                   "FL at width 1/8 with seed 1"]},
                             "ls_ce_timing": {"networks": "s", "threshold": 1.0, "settings": 4, "ls_first": 2,
                                              "ties": 2, "ce_first": 0, "early_ls_lower": 1}}},
        equivalence={"eq_evidence": {"networks": "s", "geometry": "further apart than seeds",
                                     "agreement": "as close as seeds"}},
    ))
    assert [v.verdict for v in bad] == ["contradicted", "partly", "partly", "partly", "not tested at this scale",
                                        "not tested at this scale", "partly"]
    assert "further apart than seeds" in bad[5].evidence and "2 of 4 settings" not in bad[6].evidence
    assert "15 of 16 terminal-phase runs end fitted (not: MSE at width 1/8 with seed 0). NC1 falls" in bad[3].evidence
    assert ("NC2 ends above the value of random geometry at the same dimension in 2 runs (FL at width 1/4 "
            "with seed 0 and FL at width 1/8 with seed 1); NC3 ends below it in every run.") in bad[3].evidence
    # LS ahead in some settings and tied in the rest agrees in part.
    assert "Real networks agree in part" in bad[6].evidence


@pytest.mark.parametrize(("ls_first", "ties", "ce_first", "stand"), [
    (4, 0, 0, "agree"), (2, 2, 0, "agree in part"), (0, 4, 0, "do not separate the two"), (2, 1, 1, "are mixed"),
    (0, 2, 2, "do not show it"),
])
def test_real_network_timing_is_described_by_how_ls_and_ce_stand(ls_first, ties, ce_first, stand):
    timing = {"networks": "s", "threshold": 1.0, "settings": 4, "ls_first": ls_first, "ties": ties,
              "ce_first": ce_first, "early_ls_lower": 0}
    v = score(_chapters(**{"real-networks": {"ls_ce_timing": timing}}))[6]
    assert f"Real networks {stand}:" in v.evidence
    assert v.verdict == ("reproduced" if stand == "agree" else "partly")


def test_missing_evidence_is_named_and_unknown_verdicts_refused():
    chapters = _chapters()
    del chapters["landscape"]["window_evidence"]
    with pytest.raises(ValueError, match="landscape chapter recorded no window_evidence"):
        score(chapters)
    with pytest.raises(ValueError, match="unknown verdict"):
        Verdict("c", "maybe", "s", "theory", "e", "r")
    assert VERDICTS[0] == "reproduced"


def test_no_results_yet_reads_as_not_tested():
    empty = {"runs": 0, "fitted": 0, "scale": "no terminal-phase run yet", "networks": "no terminal-phase run yet",
             "spread_networks": "no width with every loss finished yet",
             "nc1_drop_min": 0.0, "nc1_order": "none", "nc2_above_random": [], "nc3_above_random": [], "losses": 0,
             "seed_noise_dof": 0, "spreads": {}, "spread_change": None}
    verdicts = score(_chapters(**{"real-networks": {"tpt_evidence": empty, "ls_ce_timing": {
        "networks": "no width with both CE and LS finished yet", "threshold": 1.0, "settings": 0, "ls_first": 0,
        "ties": 0, "ce_first": 0, "early_ls_lower": 0}}},
        equivalence={"eq_evidence": {"networks": "none", "geometry": None, "agreement": None}}))
    assert verdicts[3].verdict == "not tested at this scale" and verdicts[5].verdict == "not tested at this scale"
    assert verdicts[5].evidence.endswith(": there are not yet two seeds of one loss to compare with.")
    assert "No real-network setting" in verdicts[6].evidence and verdicts[6].verdict == "partly"
    # The chapter's reason, when it gives one, is the scorecard's.
    patchy = score(_chapters(equivalence={"eq_evidence": {
        "networks": "n", "geometry": None, "agreement": None,
        "no_comparison": "no seed has a network of every loss yet, and only such seeds make comparable units"}}))[5]
    assert patchy.evidence.endswith("the yardstick of every comparison between losses: no seed has a network of "
                                    "every loss yet, and only such seeds make comparable units.")


def test_collapse_that_has_begun_is_partly_not_contradicted():
    """NC1 falling fivefold in a fitted run is collapse under way (partly), not a contradiction;
    NC1 that does not fall at all would be."""
    one = {"runs": 1, "fitted": 1, "scale": "s", "networks": "s", "spread_networks": "s",
           "nc1_drop_min": 5.0, "nc1_order": "none", "nc2_above_random": [],
           "nc3_above_random": [], "losses": 1, "seed_noise_dof": 0, "spreads": {}, "spread_change": None}
    assert score(_chapters(**{"real-networks": {"tpt_evidence": one}}))[3].verdict == "partly"
    flat = dict(one, nc1_drop_min=0.8)
    assert score(_chapters(**{"real-networks": {"tpt_evidence": flat}}))[3].verdict == "contradicted"
    assert all(v.short and len(v.short) < 40 for v in score(_chapters()))


def test_collapse_names_the_runs_that_end_like_random_geometry():
    """Runs whose NC2 or NC3 ends above random geometry keep the verdict from "reproduced", and
    the evidence names them so a reader can find them in the chapter's table."""
    good = _chapters()["real-networks"]["tpt_evidence"]
    assert "NC2 and NC3 end below the values of random geometry in every run." in score(_chapters())[3].evidence
    both = {**good, "nc2_above_random": ["FL at width 1/4 with seed 0"],
            "nc3_above_random": ["CE at width 1/8 with seed 0", "FL at width 1/8 with seed 2"]}
    v = score(_chapters(**{"real-networks": {"tpt_evidence": both}}))[3]
    assert v.verdict == "partly"
    assert v.evidence.endswith("NC2 ends above the value of random geometry at the same dimension in 1 run (FL at "
                               "width 1/4 with seed 0), and NC3 in 2 runs (CE at width 1/8 with seed 0 and FL at "
                               "width 1/8 with seed 2).")


def test_one_pair_of_seeds_is_not_read_as_different_features():
    from ncrepro.comparison import NOT_YET_COMPARABLE

    verdicts = score(_chapters(equivalence={"eq_evidence": {"networks": "5 networks", "geometry": NOT_YET_COMPARABLE,
                                                            "agreement": NOT_YET_COMPARABLE}}))
    assert verdicts[5].verdict == "not tested at this scale"
    assert "noise level" in verdicts[5].evidence and "the same features" not in verdicts[5].evidence
    assert verdicts[5].evidence == ("Networks of different losses cannot yet be judged against networks of one "
                                    "loss from different seeds in their class-mean geometry and test predictions: "
                                    "each side needs two independent units (seeds at which every loss has a "
                                    "network; losses with two or more seeds) for a noise level to judge a "
                                    "difference by, and one side has one; the comparison waits for more seeds.")
    mixed = score(_chapters(equivalence={"eq_evidence": {"networks": "5 networks", "geometry": NOT_YET_COMPARABLE,
                                                         "agreement": "as close as seeds"}}))[5]
    assert mixed.verdict == "not tested at this scale"
    assert mixed.evidence.endswith("not yet judged in their class-mean geometry and as close as seeds in their "
                                   "test predictions. Each side needs two independent units (seeds at which every "
                                   "loss has a network; losses with two or more seeds) for a noise level to judge "
                                   "a difference by, and one side has one; the comparison waits for more seeds.")


def test_a_partial_spread_says_how_many_losses_and_which_noise():
    partial = {**_chapters()["real-networks"]["tpt_evidence"], "losses": 3, "seed_noise_dof": 0}
    v = score(_chapters(**{"real-networks": {"tpt_evidence": partial}}))[4]
    assert "the 3 losses finished so far" in v.evidence and "four" not in v.evidence
    assert "test noise alone" in v.evidence
    full = score(_chapters())[4]
    assert "across the four losses" in full.evidence
    assert "± standard error with seed noise on 8 degrees of freedom, and test noise)" in full.evidence


def test_a_change_of_spread_is_printed_with_its_sign_and_noise():
    shrinking = {**_chapters()["real-networks"]["tpt_evidence"],
                 "spreads": {"1/8": {"spread": 0.49, "se": 0.59, "needs": 1.9, "finding": "within noise"},
                             "1/4": {"spread": 0.36, "se": 0.56, "needs": 1.8, "finding": "within noise"}},
                 "spread_change": {"from": "1/8", "to": "1/4", "delta": -0.13, "se": 0.81,
                                   "direction": "within noise"}}
    v = score(_chapters(**{"real-networks": {"tpt_evidence": shrinking}}))[4]
    assert "From width 1/8 to 1/4 it changes by \u22120.13 ± 0.81 points: within noise." in v.evidence
    assert v.verdict == "not tested at this scale"


def test_features_apart_in_one_measure_say_which():
    verdicts = score(_chapters(equivalence={"eq_evidence": {"networks": "7 networks",
                                                            "geometry": "further apart than seeds",
                                                            "agreement": "as close as seeds"}}))
    v = verdicts[5]
    assert v.verdict == "not tested at this scale"
    assert v.evidence == ("Against networks of one loss from different seeds, networks of different losses are "
                          "further apart than seeds in their class-mean geometry and as close as seeds in their "
                          "test predictions. At this scale the losses differ by more than seeds do in their "
                          "class-mean geometry, so these networks do not yet learn the same features; the claim "
                          "is about larger networks.")
    alike = score(_chapters(equivalence={"eq_evidence": {"networks": "7 networks", "geometry": "as close as seeds",
                                                         "agreement": "as close as seeds"}}))[5]
    assert alike.verdict == "reproduced" and "the same features" not in alike.evidence


def test_no_difference_without_shown_closeness_is_not_equivalence():
    """Two verdicts of "no trend" with too few units to clear the equivalence margin: the claim
    stays untested, and the evidence says why instead of calling the losses apart."""
    from ncrepro.comparison import NOT_SHOWN_CLOSE

    v = score(_chapters(equivalence={"eq_evidence": {"networks": "8 networks", "geometry": NOT_SHOWN_CLOSE,
                                                     "agreement": "as close as seeds"}}))[5]
    assert v.verdict == "not tested at this scale"
    assert "differ by more than seeds" not in v.evidence
    assert v.evidence.endswith("In their class-mean geometry no difference from seeds is found, but too few "
                               "independent units to show the losses less than 1.25 times as far apart as seeds, the "
                               "margin that \"as close as seeds\" has to clear; the comparison waits for more seeds.")
    assert "less than 1.25 times as far apart by a one-sided test" in v.rule
    closer = score(_chapters(equivalence={"eq_evidence": {"networks": "8 networks", "geometry": "closer than seeds",
                                                          "agreement": "as close as seeds"}}))[5]
    assert closer.verdict == "reproduced"


def test_the_float32_set_counts_once_it_judges_a_measure():
    from ncrepro.comparison import NOT_YET_COMPARABLE

    waiting = {"networks": "bf16 set", "geometry": NOT_YET_COMPARABLE, "agreement": NOT_YET_COMPARABLE}
    # A control that judges nothing yet leaves the row as the terminal-phase set has it.
    unjudged = {"networks": "fp32 set", "geometry": NOT_YET_COMPARABLE, "agreement": None}
    alone = score(_chapters(equivalence={"eq_evidence": waiting}))[5]
    both = score(_chapters(equivalence={"eq_evidence": waiting, "eq_control_evidence": unjudged}))[5]
    assert both == alone and "float32" not in both.evidence
    # A judged control is read beside the set, with its own scale; losses further apart than seeds
    # in either set keep the claim untested.
    apart = {"networks": "fp32 set", "geometry": "further apart than seeds", "agreement": "as close as seeds"}
    v = score(_chapters(equivalence={"eq_evidence": waiting, "eq_control_evidence": apart}))[5]
    assert v.verdict == "not tested at this scale" and v.scale == "bf16 set; float32 set: fp32 set"
    assert v.evidence.startswith("Terminal-phase set (bfloat16 training): Networks of different losses cannot yet")
    assert "The float32 set (fp32 set): Against networks of one loss from different seeds" in v.evidence
    assert "differ by more than seeds do in their class-mean geometry" in v.evidence
    close = {"networks": "fp32 set", "geometry": "as close as seeds", "agreement": "closer than seeds"}
    assert score(_chapters(equivalence={"eq_evidence": waiting, "eq_control_evidence": close}))[5].verdict == \
        "reproduced"
    apart_main = {"networks": "bf16 set", "geometry": "as close as seeds", "agreement": "further apart than seeds"}
    assert score(_chapters(equivalence={"eq_evidence": apart_main, "eq_control_evidence": close}))[5].verdict == \
        "not tested at this scale"


def test_equal_accuracy_reads_the_float32_set_once_it_has_a_spread():
    control = {**_chapters()["real-networks"]["tpt_evidence"], "spread_networks": "fp32 set", "seed_noise_dof": 4,
               "spreads": {"1/8": {"spread": 0.56, "se": 0.66, "needs": 2.1, "finding": "within noise"}}}
    v = score(_chapters(**{"real-networks": {"fp32_evidence": control}}))[4]
    assert v.scale == "ResNet18 at width 1/8 (3 seeds), CIFAR-10, CPU; float32 set: fp32 set"
    assert ("The float32 set (fp32 set): spread of final test accuracy across the four losses (best minus "
            "worst, ± standard error with seed noise on 4 degrees of freedom, and test noise): 0.56 ± 0.66 points "
            "at width 1/8 (within noise: a trend needs more than 2.10 points).") in v.evidence
    assert v.verdict == "not tested at this scale"
    # A control without a spread yet (no width with every loss) leaves the row as it was.
    empty = score(_chapters(**{"real-networks": {"fp32_evidence": {**control, "spreads": {}}}}))[4]
    assert empty == score(_chapters())[4]


def test_a_spread_beyond_noise_says_the_losses_differ():
    beyond = {**_chapters()["real-networks"]["tpt_evidence"],
              "spreads": {"1/8": {"spread": 2.4, "se": 0.5, "needs": 1.3, "finding": "the losses differ"}}}
    v = score(_chapters(**{"real-networks": {"tpt_evidence": beyond}}))[4]
    assert "2.40 ± 0.50 points at width 1/8 (the losses differ: a trend needs more than 1.30 points)" in v.evidence
    assert v.verdict == "not tested at this scale"  # the claim is about networks of the paper's size
