"""Deploy without Docker: scripts/sagemaker-serve.sh (the image's `serve`, what `docker run IMAGE
serve` runs) started directly with the model-dir, port and host variables it reads; the image's
HEALTHCHECK command run against it; and the README's Deploy examples (crontab line, CI job, env
file, commands) checked against the flags and variables that really exist."""
import functools
import json
import os
import re
import subprocess
import tempfile

import yaml

from hfkit_testlib import BIN, SRC, main, make_tiny_bert, run, tool
from servelib import Server

WORK = tempfile.TemporaryDirectory(prefix="hfkit-deploy-test-")
SERVE = os.path.join(SRC, "scripts", "sagemaker-serve.sh")
PIPELINE = os.path.join(SRC, "scripts", "pipeline.sh")
SLURM_PIPELINE = os.path.join(SRC, "scripts", "slurm", "pipeline.sh")
# The image puts the binaries on PATH (/opt/hfkit/bin); here the build folder plays that part.
PATH_ENV = {"PATH": f"{os.path.abspath(BIN)}:{os.environ['PATH']}"}


@functools.cache
def tiny():
    out = os.path.join(WORK.name, "tiny")
    make_tiny_bert(out, seed=1)
    return out


def serve(*extra, **env):
    """The script as the image's `serve`, with the container's variables in `env`."""
    clean = {k: "" for k in ["SM_MODEL_DIR", "SAGEMAKER_BIND_TO_PORT", "HFKIT_PORT", "HFKIT_HOST"]}
    return Server(None, cmd=["bash", SERVE, *extra], env={**PATH_ENV, **clean, **env})


def healthcheck_command():
    """The bash command line of Dockerfile.cuda's HEALTHCHECK (exec form: a JSON array)."""
    with open(os.path.join(SRC, "Dockerfile.cuda"), encoding="utf-8") as f:
        text = f.read().replace("\\\n", " ")
    line = next(l for l in text.splitlines() if l.startswith("HEALTHCHECK "))
    argv = json.loads(line[line.index("CMD ") + 4:])
    assert argv[:2] == ["/bin/bash", "-c"], argv
    return argv[2]


def test_sagemaker_serve_contract():
    """SageMaker's port beats the image's HFKIT_PORT, every interface is served, the script is
    replaced by hf-predict (SIGTERM reaches the server), /ping and /invocations answer, and the
    image's healthcheck looks at that same port."""
    # Port 0 = any free port, so the test cannot collide; HFKIT_PORT=1 would fail if it were used.
    with serve(SM_MODEL_DIR=tiny(), SAGEMAKER_BIND_TO_PORT="0", HFKIT_PORT="1") as s:
        assert s.host == "0.0.0.0", s.stderr()
        assert os.path.basename(os.readlink(f"/proc/{s.proc.pid}/exe")) == "hf-predict", "serve did not exec"
        status, _, _ = s.request("GET", "/ping")
        assert status == 200, status
        answer = s.predict({"inputs": "I loved it"}, "/invocations")
        assert len(answer) == 1 and answer[0]["label"] in ("negative", "positive"), answer
        # The healthcheck as the image runs it: HFKIT_PORT is the image's ENV, SAGEMAKER_BIND_TO_PORT
        # the platform's. A --serve process is running, so only /ping answering makes it healthy.
        check = healthcheck_command()
        env = {**os.environ, "HFKIT_PORT": "1", "SAGEMAKER_BIND_TO_PORT": str(s.port)}
        p = subprocess.run(["bash", "-c", check], env=env, capture_output=True, text=True, timeout=30)
        assert p.returncode == 0, f"healthcheck unhealthy on SageMaker's port: {p.stderr}"
        env = {**os.environ, "HFKIT_PORT": str(s.port)}
        env.pop("SAGEMAKER_BIND_TO_PORT", None)
        assert subprocess.run(["bash", "-c", check], env=env, timeout=30).returncode == 0
        env["HFKIT_PORT"] = "1"
        assert subprocess.run(["bash", "-c", check], env=env, capture_output=True, timeout=30).returncode != 0, \
            "healthcheck healthy while the server's /ping is not where it looks"
        assert s.stop() == 0, s.stderr()


def test_sagemaker_serve_env_and_arguments():
    """HFKIT_PORT without SageMaker's variable, HFKIT_HOST, and extra arguments passed to hf-predict."""
    key = os.path.join(WORK.name, "key")
    with open(key, "w") as f:
        f.write("s3cret\n")
    with serve("--api-key-file", key, SM_MODEL_DIR=tiny(), HFKIT_PORT="0", HFKIT_HOST="127.0.0.1") as s:
        assert s.host == "127.0.0.1", s.stderr()
        status, _, _ = s.request("POST", "/invocations", {"inputs": "x"})
        assert status == 401, status
        s.predict({"inputs": "x"}, "/invocations", headers={"Authorization": "Bearer s3cret"})
        assert s.stop() == 0
    p = run(["bash", SERVE, "--no-such-flag"], env={**PATH_ENV, "SM_MODEL_DIR": tiny()}, check=64)
    assert "--no-such-flag" in p.stderr, p.stderr


def test_sagemaker_serve_default_model_dir():
    if os.path.exists("/opt/ml/model"):
        return  # a real SageMaker host: the default is what it serves
    p = run(["bash", SERVE], env={**PATH_ENV, "SM_MODEL_DIR": "", "SAGEMAKER_BIND_TO_PORT": "0"}, check=66)
    assert "/opt/ml/model" in p.stderr and p.stderr.count(": error: ") == 1, p.stderr


# ---- the README's Deploy section ----

def deploy_section():
    with open(os.path.join(SRC, "README.md"), encoding="utf-8") as f:
        text = f.read()
    start = text.index("\n## Deploy\n")
    return text[start:text.index("\n## ", start + 1)]


def code_blocks(section):
    return re.findall(r"```[a-z]*\n(.*?)```", section, re.S)


def help_flags(*argv):
    out = run([*argv, "--help"], check=0).stdout
    return set(re.findall(r"--[a-z][a-z0-9-]*", out))


def pipeline_keys():
    with open(PIPELINE, encoding="utf-8") as f:
        header = f.read().split("\nset -euo pipefail", 1)[0]
    return set(re.findall(r"\b(PIPELINE_[A-Z_]+|HFKIT_BIN)\b", header))


def test_readme_deploy_examples_name_real_flags_and_keys():
    section = deploy_section()
    blocks = code_blocks(section)
    shell = "\n".join(b for b in blocks if not b.lstrip().startswith(("retrain", "name:", "on:")))
    # Every --flag given to a tool exists in that tool's --help.
    tools = {"hf-registry publish": help_flags(tool("hf-registry"), "publish"),
             "hf-predict": help_flags(tool("hf-predict")), "hf-eval": help_flags(tool("hf-eval")),
             "scripts/pipeline.sh": help_flags("bash", PIPELINE),
             "scripts/slurm/pipeline.sh": help_flags("bash", SLURM_PIPELINE)}
    commands = re.split(r"&&|\|\||;|\n(?!\s)", shell.replace("\\\n", " "))
    checked = 0
    for command in commands:
        for name, flags in tools.items():
            if name in command:
                # After a lone "--" come sbatch's flags (slurm/pipeline.sh passes them on).
                args = command.split(name, 1)[1].split("#")[0].split(" -- ")[0]
                for flag in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", args):
                    assert flag in flags, f"README Deploy: {name} has no {flag} ({command.strip()!r})"
                    checked += 1
    assert checked >= 10, f"only {checked} flags found: the README parsing went wrong"
    # Every PIPELINE_* key shown is one pipeline.sh documents (and so reads).
    shown = set(re.findall(r"\b(PIPELINE_[A-Z_]+|HFKIT_BIN)\b", section))
    assert shown and shown <= pipeline_keys(), f"README Deploy: unknown keys {shown - pipeline_keys()}"


def test_readme_crontab_line():
    cron = [l for b in code_blocks(deploy_section()) for l in b.splitlines()
            if re.match(r"^[\d*/,-]+\s+[\d*/,-]+\s+[\d*/,-]+\s+[\d*/,-]+\s+[\d*/,-]+\s+\S", l)]
    commands = [line.split(None, 5)[5] for line in cron]
    # cron turns an unescaped % into a newline: every % must be written \%.
    for command in commands:
        assert "%" not in command.replace("\\%", ""), command
    # One runs the pipeline here, under flock; one submits it to Slurm (whose jobs wait in a queue).
    assert [c for c in commands if "scripts/pipeline.sh" in c and "flock -n" in c], commands
    assert [c for c in commands if "scripts/slurm/pipeline.sh --config" in c], commands


def test_readme_ci_job():
    jobs = [yaml.safe_load(b) for b in code_blocks(deploy_section()) if re.search(r"^jobs:", b, re.M)]
    assert len(jobs) == 1, "one CI workflow expected in README Deploy"
    workflow = jobs[0]
    steps = [s for job in workflow["jobs"].values() for s in job["steps"]]
    runs = [s["run"] for s in steps if "run" in s]
    with open(os.path.join(SRC, "Makefile"), encoding="utf-8") as f:
        targets = set(re.findall(r"^([a-z-]+):", f.read(), re.M))
    for r in runs:
        for target in re.findall(r"\bmake ([a-z-]+)", r):
            assert target in targets, f"README CI job: no make target {target}"
    # The gate is the pipeline's exit code: the job runs it as a plain step, nothing swallows it.
    gate = [r for r in runs if "scripts/pipeline.sh" in r]
    assert gate and not any(re.search(r"\|\|\s*true|set \+e|continue-on-error", r) for r in gate), gate
    assert not any(s.get("continue-on-error") for s in steps if "scripts/pipeline.sh" in s.get("run", ""))
    scopes = [workflow, *workflow["jobs"].values(), *steps]
    keys = {k for scope in scopes for k in (scope.get("env") or {})}
    known = pipeline_keys() | {"AWS_REGION", "AWS_ROLE_ARN", "HFKIT_CACHE"}
    assert keys <= known, f"README CI job: unknown env keys {keys - known}"


if __name__ == "__main__":
    main(globals())
