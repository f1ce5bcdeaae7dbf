"""`python evaluate.py ...` is `mel-evaluate ...`: see mel_tf/cli/evaluate.py."""

from mel_tf.cli.evaluate import run

if __name__ == "__main__":
    run()
