"""A real one-node Slurm cluster (Debian's slurmctld, slurmd, slurm-client and munge), started and
stopped by this test: scripts/slurm/train.sbatch runs hf-train as 2 tasks, is preempted with USR1
mid-run (scancel --batch reaches the batch shell, which forwards it to the tasks), requeues itself,
and its final model equals an uninterrupted 2-rank run's byte for byte; scripts/slurm/pipeline.sh
submits preprocess -> train -> gate -> publish as a dependency chain that publishes a complete
version, and a missed gate cancels the publish job. One cluster serves both tests. Skipped with the
reason where the packages cannot be installed (or the test is not root: the daemons run as root)."""
import atexit
import functools
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time

from hfkit_testlib import (AMAZON, BIN, SRC, TINY_YAML, Skip, complete_checkpoints, main, make_tiny_bert, read, run,
                           tokenize_amazon, tool, wait_for)

TRAIN = tool("hf-train")
PRE = tool("hf-preprocess")
LAUNCH = os.path.join(SRC, "scripts", "launch-local.sh")
SBATCH_SCRIPT = os.path.join(SRC, "scripts", "slurm", "train.sbatch")
SLURM_PIPELINE = os.path.join(SRC, "scripts", "slurm", "pipeline.sh")
# The node has no GPU: the train job's own flags override the script's --gpus-per-task=1.
CPU_TASKS = ["--ntasks=2", "--ntasks-per-node=2", "--cpus-per-task=1", "--gpus-per-task=0"]
PACKAGES = ["slurmctld", "slurmd", "slurm-client", "munge"]

WORK = tempfile.mkdtemp(prefix="hfkit-slurm-test-")
TINY = os.path.join(WORK, "tiny")
DATA = os.path.join(WORK, "data")
ARGS = ["--threads", "1", "--learning-rate", "0.001", "--warmup-steps", "2", "--logging-steps", "5",
        "--eval-strategy", "steps", "--eval-steps", "10", "--save-steps", "5", "--max-steps", "40",
        "--per-device-train-batch-size", "8", "--per-device-eval-batch-size", "32", "--ddp-timeout", "60"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def install():
    def installed(p):
        q = subprocess.run(["dpkg-query", "-W", "-f=${Status}", p], capture_output=True, text=True)
        return "install ok installed" in q.stdout
    if shutil.which("dpkg-query") is None:
        raise Skip("not a Debian system (no dpkg-query)")
    if os.geteuid() != 0:
        raise Skip("the Slurm and munge daemons run as root here; this test is not root")
    missing = [p for p in PACKAGES if not installed(p)]
    if missing:
        p = subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
                           env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"), capture_output=True, text=True)
        if p.returncode != 0:
            raise Skip(f"cannot install {' '.join(missing)}: {(p.stderr.strip().splitlines() or ['?'])[-1]}")


class Cluster:
    """munged + slurmctld + slurmd under one temp dir, each in its own session, stopped by PID."""

    def __init__(self):
        self.root = tempfile.mkdtemp(prefix="hfkit-slurm-")
        self.procs = []

    def spawn(self, name, args):
        log = open(os.path.join(self.root, f"{name}.out"), "w")
        self.procs.append(subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))

    def start(self):
        r = self.root
        sock_dir, key_dir = os.path.join(r, "munge"), os.path.join(r, "munge-key")
        os.makedirs(sock_dir, 0o755)
        os.makedirs(key_dir, 0o700)
        os.chmod(sock_dir, 0o755)
        key = os.path.join(key_dir, "munge.key")
        with open(key, "wb") as f:
            f.write(os.urandom(1024))
        os.chmod(key, 0o400)
        sock = os.path.join(sock_dir, "munge.socket.2")
        self.spawn("munged", ["munged", "-F", "-f", f"--socket={sock}", f"--key-file={key}",
                              f"--pid-file={r}/munged.pid", f"--log-file={r}/munged.log", f"--seed-file={r}/munged.seed"])
        deadline = time.time() + 20
        while not os.path.exists(sock):
            assert time.time() < deadline, read(os.path.join(r, "munged.out"), "r")
            time.sleep(0.05)
        node = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True).stdout.splitlines()[0]
        self.host = re.search(r"NodeName=(\S+)", node).group(1)
        for d in ("state", "spool"):
            os.makedirs(os.path.join(r, d))
        conf = os.path.join(r, "slurm.conf")
        with open(conf, "w") as f:
            f.write(f"""ClusterName=hfkit
SlurmctldHost={self.host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={sock}
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
StateSaveLocation={r}/state
SlurmdSpoolDir={r}/spool
SlurmctldPidFile={r}/slurmctld.pid
SlurmdPidFile={r}/slurmd.pid
SlurmctldLogFile={r}/slurmctld.log
SlurmdLogFile={r}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
SchedulerParameters=batch_sched_delay=0,sched_interval=5
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MinJobAge=600
{node} NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=main Nodes={self.host} Default=YES MaxTime=INFINITE State=UP
""")
        self.env = dict(os.environ, SLURM_CONF=conf)
        self.spawn("slurmctld", ["slurmctld", "-D", "-f", conf])
        self.spawn("slurmd", ["slurmd", "-D", "-f", conf])
        deadline = time.time() + 30
        while True:
            q = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, env=self.env)
            if q.stdout.strip() == "idle":
                break
            assert time.time() < deadline, (q.stdout, q.stderr, self.logs())
            time.sleep(0.2)

    def logs(self):
        out = ""
        for name in ("slurmctld.log", "slurmd.log", "munged.log"):
            p = os.path.join(self.root, name)
            if os.path.exists(p):
                out += f"--- {name}\n" + "".join(open(p, errors="replace").readlines()[-20:])
        return out

    def job(self, job_id):
        q = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True, env=self.env)
        return dict(re.findall(r"(\w+)=(\S*)", q.stdout))

    def stop(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


@functools.cache
def cluster():
    """The cluster both tests share: started on first use, stopped when the test process exits."""
    install()
    c = Cluster()
    atexit.register(c.stop)
    t0 = time.time()
    c.start()
    print(f"  cluster up in {time.time() - t0:.1f} s")
    return c


def test_sbatch_preempted_with_usr1_requeues_and_ends_as_an_uninterrupted_run():
    slurm = cluster()
    make_tiny_bert(TINY)
    tokenize_amazon(PRE, TINY, DATA)
    ref = os.path.join(WORK, "reference")
    run([LAUNCH, "2", "--", TRAIN, "--model", TINY, "--data", DATA, "--output-dir", ref, *ARGS], check=0,
        env={"MASTER_PORT": str(free_port())})
    runs = os.path.join(WORK, "runs")
    env = dict(slurm.env, HFKIT_BIN=BIN if os.path.isabs(BIN) else os.path.abspath(BIN), HFKIT_RUNS=runs,
               HFKIT_GPU_CHECK="0")
    p = subprocess.run(["sbatch", "--parsable", *CPU_TASKS, f"--output={WORK}/job-%j.out", SBATCH_SCRIPT,
                        "--model", TINY, "--data", DATA, *ARGS],
                       capture_output=True, text=True, env=env, cwd=WORK)
    assert p.returncode == 0, (p.stderr, slurm.logs())
    job = p.stdout.strip().split(";")[0]
    out = os.path.join(runs, job, "model")
    deadline = time.time() + 300
    while 5 not in complete_checkpoints(out):
        state = slurm.job(job).get("JobState")
        assert time.time() < deadline and state in ("PENDING", "RUNNING", "CONFIGURING"), (state, slurm.logs())
        time.sleep(0.05)
    subprocess.run(["scancel", "--batch", "--signal=USR1", job], check=True, env=slurm.env)
    deadline = time.time() + 600
    hurried = False
    while True:
        info = slurm.job(job)
        if info.get("JobState") == "COMPLETED":
            break
        if info.get("JobState") == "PENDING" and info.get("Reason") == "BeginTime" and not hurried:
            hurried = True
            # Slurm holds a requeued job back for a while; the test waits a few seconds only
            # (started at once, the old run's credential is still revoked and the job fails).
            subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now+5"], env=slurm.env)
        assert time.time() < deadline and info.get("JobState") not in ("FAILED", "CANCELLED", "TIMEOUT"), \
            (info, read(f"{WORK}/job-{job}.out", "r")[-3000:], slurm.logs())
        time.sleep(0.2)
    log = read(f"{WORK}/job-{job}.out", "r")
    print(f"  job {job}: restarts {info.get('Restarts')}")
    assert int(info.get("Restarts", "0")) >= 1, log[-3000:]
    assert "stopped by signal 10" in log and "resuming from" in log, log[-3000:]
    assert read(os.path.join(out, "model.safetensors")) == read(os.path.join(ref, "model.safetensors"))
    state = json.load(open(os.path.join(out, "trainer_state.json")))
    assert state["global_step"] == 40


def submit_pipeline(slurm, name, gate):
    """scripts/slurm/pipeline.sh on the tiny model with a local registry: {step: job id}."""
    base = os.path.join(WORK, "pipeline-base")
    if not os.path.exists(base):
        make_tiny_bert(base, "--labels", "negative,positive")
    env = dict(slurm.env, HFKIT_BIN=os.path.abspath(BIN), HFKIT_GPU_CHECK="0", PIPELINE_INPUTS=AMAZON,
               PIPELINE_BASE_MODEL=base, PIPELINE_RUN_DIR=os.path.join(WORK, name), PIPELINE_TRAIN_CONFIG=TINY_YAML,
               PIPELINE_TRAIN_ARGS="--max-steps 6 --threads 1 --ddp-timeout 60", PIPELINE_MAX_LENGTH="64",
               PIPELINE_GATE=gate, PIPELINE_REGISTRY=os.path.join(WORK, f"{name}-registry"),
               PIPELINE_NAME="sentiment", PIPELINE_VERSION="v1")
    p = subprocess.run(["bash", SLURM_PIPELINE, "--", *CPU_TASKS], capture_output=True, text=True, env=env, cwd=WORK)
    assert p.returncode == 0, (p.stdout, p.stderr, slurm.logs())
    jobs = dict(line.split() for line in p.stdout.splitlines())
    assert list(jobs) == ["preprocess", "train", "gate", "publish"], p.stdout
    return jobs


def wait_all(slurm, jobs, timeout=600):
    """Waits until every job has ended; returns {step: JobState}. A job still pending on a dependency
    that can never be met 30 s after Slurm said so reads "NEVER" (--kill-on-invalid-dep cancels it
    on the scheduler's next pass; without it, it would wait forever)."""
    deadline = time.time() + timeout
    never_since = {}
    while True:
        states = {}
        for step, job in jobs.items():
            info = slurm.job(job)
            states[step] = info.get("JobState")
            if states[step] == "PENDING" and info.get("Reason") == "DependencyNeverSatisfied":
                if time.time() - never_since.setdefault(step, time.time()) > 30:
                    states[step] = "NEVER"
        if all(s in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NEVER") for s in states.values()):
            return states
        assert time.time() < deadline, (states, slurm.logs())
        time.sleep(0.2)


def test_slurm_pipeline_chain_publishes_and_a_missed_gate_cancels_publish():
    slurm = cluster()
    passing = submit_pipeline(slurm, "nightly", "accuracy=0.0")
    missed = submit_pipeline(slurm, "gated", "accuracy=1.01")
    states = wait_all(slurm, passing)
    logs = {s: read(os.path.join(WORK, "nightly", f"slurm-{s}-{j}.out"), "r")[-2000:]
            for s, j in passing.items() if os.path.exists(os.path.join(WORK, "nightly", f"slurm-{s}-{j}.out"))}
    assert set(states.values()) == {"COMPLETED"}, (states, logs)
    # Each step ran in its own job: the train job's ranks wrote the model, the gate job judged it.
    assert json.load(open(os.path.join(WORK, "nightly", "train", passing["train"], "model",
                                       "trainer_state.json")))["global_step"] == 6
    manifest = json.load(open(os.path.join(WORK, "nightly-registry", "sentiment", "v1", "manifest.json")))
    for key in ["data_sha256", "tokenizer_sha256", "training_config", "eval_metrics", "parent_model", "files"]:
        assert manifest.get(key), (key, manifest)
    assert read(os.path.join(WORK, "nightly-registry", "sentiment", "latest"), "r") == "v1\n"

    states = wait_all(slurm, missed)
    assert states["train"] == "COMPLETED" and states["gate"] == "FAILED", states
    assert states["publish"] == "CANCELLED", states  # --kill-on-invalid-dep: afterok can never be met
    assert not os.path.exists(os.path.join(WORK, "gated-registry", "sentiment")), states


if __name__ == "__main__":
    main(globals())
