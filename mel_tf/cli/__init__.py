"""The command-line programs (absl flags live here and nowhere else in the package).

    mel-train     mel_tf.cli.train       (python train.py)
    mel-export    mel_tf.cli.export      (python export.py)
    mel-generate  mel_tf.cli.generate    (python generate.py)
    mel-evaluate  mel_tf.cli.evaluate    (python evaluate.py)

The console scripts are declared in setup.py; the top-level scripts are thin wrappers.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Callable, List, NoReturn, Optional

from mel_tf.errors import one_line

# mel_tf's own log lines on stderr: the time, then the message.
LOG_FORMAT, LOG_TIME_FORMAT = "%(asctime)s %(message)s", "%H:%M:%S"
LOG_LINE = re.compile(r"^\d\d:\d\d:\d\d ")


def run_app(main: Callable, module, argv: Optional[List[str]] = None) -> None:
    """absl's app.run for a program whose flags live in `module`, not in __main__.

    `--help` lists the main module's key flags and prints its docstring; the
    main module is a thin wrapper (train.py) or a console-script stub, so this
    makes `module`'s flags and docstring the ones shown.
    """
    from absl import app, flags

    argv = list(sys.argv if argv is None else argv)
    for flag in flags.FLAGS.get_flags_for_module(module.__name__):
        flags.FLAGS.register_key_flag_for_module(argv[0], flag)
    main_module = sys.modules.get("__main__")
    if main_module is not None:
        main_module.__doc__ = module.__doc__
    app.run(main, argv=argv)


def fail(e: BaseException, status: int = 1) -> NoReturn:
    """Ends the program with `program: error: <the error on one line>` on stderr."""
    print(f"{program_name()}: error: {one_line(e)}", file=sys.stderr)
    sys.exit(status)


def program_name() -> str:
    return os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "mel_tf"
