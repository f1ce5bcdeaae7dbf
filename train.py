"""`python train.py ...` is `mel-train ...`: see mel_tf/cli/train.py."""

from mel_tf.cli.train import run

if __name__ == "__main__":
    run()
