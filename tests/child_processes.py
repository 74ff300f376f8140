"""For tests that stop a child process with Ctrl-C (SIGINT)."""

import signal


def default_sigint() -> None:
    """`preexec_fn` of such a child: a shell starts background jobs with SIGINT ignored, and a child inherits
    that, so under `pytest &` (or nohup) the signal would never reach the child's handler."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
