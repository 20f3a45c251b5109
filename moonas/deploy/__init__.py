"""After a search: pick a network per device, export it, retrain it, profile latency, plot runs."""

from __future__ import annotations

from moonas.deploy.pick import Limits, NoFeasibleArchitecture, Pick, pick, pick_many

__all__ = ["pick", "pick_many", "Pick", "Limits", "NoFeasibleArchitecture", "export_network",
           "train_candidate", "load_network", "profile_space"]


def __getattr__(name: str):
    # torch-heavy parts load on first use, so `moonas pick` stays quick.
    if name == "export_network":
        from moonas.deploy.export import export_network

        return export_network
    if name == "train_candidate":
        from moonas.deploy.train import train_candidate

        return train_candidate
    if name == "load_network":
        from moonas.deploy.weights import load_network

        return load_network
    if name == "profile_space":
        from moonas.deploy.profile import profile_space

        return profile_space
    raise AttributeError(f"module 'moonas.deploy' has no attribute {name!r}")
