"""Speed measurements of mel_tf (JSON results in benchmarks/results/); run from the
repository root as `python -m benchmarks.<name>`."""
