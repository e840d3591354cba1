"""Evaluation: encode and rank, retrieval metrics, rival probes, pooling runs over seeds, cost and throughput.

Public API: ``encode.encode_split``; ``evaluate.evaluate``; ``metrics.prvr_metrics``; ``probes.rival_probes``;
``seed_pooling.pool``; ``timing.median_seconds``; ``cost.parameter_counts`` / ``encode_ratios``; ``bench.bench``.
"""
