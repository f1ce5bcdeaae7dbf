"""`python export.py ...` is `mel-export ...`: see mel_tf/cli/export.py."""

from mel_tf.cli.export import run

if __name__ == "__main__":
    run()
