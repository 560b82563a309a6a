"""Imported by the fork server that `qorch run` forks its agents from (`agents.
start_forkserver`), first of all, and by nothing else: never import it elsewhere.

- The server ends when the run does. A normal interpreter exit would first tear down the
  modules it imported for the agents (Qiskit, Aer, NumPy: 0.2 s), with the run's stdout and
  stderr still open in it, and a caller reading them to their end (`subprocess.run`, a pipe
  into `tee`) would wait for that too. Its agents exit through os._exit as well.
- A Ctrl-C reaches the whole process group: it must not end the server while it imports,
  which multiprocessing's server only guards against afterwards. The run stops its agents
  itself, and each agent answers SIGINT again (`agents._run_forked`)."""

import atexit
import os
import signal

atexit.register(os._exit, 0)
signal.signal(signal.SIGINT, signal.SIG_IGN)
