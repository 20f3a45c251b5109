"""The graph-autoencoder encoding: cell graphs, reconstruction, invariance, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from moonas.errors import ConfigError
from moonas.plugins.gae import (CellGraph, GAEConfig, arch_graphs, cached_encoder, graph_for,
                                nb201_graph, train_encoder)
from moonas.spaces import MobileNetSpace, NB201Space

from conftest import NB201_CSV

# Edge order of NB201: 1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2; ops: none, skip, conv1x1, conv3x3, pool.
NONE, SKIP, C1, C3, POOL = range(5)
GRAPH = nb201_graph()
FAST = GAEConfig(epochs=5)

#: Pairs of different cells that compute the same thing.
SAME_FUNCTION = [
    # a dead conv (node 1 feeds nothing) vs none on that edge
    ((C1, NONE, NONE, C3, NONE, NONE), (NONE, NONE, NONE, C3, NONE, NONE)),
    # a conv behind a skip vs the conv on the direct edge
    ((SKIP, NONE, NONE, NONE, C3, NONE), (NONE, NONE, NONE, C3, NONE, NONE)),
    # two parallel two-op paths, swapped between nodes 1 and 2
    ((C1, POOL, NONE, NONE, C3, C1), (POOL, C1, NONE, NONE, C1, C3)),
    # a conv that only sees zeros (its input node is zero) vs none
    ((NONE, NONE, C3, C1, NONE, NONE), (NONE, NONE, NONE, C1, NONE, NONE)),
]


@pytest.fixture(scope="module")
def fast_encoder():
    return train_encoder(GRAPH, FAST, seed=0)


def test_graph_for_known_spaces():
    assert graph_for(NB201Space().n_options) == GRAPH
    assert graph_for(MobileNetSpace().n_options) is None


def test_cell_graphs_by_hand():
    out = GRAPH.n_slots - 1
    adj, node = arch_graphs(np.array([[NONE] * 6, [SKIP] * 6, (NONE, NONE, NONE, C3, NONE, NONE)]),
                            GRAPH)
    types = GRAPH.node_types
    # all none: the cell outputs zeros; only the input and output nodes, no edge
    assert adj[0].sum() == 0 and (node[0] >= 0).sum() == 2
    # all skip: the output is 4 x the input (1 + 1 + 2 paths)
    assert adj[1][0, out] == 4 and adj[1].sum() == 4 and (node[1] >= 0).sum() == 2
    # one conv on 3<-0 (edge 3, slot 4)
    assert types[node[2][4]] == "nor_conv_3x3"
    assert adj[2][0, 4] == 1 and adj[2][4, out] == 1 and adj[2].sum() == 2


@pytest.mark.parametrize("a, b", SAME_FUNCTION)
def test_same_function_cells_embed_identically(fast_encoder, a, b):
    ea, eb = fast_encoder.embed(np.array([a, b]))
    np.testing.assert_array_equal(ea, eb)


def test_identical_archs_embed_identically_and_different_ones_apart(fast_encoder):
    archs = np.random.default_rng(0).integers(0, 5, size=(50, 6))
    e = fast_encoder.embed(np.concatenate([archs, archs]))
    np.testing.assert_array_equal(e[:50], e[50:])
    conv1, conv3 = fast_encoder.embed(np.array([(NONE, NONE, NONE, C1, NONE, NONE),
                                                (NONE, NONE, NONE, C3, NONE, NONE)]))
    assert np.abs(conv1 - conv3).max() > 1e-3
    assert e.shape == (100, FAST.latent) and e.dtype == np.float64


def test_reconstruction_after_short_training(fast_encoder):
    archs = np.random.default_rng(1).integers(0, 5, size=(2000, 6))
    scores = fast_encoder.reconstruction(archs)
    assert scores["node_types"] > 0.99
    assert scores["adjacency"] > 0.99
    assert scores["graphs"] > 0.9


def test_training_is_deterministic_for_a_seed_and_leaves_global_rng():
    tiny = GAEConfig(epochs=1, hidden=16)
    state = torch.random.get_rng_state()
    first, again, other = (train_encoder(GRAPH, tiny, seed=s) for s in (0, 0, 1))
    assert torch.equal(state, torch.random.get_rng_state())
    archs = np.random.default_rng(2).integers(0, 5, size=(200, 6))
    np.testing.assert_array_equal(again.embed(archs), first.embed(archs))
    assert not np.allclose(other.embed(archs), first.embed(archs))


def test_bad_inputs_fail_with_config_errors(fast_encoder):
    with pytest.raises(ConfigError, match="latent"):
        GAEConfig(latent=0)
    with pytest.raises(ConfigError, match="lower to a higher"):
        CellGraph(n_nodes=3, edges=((1, 2),), ops=("a", "b"))
    with pytest.raises(ConfigError, match="not one of"):
        CellGraph(n_nodes=2, edges=((1, 0),), ops=("a", "b"), zero="none")
    with pytest.raises(ConfigError, match="options in 0..4"):
        fast_encoder.embed(np.array([[0, 0, 0, 0, 0, 5]]))


@pytest.mark.slow
def test_default_encoder_reconstructs_and_merges_nb201_isomorphism_classes(nb201_rows):
    from moonas.bench.table import load_table

    encoder = cached_encoder(GRAPH)
    table = load_table(NB201_CSV)
    scores = encoder.reconstruction(table.archs)
    assert scores["graphs"] > 0.97 and scores["node_types"] > 0.999
    # NAS-Bench-201's own isomorphism classes (6,466): most get a single embedding
    iso = np.array([int(r["iso_rep_index"]) for r in nb201_rows])[table.official_index]
    _, emb_class = np.unique(np.round(encoder.embed(table.archs), 5), axis=0, return_inverse=True)
    emb_class = emb_class.reshape(-1)
    one = [len(np.unique(emb_class[iso == c])) == 1 for c in np.unique(iso)]
    assert np.mean(one) > 0.85


def test_the_graph_keeps_exactly_the_operations_search_prune_dead_keeps() -> None:
    """Two rules say which operations of a cell compute something: the graph's (drop zeros,
    contract identities, keep what reaches the output from the input) and the space's
    `prune(..., "dead")`. On all 15,625 cells the graph's real-operation nodes are the pruned
    cell's operations other than none and skip_connect."""
    graph = nb201_graph()
    space = NB201Space(channels=4, input_size=8, in_channels=1, n_classes=10)
    assert tuple(space.choices[0].options) == tuple(graph.ops)
    archs = np.stack(np.unravel_index(np.arange(15_625), graph.n_options), -1)
    _, node = arch_graphs(archs, graph)
    pruned = space.prune(archs, "dead")
    zero, identity = graph.ops.index(graph.zero), graph.ops.index(graph.identity)
    np.testing.assert_array_equal(node[:, 1:-1] >= 0, (pruned != zero) & (pruned != identity))
