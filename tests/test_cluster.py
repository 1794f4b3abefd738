"""The local and SLURM executors (through submitit), per-run locks and preemption."""

import json
import os
import socket
import time
from pathlib import Path

import pytest
from _tiny_data import make_image_folder

from ncrepro import protocol, sweep
from ncrepro.cluster import SweepWorker, submit_local
from ncrepro.locks import RunLock, lock_path, lock_state
from ncrepro.results import load_results
from ncrepro.train import checkpoint_path

pytest.importorskip("submitit")


def tiny_protocol(tmp_path, name="tiny", epochs=2, losses=("ce", "ls", "fl", "mse"), **base):
    tree = make_image_folder(tmp_path / "tree", train_per_class=8, test_per_class=2)
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps({
        "name": name,
        "base": {"data": str(tree), "arch": "resnet18", "width": 0.0625, "epochs": epochs, "batch_size": 16,
                 "val_size": 8, "device": "cpu", **base},
        "grid": {"loss": list(losses)}}))
    return path


def test_list_shows_a_running_run(tmp_path, capsys):
    proto = tiny_protocol(tmp_path, losses=("ce",))
    out = tmp_path / "res"
    with RunLock(out / "resnet18-w0.0625-e2-ce-s0.json"):
        assert sweep.main([str(proto), "--results-dir", str(out), "--list"]) == 0
        assert f"running ({socket.gethostname()} pid {os.getpid()}" in capsys.readouterr().out
        # The inline sweep leaves a locked run alone.
        report = sweep.run_protocol(str(proto), results_dir=out, progress=False, log=lambda m: None)
        assert report.running == ["resnet18-w0.0625-e2-ce-s0"] and not report.done


def test_local_executor_two_cpu_workers(tmp_path):
    proto = tiny_protocol(tmp_path)
    out = tmp_path / "res"
    jobs = submit_local(str(proto), ["cpu", "cpu"], results_dir=out)
    trained = [name for job in jobs for name in job.result()]
    names = [n for n, _ in protocol.protocol_runs(protocol.load_protocol(str(proto)))]
    assert sorted(trained) == sorted(names)                 # every run, exactly once
    assert len(load_results(str(proto), results_dir=out)) == 4
    assert not list(out.glob("*.lock"))


def test_two_sweeps_at_once_train_every_run_exactly_once(tmp_path):
    proto = tiny_protocol(tmp_path, name="shared")
    out = tmp_path / "res"
    first = submit_local(str(proto), ["cpu"], results_dir=out)
    second = submit_local(str(proto), ["cpu"], results_dir=out)
    trained = [name for job in first + second for name in job.result()]
    names = [n for n, _ in protocol.protocol_runs(protocol.load_protocol(str(proto)))]
    assert sorted(trained) == sorted(names) and len(set(trained)) == len(trained)


def test_preempted_job_is_requeued_and_resumes_exactly(tmp_path):
    proto = tiny_protocol(tmp_path, name="long", epochs=6, losses=("ls",))
    reference = sweep.run_protocol(str(proto), results_dir=tmp_path / "straight", progress=False,
                                   log=lambda m: None).results[0]
    out = tmp_path / "res"
    (job,) = submit_local(str(proto), ["cpu"], results_dir=out)
    ckpt = checkpoint_path(out / "resnet18-w0.0625-e6-ls-a0.1-s0.json", in_progress=True)
    deadline = time.time() + 300
    import torch
    while time.time() < deadline:
        try:
            if ckpt.exists() and len(torch.load(ckpt, weights_only=True)["history"]) >= 2:
                break
        except Exception:  # noqa: BLE001 - the checkpoint may be mid-rename
            pass
        time.sleep(0.2)
    else:
        pytest.fail("the job never wrote a checkpoint")
    # SIGUSR2 to the training process (its pid is in the run's lock), as SLURM sends it before a kill.
    import signal
    holder = lock_state(lock_path(out / "resnet18-w0.0625-e6-ls-a0.1-s0.json"))
    os.kill(holder["pid"], signal.SIGUSR2)
    assert job.result() == ["resnet18-w0.0625-e6-ls-a0.1-s0"]   # requeued, then finished
    log = Path(job.paths.stderr).read_text() + Path(job.paths.stdout).read_text()
    assert "resuming" in log and ("preempted" in log or "Requeued" in log)
    result = json.loads((out / "resnet18-w0.0625-e6-ls-a0.1-s0.json").read_text())
    strip = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]  # noqa: E731
    assert strip(result["epochs"]) == strip(reference["epochs"])


def test_slurm_dry_run_shows_submitits_script(tmp_path, capsys):
    proto = tiny_protocol(tmp_path, name="cluster")
    out = tmp_path / "res"
    code = sweep.main([str(proto), "--results-dir", str(out), "--executor", "slurm", "--dry-run",
                       "--slurm-partition", "gpu", "--slurm-time", "30", "--slurm-gpus-per-task", "1",
                       "--slurm-array-parallelism", "2", "--slurm-extra", "account=nc-lab"])
    text = capsys.readouterr().out
    assert code == 0 and "one array of 4 task(s)" in text
    for line in ("#SBATCH --array=0-3%2", "#SBATCH --time=30", "#SBATCH --partition=gpu",
                 "#SBATCH --gpus-per-task=1", "#SBATCH --account=nc-lab"):
        assert line in text, line
    assert not (out / "logs").exists()                         # nothing written where real jobs would log
    assert sweep.main([str(proto), "--executor", "slurm", "--dry-run", "--slurm-extra", "oops"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err


def test_worker_trains_only_its_names(tmp_path):
    proto = tiny_protocol(tmp_path, name="named", losses=("ce", "mse"))
    out = tmp_path / "res"
    done = SweepWorker(protocol=str(proto), results_dir=str(out), names=["resnet18-w0.0625-e2-mse-M15-s0"])()
    assert done == ["resnet18-w0.0625-e2-mse-M15-s0"] and len(list(out.glob("*.json"))) == 1
    summary = sweep.progress_summary(protocol.load_protocol(str(proto)), out)
    assert "CPU-hours on 1 finished run(s)" in summary and "to finish 1 run(s)" in summary
