"""A two-size, two-objective scratch grid on the real shared data, seconds to run (importable)."""

TINY = """
[study]
name = "tiny"

[data]
train_collection = "cranfield"
data_root = "{shared}"
cache_dir = "{cache}"

[[eval]]
name = "cranfield-test"
collection = "cranfield"
split = "test"
max_queries = 4
in_domain = true

[[eval]]
name = "cisi"
collection = "{shared}/beir/cisi"
max_queries = 3

[candidates]
k = 20
rerank_k = 8

[grid]
ladder = "scratch"
sizes = ["L1-H64", "L2-H128"]
budgets = [10]
objectives = ["pointwise", "listwise"]
seeds = [0]

[train]
steps = {steps}
batch_size = 2
n_negatives = 3
max_length = 48
eval_every = 2
ce_negatives = 4
lr = 1e-3
warmup_steps = 1

[hardware]
workers = 1
threads_per_worker = 1
"""
