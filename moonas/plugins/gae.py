"""Graph-autoencoder architecture encoding (arch2vec / PVLL-NAS style) for cell spaces.

A cell space whose choices are the operations on the edges of a DAG (NAS-Bench-201) is turned
into an operation-node graph: one node for the cell input, one per edge carrying a real
operation, one for the cell output. Edges whose operation outputs zeros (``none``) are dropped,
identity edges (``skip_connect``) are contracted (their sources feed their targets directly,
with multiplicity), and operations that cannot reach the output or only see zeros are pruned:
the graph is the cell's computation, so cells that compute the same thing up to relabelling
get the same graph and, through a permutation-invariant encoder, the same embedding.

A small variational graph autoencoder (directed GIN-style layers, bilinear adjacency decoder,
node-type decoder) is pre-trained without accuracies on every architecture of the space (known
before the search) and gives each architecture a fixed-length embedding: the mean over the
graph's nodes of the latent means. Spaces with no graph (``graph_for`` returns None) keep the
one-hot encoding.

This module is the home of torch for the encoding; ``moonas.plugins.pvll`` imports it lazily.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import logging
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from moonas.errors import ConfigError
from moonas.spaces.nb201 import NB201_EDGES, NB201_OPS

__all__ = ["CellGraph", "GAEConfig", "GraphAutoencoder", "GAEEncoder", "nb201_graph", "graph_for",
           "arch_graphs", "train_encoder", "cached_encoder"]

log = logging.getLogger(__name__)

#: Largest cell space whose graphs are enumerated (and pre-trained on) in full.
MAX_CELLS = 200_000


# ---------------------------------------------------------------------------------- graphs
@dataclass(frozen=True)
class CellGraph:
    """A cell DAG whose choice d is the operation on edge d = ``edges[d]`` = (to, from).

    Cell node 0 is the input, node ``n_nodes - 1`` the output; every edge goes from a lower to
    a higher node and the edges are listed by their target node. ``zero`` and ``identity`` name
    the operations that output zeros and pass their input through (None: no such operation).
    """

    n_nodes: int
    edges: tuple[tuple[int, int], ...]
    ops: tuple[str, ...]
    zero: str | None = None
    identity: str | None = None

    def __post_init__(self) -> None:
        targets = [to for to, _ in self.edges]
        bad = any(not 0 <= frm < to < self.n_nodes for to, frm in self.edges)
        if bad or targets != sorted(targets):
            raise ConfigError(f"cell edges {self.edges} must go from a lower to a higher node "
                              f"below {self.n_nodes}, listed by target node")
        for name in (self.zero, self.identity):
            if name is not None and name not in self.ops:
                raise ConfigError(f"cell operation {name!r} is not one of {self.ops}")

    @property
    def n_options(self) -> tuple[int, ...]:
        return (len(self.ops),) * len(self.edges)

    @property
    def node_types(self) -> tuple[str, ...]:
        """Node labels of the operation-node graph: input, output, then the real operations."""
        real = tuple(op for op in self.ops if op not in (self.zero, self.identity))
        return ("input", "output", *real)

    @property
    def n_slots(self) -> int:
        """Node slots of a graph (N): the input, one per edge, the output."""
        return len(self.edges) + 2


def nb201_graph() -> CellGraph:
    """The NAS-Bench-201 cell: 4 nodes, 6 edges, 5 operations."""
    return CellGraph(n_nodes=4, edges=tuple((to, frm) for to, frm in NB201_EDGES), ops=NB201_OPS,
                     zero="none", identity="skip_connect")


def graph_for(n_options: tuple[int, ...]) -> CellGraph | None:
    """The cell graph of a space given by its options per choice, or None where no graph is
    defined (the encoding then stays one-hot). Only NAS-Bench-201's (5,) * 6 has one."""
    graph = nb201_graph()
    return graph if tuple(n_options) == graph.n_options else None


def _one_graph(arch: tuple[int, ...], graph: CellGraph) -> tuple[np.ndarray, np.ndarray]:
    """Adjacency counts (N, N) and node-type indices (N,) (-1: pruned slot) of one arch."""
    n_slots = graph.n_slots
    out_slot = n_slots - 1
    types = {t: i for i, t in enumerate(graph.node_types)}
    sources: list[Counter] = [Counter({0: 1})] + [Counter() for _ in range(graph.n_nodes - 1)]
    inputs: dict[int, Counter] = {}
    for e, ((to, frm), option) in enumerate(zip(graph.edges, arch)):
        op = graph.ops[option]
        if op == graph.zero or not sources[frm]:
            continue  # zeros in or out: the edge adds nothing to its target
        if op == graph.identity:
            sources[to].update(sources[frm])
        else:
            inputs[1 + e] = sources[frm]
            sources[to][1 + e] += 1
    inputs[out_slot] = sources[-1]
    alive, stack = {out_slot}, [out_slot]
    while stack:  # slots that reach the output
        for src in inputs.get(stack.pop(), ()):
            if src not in alive:
                alive.add(src)
                stack.append(src)
    alive.add(0)
    adj = np.zeros((n_slots, n_slots), dtype=np.float32)
    node = np.full(n_slots, -1, dtype=np.int64)
    node[0], node[out_slot] = types["input"], types["output"]
    for slot in alive:
        if 0 < slot < out_slot:
            node[slot] = types[graph.ops[arch[slot - 1]]]
        for src, count in inputs.get(slot, {}).items():
            adj[src, slot] = count
    return adj, node


@functools.lru_cache(maxsize=4)
def _space_graphs(graph: CellGraph) -> tuple[np.ndarray, np.ndarray]:
    """Graphs of every architecture of the space, rows in mixed-radix order: (S, N, N), (S, N)."""
    size = int(np.prod(graph.n_options))
    if size > MAX_CELLS:
        raise ConfigError(f"the cell space has {size} architectures; the graph autoencoder "
                          f"enumerates them all and handles at most {MAX_CELLS}: use one-hot")
    archs = np.stack(np.unravel_index(np.arange(size), graph.n_options), -1)
    adjs, nodes = zip(*(_one_graph(tuple(int(v) for v in a), graph) for a in archs))
    adj, node = np.stack(adjs), np.stack(nodes)
    adj.setflags(write=False)
    node.setflags(write=False)
    return adj, node


def arch_graphs(archs: np.ndarray, graph: CellGraph) -> tuple[np.ndarray, np.ndarray]:
    """Operation-node graphs of archs (n, D): adjacency counts (n, N, N) float32 (``[i, j]``:
    how often node i feeds node j) and node types (n, N) int64, -1 on pruned slots."""
    archs = np.asarray(archs, dtype=np.int64).reshape(-1, len(graph.edges))
    if np.any(archs < 0) or np.any(archs >= len(graph.ops)):
        raise ConfigError(f"architectures must have options in 0..{len(graph.ops) - 1}")
    adj, node = _space_graphs(graph)
    rows = np.ravel_multi_index(tuple(archs.T), graph.n_options)
    return adj[rows], node[rows]


# ----------------------------------------------------------------------------------- model
@dataclass(frozen=True)
class GAEConfig:
    """Size and training of the graph autoencoder; the defaults train in ~20 s on one thread."""

    hidden: int = 64
    latent: int = 16
    layers: int = 3
    epochs: int = 30
    batch: int = 128
    lr: float = 3e-3
    beta: float = 0.005       # KL weight (KL summed over latent dimensions, mean over nodes)
    variational: bool = True

    def __post_init__(self) -> None:
        for key in ("hidden", "latent", "layers", "batch"):
            if getattr(self, key) < 1:
                raise ConfigError(f"gae.{key}={getattr(self, key)}: use {key} >= 1")
        if self.epochs < 0:
            raise ConfigError(f"gae.epochs={self.epochs}: use epochs >= 0 (0: untrained)")
        if not self.lr > 0 or self.beta < 0:
            raise ConfigError(f"gae.lr={self.lr}, gae.beta={self.beta}: use lr > 0, beta >= 0")


class _DirectedGIN(nn.Module):
    """h_i <- MLP([h_i, sum_j A_ji h_j, sum_j A_ij h_j]): predecessors and successors apart."""

    def __init__(self, dim_in: int, dim_out: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(3 * dim_in, dim_out), nn.ReLU(),
                                 nn.Linear(dim_out, dim_out))

    def forward(self, h: torch.Tensor, adj: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        pred = adj.transpose(1, 2) @ h
        succ = adj @ h
        return torch.relu(self.mlp(torch.cat([h, pred, succ], dim=-1))) * mask[..., None]


class GraphAutoencoder(nn.Module):
    """Encoder: node types (n, N) and adjacency (n, N, N) -> latent mean and log-variance per
    node (n, N, L). Decoder: latents -> adjacency logits (n, N, N) and type logits (n, N, T)."""

    def __init__(self, n_types: int, config: GAEConfig) -> None:
        super().__init__()
        self.n_types = n_types
        dims = [n_types] + [config.hidden] * config.layers
        self.layers = nn.ModuleList(_DirectedGIN(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.mu = nn.Linear(config.hidden, config.latent)
        self.logvar = nn.Linear(config.hidden, config.latent)
        self.bilinear = nn.Parameter(torch.zeros(config.latent, config.latent))
        self.adj_bias = nn.Parameter(torch.zeros(()))
        self.types = nn.Sequential(nn.Linear(config.latent, config.hidden), nn.ReLU(),
                                   nn.Linear(config.hidden, n_types))

    def encode(self, node: torch.Tensor, adj: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mask = (node >= 0).to(adj.dtype)
        h = nn.functional.one_hot(node.clamp(min=0), self.n_types).to(adj.dtype) * mask[..., None]
        # log1p keeps a doubled input (x + x) apart from a single one without large sums.
        weights = torch.log1p(adj)
        for layer in self.layers:
            h = layer(h, weights, mask)
        return self.mu(h) * mask[..., None], self.logvar(h) * mask[..., None]

    def decode(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        adj_logits = z @ self.bilinear @ z.transpose(1, 2) + self.adj_bias
        return adj_logits, self.types(z)


def _losses(model: GraphAutoencoder, node: torch.Tensor, adj: torch.Tensor,
            z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Reconstruction losses (adjacency BCE over live pairs, type CE over live nodes)."""
    mask = (node >= 0).float()
    pair = mask[:, :, None] * mask[:, None, :]
    adj_logits, type_logits = model.decode(z)
    bce = nn.functional.binary_cross_entropy_with_logits(adj_logits, (adj > 0).float(),
                                                         reduction="none")
    adj_loss = (bce * pair).sum() / pair.sum()
    ce = nn.functional.cross_entropy(type_logits.reshape(-1, model.n_types),
                                     node.clamp(min=0).reshape(-1), reduction="none")
    type_loss = (ce * mask.reshape(-1)).sum() / mask.sum()
    return adj_loss, type_loss


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """One torch thread for the tiny tensors here (faster than several on a shared machine);
    the caller's setting is restored."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# --------------------------------------------------------------------------------- encoder
class GAEEncoder:
    """A trained autoencoder with its cell graph: ``embed`` archs (n, D) -> (n, L) float64."""

    def __init__(self, graph: CellGraph, model: GraphAutoencoder) -> None:
        self.graph = graph
        self.model = model.eval()
        adj, node = _space_graphs(graph)
        pooled = self._embed_graphs(adj, node)  # every arch of the space, (S, L)
        std = pooled.std(axis=0)
        self._table = (pooled - pooled.mean(axis=0)) / np.where(std > 0, std, 1.0)
        self._table.setflags(write=False)

    @property
    def dim(self) -> int:
        return self._table.shape[1]

    def _embed_graphs(self, adj: np.ndarray, node: np.ndarray) -> np.ndarray:
        # In float64 and rounded: graphs equal up to relabelling sum their nodes in another
        # order, which float32 would leave ~1e-6 apart instead of identical.
        model = copy.deepcopy(self.model).double()
        with torch.no_grad(), _one_thread():
            mu, _ = model.encode(torch.tensor(node), torch.tensor(adj, dtype=torch.float64))
            mask = torch.as_tensor(node >= 0).double()
            pooled = mu.sum(dim=1) / mask.sum(dim=1, keepdim=True)
        return np.round(pooled.numpy(), 9)

    def embed(self, archs: np.ndarray) -> np.ndarray:
        """Embeddings (n, L) of archs (n, D): the mean of the latent means over the live nodes,
        standardised over the space (mean 0, std 1 per dimension across all its archs)."""
        archs = np.asarray(archs, dtype=np.int64).reshape(-1, len(self.graph.edges))
        if np.any(archs < 0) or np.any(archs >= len(self.graph.ops)):
            raise ConfigError(f"architectures must have options in 0..{len(self.graph.ops) - 1}")
        return self._table[np.ravel_multi_index(tuple(archs.T), self.graph.n_options)]

    def reconstruction(self, archs: np.ndarray) -> dict[str, float]:
        """Decoding from the latent means: share of graphs rebuilt exactly, of node types and
        of live adjacency entries right."""
        adj, node = arch_graphs(archs, self.graph)
        with torch.no_grad(), _one_thread():
            node_t, adj_t = torch.tensor(node), torch.tensor(adj)
            mu, _ = self.model.encode(node_t, adj_t)
            adj_logits, type_logits = self.model.decode(mu)
        live = node >= 0
        pair = live[:, :, None] & live[:, None, :]
        types_ok = (type_logits.argmax(-1).numpy() == node) | ~live
        adj_ok = ((adj_logits.numpy() > 0) == (adj > 0)) | ~pair
        return {"graphs": float(np.mean(types_ok.all(1) & adj_ok.all((1, 2)))),
                "node_types": float(types_ok[live].mean()),
                "adjacency": float(adj_ok[pair].mean())}


def train_encoder(graph: CellGraph, config: GAEConfig = GAEConfig(), seed: int = 0) -> GAEEncoder:
    """Pre-train the autoencoder on the distinct graphs of every architecture of the space
    (no accuracies); deterministic for a seed on a machine (the global torch RNG is untouched)."""
    started = time.perf_counter()
    adj, node = _space_graphs(graph)
    flat = np.concatenate([adj.reshape(len(adj), -1), node.astype(np.float32)], axis=1)
    _, first = np.unique(flat, axis=0, return_index=True)
    first = np.sort(first)
    adj_t, node_t = torch.tensor(adj[first]), torch.tensor(node[first])
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = GraphAutoencoder(len(graph.node_types), config)
    n = len(first)
    with _one_thread():
        _fit(model, node_t, adj_t, config, generator)
    encoder = GAEEncoder(graph, model)
    log.info("graph autoencoder: %d distinct graphs, %d epochs, %.1f s", n, config.epochs,
             time.perf_counter() - started)
    return encoder


def _fit(model: GraphAutoencoder, node_t: torch.Tensor, adj_t: torch.Tensor, config: GAEConfig,
         generator: torch.Generator) -> None:
    """Adam on minibatches: reconstruction losses plus ``beta`` times the KL term."""
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr)
    n = len(node_t)
    for _ in range(config.epochs):
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, config.batch):
            rows = order[start:start + config.batch]
            node_b, adj_b = node_t[rows], adj_t[rows]
            mu, logvar = model.encode(node_b, adj_b)
            mask = (node_b >= 0).float()[..., None]
            if config.variational:
                noise = torch.randn(mu.shape, generator=generator)
                z = (mu + noise * torch.exp(0.5 * logvar)) * mask
                kl = (-0.5 * (1 + logvar - mu ** 2 - logvar.exp()) * mask).sum() / mask.sum()
            else:
                z, kl = mu, torch.zeros(())
            adj_loss, type_loss = _losses(model, node_b, adj_b, z)
            loss = adj_loss + type_loss + config.beta * kl
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()


@functools.lru_cache(maxsize=4)
def cached_encoder(graph: CellGraph, config: GAEConfig = GAEConfig(), seed: int = 0) -> GAEEncoder:
    """``train_encoder`` once per process for a (graph, config, seed)."""
    return train_encoder(graph, config, seed)
