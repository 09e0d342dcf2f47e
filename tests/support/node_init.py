"""PID 1 of a kubelet test node: prepares the node's private mounts, then reaps orphans until it is killed.

tests/support/node.py runs it as ``unshare --pid --fork --mount-proc --propagation private python3 node_init.py
DIR`` and starts containerd and the kubelet inside its namespaces (nsenter). Everything the node runs, the
containerd shims and the containers included, is then in this PID namespace and every mount it makes is in this
mount namespace: killing this process kills all of them and drops the mounts, so nothing is left on the machine,
even when the test session itself is killed -9. Standard library only: it runs before anything else of the node.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

# The kubelet sets these kernel parameters on start (panic and reboot on an oops, always overcommit); they are not
# namespaced, so it would retune the whole shared machine. Here it reads the values it wants from files mounted
# over them, in this mount namespace only, and leaves the machine's alone.
KUBELET_SYSCTLS = {
    "vm/overcommit_memory": 1,
    "vm/panic_on_oom": 0,
    "kernel/panic": 10,
    "kernel/panic_on_oops": 1,
    "kernel/keys/root_maxkeys": 1000000,
    "kernel/keys/root_maxbytes": 25000000,
}
# containerd keeps its shim sockets under /run/containerd whatever its state dir, and the kubelet links container
# logs into /var/log/containers: both on tmpfs that vanish with the namespace.
PRIVATE_TMPFS = ("/run", "/var/log")
READY_FILE = "ready"


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True)


def main(directory: Path) -> None:
    for target in PRIVATE_TMPFS:
        _mount("-t", "tmpfs", "-o", "mode=0755", "tmpfs", target)
    masks = directory / "sysctl"
    masks.mkdir(exist_ok=True)
    for name, value in KUBELET_SYSCTLS.items():
        mask = masks / name.replace("/", ".")
        mask.write_text(f"{value}\n")
        _mount("--bind", str(mask), f"/proc/sys/{name}")
    (directory / READY_FILE).touch()
    # As PID 1 this process adopts every orphan of the namespace (containerd's shims are daemons): reap them.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
    while True:
        signal.sigwait({signal.SIGCHLD})
        try:
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
        except ChildProcessError:
            pass


if __name__ == "__main__":
    main(Path(sys.argv[1]))
