"""A child process that is held before it executes its command, until its parent releases it:
the parent can record the child's pid while the command cannot have started, so cannot have
ended either (a command that exits at once would otherwise be gone before anyone hears of it).

The child is started as `subprocess.Popen` starts one (the same signal dispositions, no file
descriptor but 0, 1 and 2 inherited, the command looked up on the given environment's PATH),
except that the parent learns its pid first and a failure to execute comes from `release`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
from collections.abc import Callable, Mapping, Sequence
from types import FrameType
from typing import Any, NoReturn

_PYTHON_IGNORED = tuple(
    getattr(signal, name) for name in ("SIGPIPE", "SIGXFZ", "SIGXFSZ") if hasattr(signal, name)
)
"""Signals Python ignores for itself; a command gets their default actions back."""
_GO = b"g"
_EXIT_NOT_RUN = 127
"""The held child's status when its command never ran (not released, or no exec)."""

SignalHandler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None


class HeldChild:
    """`command` forked and held, with the `forwarded` signals this process gets sent on to
    it from the moment it exists (they are blocked around the fork, so none is lost or met
    by the wrong handler) until `close`; while held, the child meets them with their default
    actions, as the command would. `close` it in the end (`contextlib.closing`)."""

    def __init__(
        self,
        command: Sequence[str],
        env: Mapping[str, str],
        forwarded: Sequence[signal.Signals] = (),
    ) -> None:
        if not command:
            raise ValueError("command must not be empty")
        self.returncode: int | None = None
        self._previous: dict[signal.Signals, SignalHandler] = {}
        gate_read, self._gate = os.pipe()
        self._errors, errors_write = os.pipe()
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, forwarded)
        pid = -1
        try:
            pid = os.fork()
            if pid == 0:
                os.close(self._gate)
                os.close(self._errors)
                _exec_when_released(list(command), dict(env), forwarded, gate_read, errors_write)
            self._previous = {sig: signal.signal(sig, self._forward) for sig in forwarded}
        except BaseException:
            os.close(self._gate)
            os.close(self._errors)
            if pid > 0:  # the child finds the gate closed and ends
                os.waitpid(pid, 0)
            raise
        finally:
            os.close(gate_read)
            os.close(errors_write)
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        self.pid = pid

    def release(self) -> None:
        """Let the child execute its command. The OSError that execution failed with
        (FileNotFoundError, PermissionError, ...) is raised here, the child reaped."""
        if self._gate < 0:
            return
        with contextlib.suppress(BrokenPipeError):  # it died of a signal while held
            os.write(self._gate, _GO)
        self._close_gate()
        with open(self._errors, "rb") as pipe:  # a successful exec closes the child's end
            failure = pipe.read()
        if failure:
            self.wait()
            number = int(failure)
            raise OSError(number, os.strerror(number))

    def send_signal(self, signum: int) -> None:
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    def wait(self) -> int:
        """The exit status, as `Popen.returncode` gives it: -N for a death by signal N."""
        if self.returncode is None:
            _, status = os.waitpid(self.pid, 0)
            self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def close(self) -> None:
        """Stop forwarding signals; a child never released does not run its command and is
        reaped."""
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}
        if self._gate >= 0:
            self._close_gate()
            os.close(self._errors)
            self.wait()

    def _forward(self, signum: int, _frame: FrameType | None) -> None:
        self.send_signal(signum)

    def _close_gate(self) -> None:
        """The child reads the go ahead if it was written, else the end of the pipe."""
        os.close(self._gate)
        self._gate = -1


def _exec_when_released(
    command: list[str],
    env: dict[str, str],
    forwarded: Sequence[signal.Signals],
    gate: int,
    errors: int,
) -> NoReturn:
    """The child's side: wait for the parent, then become the command; it never returns into
    the parent's code. A failed exec is reported as its errno through `errors`."""
    try:
        for signum in forwarded:
            if signal.getsignal(signum) is not signal.SIG_IGN:
                signal.signal(signum, signal.SIG_DFL)
        for signum in _PYTHON_IGNORED:
            signal.signal(signum, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, forwarded)
        released = os.read(gate, 1) == _GO  # end of file: the parent gave up, or is gone
        os.close(gate)
        if released:
            os.closerange(3, errors)
            os.closerange(errors + 1, os.sysconf("SC_OPEN_MAX"))
            os.execvpe(command[0], command, env)
    except OSError as error:
        os.write(errors, str(error.errno or errno.ENOEXEC).encode())
    finally:
        os._exit(_EXIT_NOT_RUN)
