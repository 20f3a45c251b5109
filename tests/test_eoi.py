"""The EoiNAS plug-in: importance scores, the Markov removal rule, persistence."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from moonas.asng import MultiASNG
from moonas.errors import ConfigError
from moonas.plugins.eoi import EoiConfig, EoiPlugin, centred_utilities, freed_options

N_OPTIONS = (4, 4, 4)
BUDGETS = (1.0, 2.0)
#: Option 0 is always bad (+1 loss per use), option 3 always good (-0.5).
EFFECT = np.array([1.0, 0.0, 0.1, -0.5])


def _problem(archs: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    losses = EFFECT[archs].sum(axis=1) + 0.05 * rng.standard_normal(len(archs))
    costs = 0.2 * archs.sum(axis=1) / 3.0  # below every budget: the loss decides
    return losses, costs


def _run(config: EoiConfig, steps: int, seed: int = 0, *, core: MultiASNG | None = None,
         plugin: EoiPlugin | None = None, rng: np.random.Generator | None = None):
    core = core or MultiASNG(N_OPTIONS, 2, budgets=BUDGETS, n_per_dist=2, delta0=0.5)
    plugin = plugin or EoiPlugin.for_core(config, core)
    rng = rng or np.random.default_rng(seed)
    logs = []
    for _ in range(steps):
        archs = plugin.propose(rng, core, core.ask(rng))
        losses, costs = _problem(archs, rng)
        core.tell(archs, losses, costs)
        logs.append(plugin.observe(archs, losses, costs, core))
    return core, plugin, rng, logs


FAST = EoiConfig(enabled=True, warmup=5, interval=2, R=3, min_options=1, gate=float("inf"))


def test_bad_option_removed_everywhere_and_freed() -> None:
    core, _, _, _ = _run(FAST, 60)
    assert not core.stack.mask[:, :, 0].any()
    assert set(freed_options(core)) >= {(0, 0), (1, 0), (2, 0)}


def test_good_option_never_removed() -> None:
    for seed in range(3):
        core, _, _, logs = _run(FAST, 120, seed)
        assert core.stack.mask[:, :, 3].all()
        removed = [tuple(r) for log in logs for r in log.get("eoi_removed", [])]
        assert removed and all(j != 3 for _, _, j in removed)


@pytest.mark.parametrize("min_options", [1, 2])
def test_min_options_survive(min_options: int) -> None:
    config = EoiConfig(enabled=True, warmup=1, interval=1, R=2, min_options=min_options,
                       gate=float("inf"))
    core, _, _, _ = _run(config, 150)
    assert (core.stack.mask.sum(axis=-1) == min_options).all()


def test_disabled_changes_nothing() -> None:
    core, plugin, _, logs = _run(EoiConfig(), 40)
    assert core.stack.mask[:, :, :4].all() and not any(logs)
    assert plugin.state_dict()["pbar"] is None


class _Scripted(EoiPlugin):
    """Scores given by a script: at check i, option script[i] of row (0, 0) scores lowest."""

    def __init__(self, config: EoiConfig, core: MultiASNG, script: list[int]) -> None:
        super().__init__(config, np.asarray(BUDGETS), "budgets")
        self.script = script

    def scores(self, mask: np.ndarray) -> np.ndarray:
        score = np.where(mask, 1.0, -np.inf)
        score[0, 0, self.script[self._n_checks]] = 0.0
        return score


def _scripted_removals(script: list[int], R: int) -> list[list[int]]:
    config = EoiConfig(enabled=True, warmup=1, interval=1, R=R, min_options=1, gate=float("inf"))
    core = MultiASNG(N_OPTIONS, 2, budgets=BUDGETS, n_per_dist=2)
    plugin = _Scripted(config, core, script)
    _, _, _, logs = _run(config, len(script), core=core, plugin=plugin)
    return [[i, r[2]] for i, log in enumerate(logs) for r in log.get("eoi_removed", [])
            if r[:2] == [0, 0]]


def test_markov_rule_needs_r_minus_1_of_last_r() -> None:
    # R = 4: last 3 of 4 checks -> removed at the 4th check (index 3), not before.
    assert _scripted_removals([1, 2, 1, 1], R=4) == [[3, 1]]
    assert _scripted_removals([1, 1, 1, 2], R=4) == [[3, 1]]
    # Only 2 of the last 4, then 2 of every later window of 4: never removed.
    assert _scripted_removals([1, 2, 1, 2, 1, 2, 1, 2], R=4) == []
    # After a removal the row's history restarts: R fresh checks before the next removal.
    assert _scripted_removals([1, 1, 1, 1, 2, 2, 2, 2], R=4) == [[3, 1], [7, 2]]


def test_state_resumes_identically() -> None:
    config = EoiConfig(enabled=True, warmup=5, interval=2, R=3)
    core, plugin, rng, _ = _run(config, 30)
    saved = (copy.deepcopy(core.state_dict()), copy.deepcopy(plugin.state_dict()),
             copy.deepcopy(rng.bit_generator.state))
    core_a, _, _, logs_a = _run(config, 40, core=core, plugin=plugin, rng=rng)

    core_b = MultiASNG(N_OPTIONS, 2, budgets=BUDGETS, n_per_dist=2, delta0=0.5)
    core_b.load_state_dict(saved[0])
    plugin_b = EoiPlugin.for_core(config, core_b)
    plugin_b.load_state_dict(saved[1])
    rng_b = np.random.default_rng()
    rng_b.bit_generator.state = saved[2]
    core_b, _, _, logs_b = _run(config, 40, core=core_b, plugin=plugin_b, rng=rng_b)
    assert logs_a == logs_b
    np.testing.assert_array_equal(core_a.thetas, core_b.thetas)
    np.testing.assert_array_equal(core_a.stack.mask, core_b.stack.mask)


def test_deterministic_for_a_seed() -> None:
    config = EoiConfig(enabled=True, warmup=5, interval=2, R=3)
    a = _run(config, 50, seed=3)
    b = _run(config, 50, seed=3)
    assert a[3] == b[3]
    np.testing.assert_array_equal(a[0].thetas, b[0].thetas)


def test_centred_utilities_follow_ranks_and_weights() -> None:
    u = centred_utilities(np.array([[0, 1, 2, 1]]), np.ones((1, 4)))
    np.testing.assert_allclose(u, [[0.75, 0.0, -0.75, 0.0]])
    heavy = centred_utilities(np.array([[0, 1]]), np.array([[3.0, 1.0]]))
    np.testing.assert_allclose(heavy, [[0.25, -0.75]])


def test_each_distribution_ranks_by_its_own_budget() -> None:
    # Option 0 is cheap and bad: the tight budget needs it, the loose one does not.
    config = EoiConfig(enabled=True, warmup=5, interval=2, R=3, min_options=1, gate=float("inf"))
    core = MultiASNG((3, 3), 2, budgets=(0.5, 10.0), n_per_dist=2, delta0=0.5)
    plugin = EoiPlugin.for_core(config, core)
    rng = np.random.default_rng(0)
    for _ in range(150):
        archs = core.ask(rng)
        losses = (archs == 0).sum(axis=1) + 0.01 * rng.standard_normal(len(archs))
        costs = (archs != 0).sum(axis=1).astype(float)
        core.tell(archs, losses, costs)
        plugin.observe(archs, losses, costs, core)
    assert core.stack.mask[0, :, 0].all()  # the tight budget keeps the cheap option
    assert not core.stack.mask[1, :, 0].any()  # the loose one drops it


def test_a_tie_for_lowest_marks_no_option_last() -> None:
    """All scores equal: no option is "last" (it was the tie-break's lowest index, so options
    0, 1, 2 went one after another every R checks)."""
    config = EoiConfig(enabled=True, warmup=1, interval=1, R=3, min_options=1, gate=float("inf"))

    class Tied(EoiPlugin):
        def scores(self, mask: np.ndarray) -> np.ndarray:
            return np.where(mask, 1.0, -np.inf)

    core = MultiASNG(N_OPTIONS, 2, budgets=BUDGETS, n_per_dist=2)
    _, _, _, logs = _run(config, 12, core=core, plugin=Tied(config, np.asarray(BUDGETS),
                                                              "budgets"))
    assert not any(log.get("eoi_removed") for log in logs) and core.stack.mask.all()
    # A unique lowest is still marked: the scripted rule removes it (row (0, 0), option 1).
    assert _scripted_removals([1, 1, 1], R=3) == [[2, 1]]


def test_the_advantage_weights_samples_as_the_update_did() -> None:
    """w_k = p_k / q under the probabilities that drew the samples (before the step the same
    tell takes), not after it."""
    from moonas.asng.importance import importance_weights

    config = EoiConfig(enabled=True, warmup=1000)
    core, plugin, rng, _ = _run(config, 5)
    archs = core.ask(rng)
    losses, costs = _problem(archs, rng)
    before = copy.deepcopy(core)
    core.tell(archs, losses, costs)
    assert not np.allclose(core.stack.log_prob(archs), before.stack.log_prob(archs))
    np.testing.assert_array_equal(core.told_log_prob(archs), before.stack.log_prob(archs))
    den = plugin._adv_den.copy()
    plugin.observe(archs, losses, costs, core)
    onehot = np.zeros((len(archs), *core.thetas.shape[1:]))
    onehot[np.arange(len(archs))[:, None], np.arange(len(N_OPTIONS))[None, :], archs] = 1.0
    weights = importance_weights(before.stack.log_prob(archs))
    np.testing.assert_allclose(plugin._adv_den,
                               config.adv_decay * den + np.einsum("km,mdj->kdj", weights, onehot))


def test_an_option_another_plug_in_removed_restarts_the_rows_history() -> None:
    """The angle's shrinking removes an option: that row's "last" history restarts, and the
    renormalised probabilities are not taken for a drift (the trend only decays)."""
    config = EoiConfig(enabled=True, warmup=3, interval=1, R=4, gate=float("inf"))
    core, plugin, rng, _ = _run(config, 12)
    assert plugin._filled[1, 2] > 0
    trend = plugin._trend.copy()
    core.stack.remove_option(1, 2, 1)  # what AnglePlugin's shrinking calls
    _run(config, 1, core=core, plugin=plugin, rng=rng)
    assert plugin._filled[1, 2] == 1 and not plugin._last[:, 1, 2, 1].any()
    np.testing.assert_allclose(plugin._trend[1, 2], config.smoothing * trend[1, 2])
    assert plugin._pbar[1, 2, 1] == 0.0


def test_config_names_its_keys_and_refuses_bad_values() -> None:
    with pytest.raises(ConfigError, match=r"search.eoi.R=1: use R >= 2"):
        EoiConfig(R=1)
    with pytest.raises(ConfigError, match=r"^search.eoi.smoothing=1.0: use 0 <= smoothing < 1"):
        EoiConfig(smoothing=1.0)
    EoiConfig(R=2, smoothing=0.0)  # the edges of the ranges are accepted
    for name in ("w_prob", "w_trend", "w_adv"):
        for value in (float("nan"), float("inf")):
            with pytest.raises(ConfigError, match=f"search.eoi.{name}="):
                EoiConfig(**{name: value})
