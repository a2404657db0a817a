"""Data-parallel hf-train: 2 ranks over Gloo on loopback, started by scripts/launch-local.sh or by
this script with torchrun-style variables. A 2-rank run ends with the parameters of a 1-rank run
with the same global batch (within 1e-5) and a 2-rank evaluation equals a 1-rank one; both ranks
killed with SIGKILL and resumed end byte-identical to an uninterrupted 2-rank run; a rank killed
mid-run makes the other exit non-zero within --ddp-timeout with one line naming it; SIGUSR1 on one
rank stops both at the same step with exit 75, and --resume auto continues to the same end."""
import json
import os
import signal
import socket
import subprocess
import tempfile
import time

import numpy as np

from hfkit_testlib import (SRC, complete_checkpoints, jsonl, main, make_tiny_bert, run, same_training,
                           tokenize_amazon, tool, wait_for)

TRAIN = tool("hf-train")
PRE = tool("hf-preprocess")
LAUNCH = os.path.join(SRC, "scripts", "launch-local.sh")

WORK = tempfile.mkdtemp(prefix="hfkit-ddp-test-")
TINY = os.path.join(WORK, "tiny")          # dropout on: every rank draws its own masks
TINY_NODROP = os.path.join(WORK, "tiny0")  # no dropout: 1 rank x 16 and 2 ranks x 8 see the same maths
DATA = os.path.join(WORK, "data")          # amazon.jsonl: 800 / 100 / 100

# One thread per rank (2 ranks on the 2-core machine), so every float sum runs in one order.
COMMON = ["--threads", "1", "--learning-rate", "0.001", "--warmup-steps", "2", "--weight-decay", "0.01",
          "--logging-steps", "5", "--eval-strategy", "steps", "--eval-steps", "10", "--save-steps", "5",
          "--per-device-eval-batch-size", "32"]
RESUME_ARGS = [*COMMON, "--max-steps", "30", "--per-device-train-batch-size", "8", "--ddp-timeout", "60"]


def setup():
    make_tiny_bert(TINY)
    make_tiny_bert(TINY_NODROP, "--set", "hidden_dropout_prob=0", "--set", "attention_probs_dropout_prob=0", seed=1)
    tokenize_amazon(PRE, TINY, DATA)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def hf_train(out, *args, model=TINY):
    return [TRAIN, "--model", model, "--data", DATA, "--output-dir", out, *args]


def launch(n, out, *args, model=TINY, check=0):
    """scripts/launch-local.sh n -- hf-train ...; returns the CompletedProcess."""
    return run([LAUNCH, str(n), "--", *hf_train(out, *args, model=model)], check=check,
               env={"MASTER_PORT": str(free_port())})


def start_ranks(n, out, *args, model=TINY):
    """The ranks as separate processes this test can signal one by one (torchrun's variables)."""
    port = str(free_port())
    procs = []
    for r in range(n):
        env = dict(os.environ, RANK=str(r), WORLD_SIZE=str(n), LOCAL_RANK=str(r), LOCAL_WORLD_SIZE=str(n),
                   MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
        procs.append(subprocess.Popen(hf_train(out, *args, model=model), env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    return procs


def finish(procs, timeout=300):
    """(exit codes, stderr texts) of all ranks."""
    errs = [p.communicate(timeout=timeout)[1] for p in procs]
    return [p.returncode for p in procs], errs


def weights(out):
    from safetensors.numpy import load_file
    return load_file(os.path.join(out, "model.safetensors"))


def eval_numbers(out):
    rec = json.load(open(os.path.join(out, "eval_results.json")))
    return {k: v for k, v in rec.items() if not k.endswith(("runtime", "per_second"))}


_reference = {}


def reference_run():
    """The uninterrupted 2-rank run the resume tests compare against (made once)."""
    if not _reference:
        out = os.path.join(WORK, "reference")
        p = launch(2, out, *RESUME_ARGS)
        assert "global batch 16 = 8 per device x 2 ranks x 1 accumulation" in p.stderr, p.stderr
        # Rank 1 keeps to warnings (HF's log_level_replica default); rank 0 logs for the job.
        assert "rank 0 of 2" in p.stderr and "rank 1 of 2" not in p.stderr, p.stderr
        results = json.load(open(os.path.join(out, "train_results.json")))
        assert results["ddp_allreduce_seconds_per_step"] > 0, results
        _reference["dir"] = out
    return _reference["dir"]


def test_two_ranks_equal_one_rank_with_the_same_global_batch():
    """Bit-equality is not expected: each rank pads its half batch to its own longest example and
    sums its half of the batch in backward; the all-reduce adds the two halves; and the losses are
    weighted per rank before the sum. The same maths in other float orders: agreement within 1e-5."""
    one, two = os.path.join(WORK, "one"), os.path.join(WORK, "two")
    args = [*COMMON, "--max-steps", "20", "--group-by-length", "--ddp-timeout", "60"]
    run(hf_train(one, *args, "--per-device-train-batch-size", "16", model=TINY_NODROP), check=0)
    p = launch(2, two, *args, "--per-device-train-batch-size", "8", "--log-level-replica", "info", model=TINY_NODROP)
    assert "rank 1 of 2" in p.stderr, p.stderr
    a, b = weights(one), weights(two)
    assert a.keys() == b.keys()
    worst = max(float(np.max(np.abs(a[k] - b[k]))) for k in a)
    print(f"  largest parameter difference 1 rank vs 2 ranks: {worst:.3g}")
    assert worst < 1e-5, worst
    assert max(float(np.max(np.abs(a[k]))) for k in a) > 0.01  # not trivially equal
    # The same steps were logged (loss within float noise), and only rank 0 wrote.
    ma, mb = jsonl(os.path.join(one, "metrics.jsonl")), jsonl(os.path.join(two, "metrics.jsonl"))
    assert [r["step"] for r in ma] == [r["step"] for r in mb]
    for ra, rb in zip(ma, mb):
        for k in ("loss", "eval_loss"):
            if k in ra:
                assert abs(ra[k] - rb[k]) < 1e-5, (ra, rb)
    # Sharded evaluation: 1 rank evaluating the 2-rank checkpoint gives the 2-rank numbers exactly
    # (the resume with another world size warns and continues at the same step).
    again = os.path.join(WORK, "one-from-two")
    p = run(hf_train(again, *args, "--per-device-train-batch-size", "16", "--resume",
                     os.path.join(two, "checkpoint-20"), model=TINY_NODROP), check=0)
    assert "written by 2 rank(s), this run has 1" in p.stderr, p.stderr
    assert eval_numbers(again) == eval_numbers(two), (eval_numbers(again), eval_numbers(two))


def test_sigkill_of_both_ranks_and_resume_is_byte_identical():
    ref = reference_run()
    out = os.path.join(WORK, "killed")
    resumed = []
    for kill_after in (5, 15):
        procs = start_ranks(2, out, *RESUME_ARGS, "--resume", "auto")
        assert wait_for(lambda: kill_after in complete_checkpoints(out), procs[0], timeout=300)
        time.sleep(0.3)  # into the next steps
        for p in procs:
            p.send_signal(signal.SIGKILL)
        codes, errs = finish(procs)
        assert codes == [-signal.SIGKILL] * 2, (codes, errs[0][-2000:])
        resumed.append(complete_checkpoints(out)[-1])
    p = launch(2, out, *RESUME_ARGS, "--resume", "auto")
    assert f"resuming from {out}/checkpoint-{resumed[-1]}" in p.stderr, p.stderr
    print(f"  killed after checkpoints {resumed}")
    same_training(out, ref)


def test_a_killed_rank_makes_the_others_fail_within_the_timeout():
    for victim, survivor in [(1, 0), (0, 1)]:
        out = os.path.join(WORK, f"lost-{victim}")
        procs = start_ranks(2, out, *COMMON, "--max-steps", "400", "--per-device-train-batch-size", "8",
                            "--ddp-timeout", "20")
        assert wait_for(lambda: 5 in complete_checkpoints(out), procs[0], timeout=300), procs[0].communicate()[1]
        procs[victim].send_signal(signal.SIGKILL)
        t0 = time.time()
        try:
            err = procs[survivor].communicate(timeout=60)[1]
        except subprocess.TimeoutExpired:
            procs[survivor].kill()
            raise AssertionError(f"rank {survivor} still running 60 s after rank {victim} was killed")
        procs[victim].communicate()
        waited = time.time() - t0
        code = procs[survivor].returncode
        lines = [l for l in err.splitlines() if "error:" in l]
        print(f"  rank {victim} killed: rank {survivor} exited {code} after {waited:.1f} s: {lines}")
        assert code == 69, (code, err[-2000:])
        assert waited < 20 + 10, waited
        assert len(lines) == 1 and f"lost rank {victim}" in lines[0], err[-2000:]


def test_sigusr1_on_one_rank_stops_all_with_75_and_resume_continues():
    ref = reference_run()
    out = os.path.join(WORK, "usr1")
    procs = start_ranks(2, out, *RESUME_ARGS)
    assert wait_for(lambda: 5 in complete_checkpoints(out), procs[0], timeout=300)
    procs[1].send_signal(signal.SIGUSR1)
    codes, errs = finish(procs)
    assert codes == [75, 75], (codes, errs[0][-2000:], errs[1][-2000:])
    assert f"stopped by signal {int(signal.SIGUSR1)} on rank 1" in errs[0], errs[0]
    assert not [line for line in errs[1].splitlines() if ": info: " in line], errs[1]
    newest = complete_checkpoints(out)[-1]
    state = json.load(open(os.path.join(out, f"checkpoint-{newest}", "trainer_state.json")))
    assert state["global_step"] == newest and 5 <= newest < 30, newest
    assert state["hfkit"]["world_size"] == 2
    # The launcher forwards a signal to every rank and exits with their code.
    port = str(free_port())
    p = subprocess.Popen([LAUNCH, "2", "--", *hf_train(out, *RESUME_ARGS, "--resume", "auto")],
                         env=dict(os.environ, MASTER_PORT=port), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    assert wait_for(lambda: complete_checkpoints(out)[-1] > newest, p, timeout=300)
    p.send_signal(signal.SIGTERM)
    err = p.communicate(timeout=300)[1]
    assert p.returncode == 75, (p.returncode, err[-2000:])
    launch(2, out, *RESUME_ARGS, "--resume", "auto")
    same_training(out, ref)


def test_launcher_usage_and_worst_exit_code():
    p = run([LAUNCH, "x", "--", "true"], check=64)
    assert "N must be a positive integer" in p.stderr
    run([LAUNCH, "2"], check=64)
    # Rank 1 fails with 65, rank 0 succeeds: the worst code wins.
    p = run([LAUNCH, "2", "--", "sh", "-c", 'test "$RANK" = 1 && exit 65; exit 0'], check=65)
    p = run([LAUNCH, "2", "--", "sh", "-c", 'test "$RANK" = 0 && exit 75; exit 3'], check=3)
    p = run([LAUNCH, "3", "--", "sh", "-c", 'echo "$RANK/$WORLD_SIZE/$LOCAL_RANK/$MASTER_ADDR"'], check=0)
    assert sorted(p.stdout.split()) == ["0/3/0/127.0.0.1", "1/3/1/127.0.0.1", "2/3/2/127.0.0.1"], p.stdout


if __name__ == "__main__":
    setup()
    main(globals())
