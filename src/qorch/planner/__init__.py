"""Planning: where a job's qubits go and how nonlocal gates are paid for.

- `model`: NodeSlot / LinkSlot, the plain inputs the pipeline fills from the API objects;
- `partition`: qubits to linked nodes with few Bell pairs (`partition`, `naive_partition`);
- `teleport`: nonlocal gates by cat-entanglement, one co-simulated program (`compile_teleport`);
- `cutting`: circuit knitting with qiskit-addon-cutting (`plan_cut`, `CutPlan.reconstruct`);
- `cut_distribution`: output distributions, marginals and top-k outcomes knitted from a cut
  (`plan_cut_distribution`, `knit`, `top_outcomes`);
- `strategies`: estimates for single / teleport / cut and the `auto` rule (`choose`);
- `fidelity`, `estimate`: the survival-probability model every estimate shares.

Everything here is pure: no Kubernetes, no network, no clocks.
"""
