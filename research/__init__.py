"""Studies of mel_tf against the source and of its settings; run from the repository root
as `python -m research.<name>`."""
