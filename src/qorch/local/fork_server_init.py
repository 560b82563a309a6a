"""Imported by the fork server that `qorch run` forks its agents from (`fork_server.
start_forkserver`), first of all, and by nothing else: never import it elsewhere.

- The server ends when the run does, however it ends: it is tied to the run's life (as
  agents are to the server's), for the run starts it before its own imports, before it
  can answer a signal by stopping what it started. A normal interpreter exit would first
  tear down the modules it imported for the agents (Qiskit, Aer, NumPy: 0.2 s), with the
  run's stdout and stderr still open in it, and a caller reading them to their end
  (`subprocess.run`, a pipe into `tee`) would wait for that too. Its agents exit through
  os._exit as well.
- A Ctrl-C, a hang-up or a SIGTERM sent to the process group reaches the server too: it
  must not end it while it starts or imports (multiprocessing's server ignores SIGINT only
  after), nor end it at all, which would SIGKILL the agents past their own shutdown. They
  are blocked from its start (`fork_server.start_forkserver`), ignored here, then unblocked.
  The server ends with the run; the run stops its agents, and each answers those signals
  again (`fork_server.AGENT_SIGNALS`)."""

import atexit
import gc
import os
import signal

from qorch.local.fork_server import PARENT_VARIABLE
from qorch.process_ties import die_with_parent

die_with_parent(int(os.environ.pop(PARENT_VARIABLE, os.getppid())))
atexit.register(os._exit, 0)
gc.disable()  # it imports, then forks: see qorch.import_collector; each agent turns it on
_RUN_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
for signum in _RUN_SIGNALS:
    signal.signal(signum, signal.SIG_IGN)  # one sent before is discarded, not delivered
signal.pthread_sigmask(signal.SIG_UNBLOCK, _RUN_SIGNALS)
