"""The cluster description: YAML to ClusterSpec, errors naming the key, and clients from it."""

from __future__ import annotations

import pytest

from pcdata.cluster import Adaptive, ClusterSpec, connect, load_cluster, resolve_cluster
from pcdata.errors import ClusterError


def test_a_slurm_description_reads_every_key(tmp_path):
    path = tmp_path / "maxwell.yaml"
    path.write_text("kind: slurm\ncores: 4\nprocesses: 2\nmemory: 8GB\nwalltime: '02:00:00'\nqueue: maxcpu\n"
                    "account: cms\njob_extra: ['--constraint=INTEL', '--qos=short']\nprologue: source venv/bin/activate\n"
                    "adaptive: {minimum: 0, maximum: 200}\ninterface: ib0\nwait: 30\n")
    spec = load_cluster(path)
    assert spec == ClusterSpec(kind="slurm", cores=4, processes=2, memory="8GB", walltime="02:00:00", queue="maxcpu",
                               account="cms", job_extra=("--constraint=INTEL", "--qos=short"),
                               prologue=("source venv/bin/activate",), adaptive=Adaptive(0, 200), interface="ib0", wait=30)
    assert ClusterSpec.from_dict(spec.to_dict()) == spec
    assert spec.describe() == "0-200 slurm jobs"


@pytest.mark.parametrize("text, message", [
    ("kind: kubernetes\n", "kind: unknown cluster kind 'kubernetes'"),
    ("kind: slurm\ncores: 2\n", "memory: a slurm job needs its memory"),
    ("kind: slurm\nmemory: 2GB\nworkers: 3\nadaptive: {minimum: 1, maximum: 4}\n", "adaptive: give either workers"),
    ("kind: slurm\nmemory: 2GB\nadaptive: {minimum: 5, maximum: 4}\n", "adaptive: need 0 <= minimum <= maximum"),
    ("kind: pbs\nmemory: 2GB\ncores: 1\nprocesses: 2\n", "processes: 2 workers per job need at least as many cores"),
    ("kind: local\nworkers: 0\n", "workers: must be a whole number >= 1, got 0"),
    ("kind: local\nworkers: two\n", "workers: must be a whole number >= 1, got 'two'"),
    ("kind: scheduler\n", "address: a scheduler cluster needs exactly one of address and scheduler_file"),
    ("kind: local\naddress: tcp://x:1\n", "address: only kind 'scheduler'"),
    ("kind: local\nadaptive: {minimum: 0, maximum: 2}\n", "adaptive: only batch clusters"),
    ("kind: slurm\nmemory: 2GB\nqueues: short\n", "queues: unknown key of a cluster description"),
    ("kind: slurm\nmemory: 2GB\njob_extra: 5\n", "job_extra: expected a list of strings"),
    ("- kind: local\n", "a cluster description is a mapping"),
    ("kind: [local\n", "not a YAML file"),
])
def test_a_bad_description_names_the_file_and_the_key(tmp_path, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ClusterError) as err:
        load_cluster(path)
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value)


def test_resolve_reads_addresses_files_mappings_and_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("PCDATA_CLUSTER", raising=False)
    assert resolve_cluster(None) == ClusterSpec()
    assert resolve_cluster("tcp://10.0.0.1:8786") == ClusterSpec(kind="scheduler", address="tcp://10.0.0.1:8786")
    assert resolve_cluster({"workers": 3}) == ClusterSpec(workers=3)
    (tmp_path / "c.yaml").write_text("kind: scheduler\nscheduler_file: /shared/sched.json\n")
    assert resolve_cluster(tmp_path / "c.yaml") == ClusterSpec(kind="scheduler", scheduler_file="/shared/sched.json")
    monkeypatch.setenv("PCDATA_CLUSTER", str(tmp_path / "c.yaml"))
    assert resolve_cluster(None).scheduler_file == "/shared/sched.json"
    with pytest.raises(ClusterError, match="cluster: expected a ClusterSpec"):
        resolve_cluster(3.5)


@pytest.mark.distributed
def test_a_client_is_used_as_given_and_left_open(dask_cluster):
    from distributed import Client

    with Client(dask_cluster) as client:
        with connect(client) as got:
            assert got is client and len(got.nthreads()) == 2
        assert client.status == "running"


@pytest.mark.distributed
def test_a_scheduler_file_connects(dask_cluster, tmp_path):
    import json

    path = tmp_path / "scheduler.json"
    path.write_text(json.dumps({"address": dask_cluster.scheduler_address, "type": "Scheduler"}))
    with connect(ClusterSpec(kind="scheduler", scheduler_file=str(path))) as client:
        assert sorted(client.nthreads()) == sorted(dask_cluster.workers[i].worker_address for i in dask_cluster.workers)


def test_an_unreachable_scheduler_is_one_error():
    with pytest.raises(ClusterError, match="cannot reach the Dask scheduler at tcp://127.0.0.1:9"):
        with connect("tcp://127.0.0.1:9"):
            pass
