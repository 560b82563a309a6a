"""Imported by the fork server that `qorch run` forks its agents from (`agents.
start_forkserver`), first of all, and by nothing else: never import it elsewhere.

- The server ends when the run does. A normal interpreter exit would first tear down the
  modules it imported for the agents (Qiskit, Aer, NumPy: 0.2 s), with the run's stdout and
  stderr still open in it, and a caller reading them to their end (`subprocess.run`, a pipe
  into `tee`) would wait for that too. Its agents exit through os._exit as well.
- A Ctrl-C, a hang-up or a SIGTERM sent to the process group reaches the server too: it
  must not end it while it imports (multiprocessing's server ignores SIGINT only after), nor
  end it at all, which would SIGKILL the agents past their own shutdown. The server ends
  with the run; the run stops its agents, and each answers those signals again
  (`agents.AGENT_SIGNALS`)."""

import atexit
import os
import signal

atexit.register(os._exit, 0)
for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
    signal.signal(signum, signal.SIG_IGN)
