"""The launchers' variables: torchrun's ranks, a SLURM array task, the threads a job was given."""

import pytest

from ct2mri_cli.errors import Ct2mriError
from ct2mri_cli.launcher import (
    TorchrunProcess,
    in_multiprocess_job,
    process_group_member,
    slurm_array_task,
    thread_count,
    torchrun_process,
)


def test_torchrun_ranks_for_a_share_of_the_cases():
    assert torchrun_process({}) is None and torchrun_process({"WORLD_SIZE": ""}) is None
    assert torchrun_process({"WORLD_SIZE": "4", "RANK": "3"}) == TorchrunProcess(3, 4, None)
    with pytest.raises(Ct2mriError, match="LOCAL_RANK='x' in the environment is not an integer"):
        torchrun_process({"WORLD_SIZE": "2", "LOCAL_RANK": "x"})


def test_a_process_group_refuses_a_doubtful_rank_whole():
    assert process_group_member({}) is None
    assert process_group_member({"WORLD_SIZE": "2", "RANK": "1"}) == TorchrunProcess(1, 2, 0)
    with pytest.raises(Ct2mriError, match="torchrun environment is malformed: {'RANK': None, 'WORLD_SIZE': ''"):
        process_group_member({"WORLD_SIZE": ""})
    with pytest.raises(Ct2mriError, match="torchrun environment is inconsistent"):
        process_group_member({"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "-1"})


def test_only_a_world_of_several_is_a_multiprocess_job():
    assert not in_multiprocess_job({}) and not in_multiprocess_job({"WORLD_SIZE": "1"})
    assert not in_multiprocess_job({"WORLD_SIZE": ""}) and in_multiprocess_job({"WORLD_SIZE": "2"})


def test_a_slurm_array_task_is_counted_from_its_first_task():
    task = slurm_array_task(
        {
            "SLURM_ARRAY_TASK_ID": "7",
            "SLURM_ARRAY_TASK_COUNT": "3",
            "SLURM_ARRAY_TASK_MIN": "3",
            "SLURM_ARRAY_TASK_STEP": "2",
        }
    )
    assert (task.task_id, task.index, task.count) == (7, 2, 3)
    assert slurm_array_task({"SLURM_ARRAY_TASK_COUNT": "3"}) is None


def test_the_threads_given_come_from_the_first_variable_that_names_a_count():
    assert thread_count({"OMP_NUM_THREADS": "0", "SLURM_CPUS_PER_TASK": "6"}) == (6, "SLURM_CPUS_PER_TASK")
    assert thread_count({"OMP_NUM_THREADS": "many"}) is None
