"""Per-stage timing of the pipeline on synthetic toy events (not a test).

    PYTHONPATH=. .venv/bin/python -m tests.exatrkx.bench_pipeline --threads 1 2 --sizes 1000 10000

Trains default-size models briefly on small toy events (so graph sizes are realistic rather
than those of random weights), then times every stage on events of the requested sizes
(10 hits per toy track) and prints the median of ``--repeat`` runs in milliseconds.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace

import numpy as np

from sonic_exatrkx.exatrkx import GraphConfig, Pipeline, PipelineConfig, compute_features
from sonic_exatrkx.exatrkx.metrics import track_metrics
from sonic_exatrkx.exatrkx.training import TrainingConfig, train_pipeline
from tests.exatrkx.helpers import toy_event


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--train-tracks", type=int, default=100, help="toy tracks per training event")
    ap.add_argument("--epochs", type=int, nargs=3, default=[20, 20, 10],
                    metavar=("EMB", "FILTER", "GNN"), help="training epochs per stage")
    args = ap.parse_args()

    cfg = PipelineConfig(graph=GraphConfig(radius=1.0, max_k=64, orientation="inner_outer"))
    train = [
        {"features": compute_features(t["x"], t["y"], t["z"]), "particle_id": t["particle_id"]}
        for t in (toy_event(args.train_tracks, seed=s, noise=10) for s in range(8))
    ]
    t0 = time.perf_counter()
    tcfg = TrainingConfig(
        embedding_epochs=args.epochs[0], filter_epochs=args.epochs[1],
        gnn_epochs=args.epochs[2], embedding_lr=1e-2,
        filter_lr=1e-2, progress=False, plots=False,
    )
    with tempfile.TemporaryDirectory() as d:
        train_pipeline(train, cfg, tcfg, output_dir=d)
        print(f"trained default-size models in {time.perf_counter() - t0:.1f} s")
        pipe = Pipeline.from_directory(d)  # TorchScript models, as served
    stages = ["embedding", "build_edges", "filter", "gnn", "build_tracks", "total"]
    print(f"{'N':>6} {'thr':>3} {'edges g/f/gnn':>20} " + " ".join(f"{s:>12}" for s in stages))
    for n in args.sizes:
        toy = toy_event(max(n // 10, 1), seed=1000 + n)
        feats = pipe.features(toy["x"], toy["y"], toy["z"])
        for threads in args.threads:
            p = Pipeline(
                pipe.embedding, pipe.filter, pipe.gnn, replace(pipe.config, num_threads=threads)
            )
            p.run(feats)  # warm-up
            runs = [p.run(feats) for _ in range(args.repeat)]
            med = {s: 1e3 * float(np.median([r.timings[s] for r in runs])) for s in stages}
            ne = runs[0].n_edges
            edges = f"{ne['graph']}/{ne['filter']}/{ne['gnn']}"
            print(f"{feats.shape[0]:>6} {threads:>3} {edges:>20} "
                  + " ".join(f"{med[s]:>12.1f}" for s in stages))
        eff = track_metrics(runs[0].labels, toy["particle_id"]).efficiency
        print(f"{'':>6} track efficiency on this toy event: {eff:.2f}")


if __name__ == "__main__":
    main()
