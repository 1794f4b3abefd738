"""The scorecard's verdicts: one rule per claim of the paper, applied to the values the chapters
recorded (:func:`ncrepro.report.read_glued`), so that a verdict is computed, tested, and cannot
drift from the evidence.

Each rule is a function of the chapters' glued values that returns a :class:`Verdict`: the
claim in a short phrase, the verdict (one of :data:`VERDICTS`), the scale it was measured at,
the chapter with the evidence, an evidence paragraph (Markdown; symbols in Unicode, since glued
Markdown is not typeset as maths) whose every
number comes from those values, and the rule itself in one sentence. :func:`score` applies them
all.
"""

from __future__ import annotations

from dataclasses import dataclass

from .comparison import (
    CLOSE_VERDICTS,
    EQUIVALENCE_FACTOR,
    FURTHER_APART,
    MEASURE_NAMES,
    NOT_SHOWN_CLOSE,
    NOT_YET_COMPARABLE,
    is_judged,
)
from .prose import count, join_list, signed
from .terminal_phase import losses_text

__all__ = ["VERDICTS", "Verdict", "score", "tally", "RULES"]

#: From strongest to weakest support.
VERDICTS = ("reproduced", "partly", "not tested at this scale", "contradicted")


@dataclass(frozen=True)
class Verdict:
    """One claim's verdict: ``claim`` in full, ``short`` in a few words (the scorecard's grid),
    ``scale`` in a few words, and the ``evidence`` and ``rule`` as sentences."""

    claim: str
    verdict: str
    scale: str
    chapter: str
    evidence: str
    rule: str
    short: str = ""

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {self.verdict!r}; choose one of {VERDICTS}")


def _need(values: dict, chapter: str, *keys: str) -> list:
    missing = [k for k in keys if k not in values]
    if missing:
        raise ValueError(f"the {chapter} chapter recorded no {', '.join(missing)}; execute it again "
                         f"(`make book`)")
    return [values[k] for k in keys]


def global_optimum(theory: dict) -> Verdict:
    worst, problem, convex_k = _need(theory, "theory", "theory_worst_rel", "theory_problem", "fl_convex_k_g3")
    ok = worst < 1e-7
    return Verdict(
        claim="Every global minimiser of the UFM is neural collapse (CE, LS, FL, MSE)",
        short="Global optima are neural collapse",
        verdict="reproduced" if ok else "contradicted",
        scale="UFM, K = 10",
        chapter="theory",
        evidence=(f"On the UFM with {problem}, the closed forms of the optimum match an independent solver to "
                  f"{worst:.0e} relative, with "
                  f"NC1–NC3 at zero, for all four losses. Focal loss needs a global one-dimensional search "
                  f"beyond K = {convex_k} at γ = 3, where its per-sample loss stops being convex."),
        rule="reproduced if the worst relative gap between closed form and solver is below 10⁻⁷",
    )


def ls_landscape(landscape: dict) -> Verdict:
    saddles, distinct, starts, worst = _need(landscape, "landscape", "strict_saddles_found", "n_distinct_critical",
                                             "starts_total", "starts_worst_gap")
    ok = saddles > 0 and worst < 1e-7
    return Verdict(
        claim="LS: every non-global critical point is a strict saddle",
        short="LS: no spurious minima",
        verdict="reproduced" if ok else "partly",
        scale="UFM, K = 3 and 10",
        chapter="landscape",
        evidence=(f"Unguided gradient-norm searches found {count(distinct, 'distinct critical point')} over the "
                  f"four losses; all {saddles} that are not global minima have negative curvature. All "
                  f"{starts} random starts at K = 10 reach the global minimum (worst relative gap "
                  f"{worst:.0e})."),
        rule="reproduced if non-optimal critical points were found and every one is a strict saddle, and every "
             "random start reaches the optimum",
    )


def fl_landscape(landscape: dict) -> Verdict:
    (w,) = _need(landscape, "landscape", "window_evidence")
    lo, hi = w["window"]
    stuck = w["stuck"]
    recipe = w["recipe_c0"]
    lo18, hi18 = w["window_18"]
    lo100, hi100 = w["window_100"]
    return Verdict(
        claim="FL: the landscape is benign near the optimal solutions (a local result)",
        short="FL: benign near the optimum",
        verdict="partly",
        scale="UFM, K = 18 to 100",
        chapter="landscape",
        evidence=(f"Consistent with the local statement wherever tested. Beyond it, focal loss has non-global "
                  f"local minima for K ≥ 18, in a window of c₀ just above −ℓ′(0) where CE and LS "
                  f"have none: ({lo18:.5f}, {hi18:.5f}) at K = 18, ({lo100:.4f}, {hi100:.4f}) at "
                  f"K = 100. At K = {w['K']}, c₀ = {w['c0']:.4f} (window ({lo:.4f}, {hi:.4f})), "
                  f"{stuck['ncrepro']} of {w['starts_per_solver']} starts stop above the optimum with the "
                  f"package's solver and {stuck['scipy']} with SciPy's. The paper's CIFAR-100 recipe maps to "
                  f"c₀ ≈ {recipe[next(iter(recipe))]:.3g}, far below the window. This complements the "
                  f"paper's local result; it does not reproduce its reason."),
        rule="partly: no test contradicts the local statement, and the evidence shows where the global one fails, "
             "not the local proof",
    )


def collapse_in_networks(real: dict) -> Verdict:
    (e,) = _need(real, "real-networks", "tpt_evidence")
    if not e["runs"]:
        return Verdict("Neural collapse emerges in real networks with every loss", "not tested at this scale",
                       e["networks"], "real-networks", "No terminal-phase run has finished yet.",
                       "not tested until a run reaches the terminal phase", short="Collapse in real networks")
    all_fitted = e["fitted"] == e["runs"]
    falls = e["nc1_drop_min"] > 1          # NC1 lower at the end than at the first evaluation, in every run
    strongly = e["nc1_drop_min"] >= 10
    random_like = e["nc2_above_random"] + e["nc3_above_random"]
    if all_fitted and strongly and not random_like:
        verdict = "reproduced"
    else:
        verdict = "partly" if falls else "contradicted"
    return Verdict(
        claim="Neural collapse emerges in real networks with every loss",
        short="Collapse in real networks",
        verdict=verdict,
        scale=e["networks"],
        chapter="real-networks",
        evidence=(f"Scale: {e['scale']}. {e['fitted']} of {count(e['runs'], 'terminal-phase run')} "
                  f"{'ends' if e['fitted'] == 1 else 'end'} fitted"
                  + (f" (not: {join_list(e['unfitted'])})" if e.get("unfitted") else "")
                  + ". NC1 falls in every run, "
                  f"at least {e['nc1_drop_min']:.1f}-fold from its first evaluation"
                  + (f", ordered {e['nc1_order']}" if e["nc1_order"] not in ("none", "") else "")
                  + ". " + _above_random(e["nc2_above_random"], e["nc3_above_random"])),
        rule="reproduced if every run is fitted, NC1 falls at least 10-fold and NC2 and NC3 end below random "
             "geometry; partly if NC1 falls in every run; contradicted if it does not",
    )


def _above_random(nc2: list[str], nc3: list[str]) -> str:
    """"NC2 and NC3 end below random geometry in every run", or which runs end above it."""
    if not nc2 and not nc3:
        return "NC2 and NC3 end below the values of random geometry in every run."
    above = [(k, runs) for k, runs in ((2, nc2), (3, nc3)) if runs]
    below = [k for k, runs in ((2, nc2), (3, nc3)) if not runs]
    parts = [f"{count(len(runs), 'run')} ({join_list(runs)})" for _, runs in above]
    first = f"NC{above[0][0]} ends above the value of random geometry at the same dimension in {parts[0]}"
    if len(above) == 2:
        return f"{first}, and NC{above[1][0]} in {parts[1]}."
    return f"{first}; NC{below[0]} ends below it in every run."


def _spread_reading(e: dict) -> str:
    """The spread of final test accuracy across losses of one terminal-phase set's evidence
    (:meth:`ncrepro.terminal_phase.TerminalPhaseSummary.evidence`), each number with its noise."""
    parts = [f"{x['spread']:.2f} ± {x['se']:.2f} points at width {w} ({x['finding']}: a trend needs more than "
             f"{x['needs']:.2f} points)" for w, x in (e.get("spreads") or {}).items()]
    dof = e["seed_noise_dof"]
    noise = (f"seed noise on {count(dof, 'degree')} of freedom, and test noise" if dof else
             "test noise alone: no seed spread is measured yet, so it understates the noise")
    text = (f"Spread of final test accuracy across {losses_text(e['losses'])} (best minus worst, ± standard error "
            f"with {noise}): {join_list(parts) if parts else 'none yet'}.")
    change = e.get("spread_change")
    if change:
        text += (f" From width {change['from']} to {change['to']} it changes by {signed(change['delta'])} ± "
                 f"{change['se']:.2f} points: {change['direction']}.")
    return text


def equal_accuracy(real: dict) -> Verdict:
    """The terminal-phase set's spread of test accuracy across losses, and the float32 set's
    (``fp32_evidence``) once that has a spread: never more than "not tested at this scale", since
    the claim is about networks of the paper's size."""
    (e,) = _need(real, "real-networks", "tpt_evidence")
    evidence = f"Scale: {e['scale']}. {_spread_reading(e)}"
    scale = e["spread_networks"]
    control = real.get("fp32_evidence")
    if control and control.get("spreads"):
        reading = _spread_reading(control)
        evidence += f" The float32 set ({control['spread_networks']}): {reading[0].lower()}{reading[1:]}"
        scale = f"{scale}; float32 set: {control['spread_networks']}"
    evidence += (" The claim is about networks large enough to fit and generalise alike; these are far smaller "
                 "than the paper's, so no spread here can confirm or refute it.")
    return Verdict(
        claim="Large networks trained to convergence reach the same test accuracy with every loss",
        short="Equal test accuracy",
        verdict="not tested at this scale",
        scale=scale,
        chapter="real-networks",
        evidence=evidence,
        rule="not tested until networks of the paper's size are trained; the spread is reported with its noise",
    )


# Why a comparison with the seed yardstick is not judged yet (ncrepro.comparison.compare_with_seeds).
_ONE_UNIT = ("each side needs two independent units (seeds at which every loss has a network; losses with "
             "two or more seeds) for a noise level to judge a difference by, and one side has one; the "
             "comparison waits for more seeds.")


def _equivalence_reading(e: dict) -> tuple[str, str]:
    """(verdict, evidence) of one set of networks' comparisons with the seed yardstick, as glued
    by the equivalence chapter: ``networks``, and ``geometry``/``agreement`` verdicts of
    ncrepro.comparison.compare_with_seeds (None where nothing could be compared)."""
    verdicts = {k: e[k] for k in ("geometry", "agreement") if e.get(k)}
    if not verdicts:
        # The chapter says why (ncrepro.comparison.no_comparison_reason); the first reason if not.
        reason = e.get("no_comparison") or "there are not yet two seeds of one loss to compare with"
        return "not tested at this scale", (
            "Networks of different losses cannot yet be set beside networks of one loss from different "
            f"seeds, the yardstick of every comparison between losses: {reason}.")
    if all(v == NOT_YET_COMPARABLE for v in verdicts.values()):
        return "not tested at this scale", (
            "Networks of different losses cannot yet be judged against networks of one loss from "
            f"different seeds in their {join_list(MEASURE_NAMES[k] for k in verdicts)}: {_ONE_UNIT}")
    evidence = ("Against networks of one loss from different seeds, networks of different losses are "
                + join_list(f"{'not yet judged' if v == NOT_YET_COMPARABLE else v} in their {MEASURE_NAMES[k]}"
                            for k, v in verdicts.items()) + ".")
    alike = all(v in CLOSE_VERDICTS for v in verdicts.values())
    verdict = "reproduced" if alike and len(verdicts) == 2 else "not tested at this scale"
    if any(v == NOT_YET_COMPARABLE for v in verdicts.values()):
        evidence += " " + _ONE_UNIT[0].upper() + _ONE_UNIT[1:]
    apart = [MEASURE_NAMES[k] for k, v in verdicts.items() if v == FURTHER_APART]
    unshown = [MEASURE_NAMES[k] for k, v in verdicts.items() if v == NOT_SHOWN_CLOSE]
    if apart:
        evidence += (f" At this scale the losses differ by more than seeds do in their {join_list(apart)}, so "
                     "these networks do not yet learn the same features; the claim is about larger networks.")
    if unshown:
        evidence += (f" In their {join_list(unshown)} no difference from seeds is found, but too few "
                     f"independent units to show the losses less than {EQUIVALENCE_FACTOR:g} times as far apart "
                     "as seeds, the margin that \"as close as seeds\" has to clear; the comparison waits for "
                     "more seeds.")
    return verdict, evidence


def equivalent_features(eq: dict) -> Verdict:
    """The terminal-phase set's comparison, and the float32 set's (``eq_control_evidence``, at the
    widest width where it judges a measure) once it judges one: reproduced only where a set shows
    both measures as close as seeds and no set shows the losses further apart than seeds."""
    (e,) = _need(eq, "equivalence", "eq_evidence")
    verdict, evidence = _equivalence_reading(e)
    scale = e["networks"]
    control = eq.get("eq_control_evidence")
    if is_judged(control):
        control_verdict, control_evidence = _equivalence_reading(control)
        apart = any(FURTHER_APART in (x.get("geometry"), x.get("agreement")) for x in (e, control))
        verdict = ("reproduced" if "reproduced" in (verdict, control_verdict) and not apart
                   else "not tested at this scale")
        evidence = (f"Terminal-phase set (bfloat16 training): {evidence} The float32 set ({control['networks']}): "
                    f"{control_evidence}")
        scale = f"{scale}; float32 set: {control['networks']}"
    return Verdict(
        claim="All losses produce equivalent features",
        short="Equivalent features",
        verdict=verdict,
        scale=scale,
        chapter="equivalence",
        evidence=evidence,
        rule="reproduced if, on a set with two seeds of every loss, networks of different losses are shown to be as "
             "close as networks of one loss from different seeds (no further apart by the trend rule, and less than "
             f"{EQUIVALENCE_FACTOR:g} times as far apart by a one-sided test) in geometry and in predictions, and no "
             "set shows them further apart (the float32 set is read at its widest width with a judged comparison, "
             "the networks nearest the paper's regime); otherwise not tested at this scale",
    )


def ls_faster(ufm: dict, real: dict) -> Verdict:
    runs, times = _need(ufm, "ufm-experiments", "n_runs_speed", "ls_ce_nc2_times")
    timing, e = _need(real, "real-networks", "ls_ce_timing", "tpt_evidence")
    mixed = timing["settings"] == 0 or timing["ls_first"] < timing["settings"]
    # How the real networks stand (a tie is a crossing within one evaluation interval): LS ahead
    # everywhere; ahead somewhere and tied elsewhere; tied everywhere; ahead somewhere and behind
    # elsewhere; never ahead and behind somewhere.
    ahead, behind = timing["ls_first"], timing["ce_first"]
    if not mixed:
        stand = "agree"
    elif not behind:
        stand = "agree in part" if ahead else "do not separate the two"
    else:
        stand = "are mixed" if ahead else "do not show it"
    real_text = ("No real-network setting has both losses yet." if not timing["settings"] else
                 f"Real networks {stand}: in the terminal-phase networks, NC1 first "
                 f"falls below {timing['threshold']:g} earlier with LS in {timing['ls_first']}, at the same "
                 f"evaluation in {timing['ties']} and later in {timing['ce_first']} of "
                 f"{count(timing['settings'], 'setting')} (width, seed); at the first evaluation LS has the lower "
                 f"NC1 in {timing['early_ls_lower']}.")
    return Verdict(
        claim="Label smoothing collapses faster than cross entropy",
        short="LS collapses faster than CE",
        verdict="partly" if mixed else "reproduced",
        scale="UFM, K = 4; " + timing["networks"],
        chapter="ufm-experiments",
        evidence=(f"On the UFM, LS (α = 0.1) reaches NC2 < 10⁻² before CE in all {runs} independent "
                  f"gradient-descent runs ({times}). {real_text}"),
        rule="reproduced if LS is faster in every UFM run and in every real-network setting; partly if it is "
             "faster in every UFM run but not in every real-network setting",
    )


#: The rules in the order of the scorecard, with the chapters each reads.
RULES = (
    (global_optimum, ("theory",)),
    (ls_landscape, ("landscape",)),
    (fl_landscape, ("landscape",)),
    (collapse_in_networks, ("real-networks",)),
    (equal_accuracy, ("real-networks",)),
    (equivalent_features, ("equivalence",)),
    (ls_faster, ("ufm-experiments", "real-networks")),
)


def score(chapters: dict[str, dict]) -> list[Verdict]:
    """Every rule applied to ``{chapter: glued values}``."""
    return [rule(*(chapters[name] for name in names)) for rule, names in RULES]


def tally(verdicts: list[Verdict]) -> str:
    """``"2 reproduced, 3 partly, 2 not tested at this scale"`` (verdicts that occur, strongest first)."""
    counts = {v: sum(x.verdict == v for x in verdicts) for v in VERDICTS}
    return ", ".join(f"{n} {v}" for v, n in counts.items() if n)
