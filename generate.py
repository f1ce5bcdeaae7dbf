"""`python generate.py ...` is `mel-generate ...`: see mel_tf/cli/generate.py."""

from mel_tf.cli.generate import run

if __name__ == "__main__":
    run()
