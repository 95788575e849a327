"""A single-node Slurm on this machine for the tests: munge, slurmctld and slurmd
from Debian's packages, in a temporary folder, on free ports, torn down after."""

import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Dict, List, Optional

import debian_packages

PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge")
BINARIES = ("slurmctld", "slurmd", "sbatch", "sinfo", "munged", "mungekey")


def ensure_installed() -> Optional[str]:
    """Install Debian's Slurm where it is missing and this may; the reason it
    cannot be had otherwise (None: ready)."""
    return debian_packages.ensure(PACKAGES, BINARIES)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SlurmCluster:
    """``with SlurmCluster(folder, nodes) as c:`` runs a controller and ``nodes``
    slurmd on this machine (its CPUs and 80% of its memory shared out among them,
    each on its own port); ``c.env`` points Slurm's commands at it."""

    def __init__(self, root: Path, nodes: int = 1):
        self.root = Path(root)
        self.nodes = nodes
        self.procs: List[subprocess.Popen] = []
        self.env: Dict[str, str] = {}

    def __enter__(self) -> "SlurmCluster":
        r = self.root
        for d in ("state", "munge", *(f"spool{i}" for i in range(self.nodes))):
            (r / d).mkdir(parents=True, exist_ok=True)
        key, sock = r / "munge" / "munge.key", r / "munge" / "munge.sock"
        subprocess.run(["mungekey", "-c", "-k", str(key), "-b", "1024"], check=True)
        key.chmod(0o600)
        # munged daemonizes; --force: it runs as root here
        subprocess.run(["munged", "--force", f"--socket={sock}", f"--key-file={key}",
                        f"--pid-file={r / 'munge' / 'munged.pid'}",
                        f"--log-file={r / 'munge' / 'munged.log'}",
                        f"--seed-file={r / 'munge' / 'seed'}"], check=True)
        host = socket.gethostname().split(".")[0]  # slurmctld checks it is this host
        mem_mb = int(int(open("/proc/meminfo").read().split()[1]) / 1024 * 0.8 / self.nodes)
        cpus = max(1, (os.cpu_count() or 1) // self.nodes)
        names = [f"node{i}" for i in range(self.nodes)]
        conf = r / "slurm.conf"
        conf.write_text("\n".join([
            "ClusterName=espnet_wavenet_test",
            f"SlurmctldHost={host}(127.0.0.1)",
            "SlurmUser=root", "SlurmdUser=root",
            "AuthType=auth/munge", f"AuthInfo=socket={sock}", "CredType=cred/munge",
            # %n: the node's name (several slurmd on one host)
            f"StateSaveLocation={r / 'state'}", f"SlurmdSpoolDir={r / 'spool%n'}",
            f"SlurmctldPidFile={r / 'slurmctld.pid'}", f"SlurmdPidFile={r / 'slurmd.%n.pid'}",
            f"SlurmctldLogFile={r / 'slurmctld.log'}", f"SlurmdLogFile={r / 'slurmd.%n.log'}",
            f"SlurmctldPort={_free_port()}",
            # no cgroups in a container: plain process tracking
            "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none",
            "SchedulerType=sched/backfill", "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core", "ReturnToService=2", "MpiDefault=none",
            "JobCompType=jobcomp/none", "JobAcctGatherType=jobacct_gather/none",
            # keep finished jobs' records (the cluster lives for one test): sbatch --wait
            # then polls every 2 s instead of backing off to 32 s, ~1 min a stage here
            "MinJobAge=0",
            "AccountingStorageType=accounting_storage/none",
            *(f"NodeName={n} NodeAddr=127.0.0.1 Port={_free_port()} CPUs={cpus} "
              f"RealMemory={mem_mb}" for n in names),
            f"PartitionName=test Nodes={','.join(names)} Default=YES MaxTime=INFINITE State=UP",
        ]) + "\n")
        self.env = dict(os.environ, SLURM_CONF=str(conf))
        for cmd in (["slurmctld", "-D", "-f", str(conf)],
                    *(["slurmd", "-D", "-N", n, "-f", str(conf)] for n in names)):
            self.procs.append(subprocess.Popen(cmd, env=self.env, stdout=subprocess.DEVNULL,
                                               stderr=subprocess.STDOUT))
        deadline = time.time() + 60
        while time.time() < deadline:
            state = subprocess.run(["sinfo", "-h", "-N", "-o", "%t"], env=self.env,
                                   capture_output=True, text=True).stdout.split()
            if state == ["idle"] * self.nodes:
                return self
            time.sleep(0.5)
        self.__exit__(None, None, None)
        raise RuntimeError(f"the test Slurm did not come up (node state {state!r}); see "
                           f"{r / 'slurmctld.log'} and {r / 'slurmd.*.log'}")

    def log(self) -> str:
        return (self.root / "slurmctld.log").read_text(errors="replace")

    def __exit__(self, *exc) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        pid = self.root / "munge" / "munged.pid"
        if pid.is_file():
            try:
                os.kill(int(pid.read_text().strip()), 15)
            except (ProcessLookupError, ValueError):
                pass
