"""Shards: the split by case name, and the shard each launcher's environment names."""

import pytest

from ct2mri_cli.errors import Ct2mriError
from ct2mri_cli.shards import Shard, parse_shard, resolve_shard

NAMES = [f"case{i:02d}" for i in (7, 3, 11, 0, 5, 9, 1)]


def test_shards_partition_the_cases_evenly_and_by_name():
    for count in (1, 2, 3, 7, 10):
        shares = [Shard(k, count).select(NAMES, str) for k in range(count)]
        assert sorted(n for share in shares for n in share) == sorted(NAMES)  # every case exactly once
        assert max(map(len, shares)) - min(map(len, shares)) <= 1
    # by name, not by position: another order of the same list makes the same split
    assert sorted(Shard(1, 3).select(NAMES, str)) == sorted(Shard(1, 3).select(sorted(NAMES, reverse=True), str))
    # sorted: case00 case01 case03 case05 case07 case09 case11; the first share takes every other one
    assert sorted(Shard(0, 2).select(NAMES, str)) == ["case00", "case03", "case07", "case11"]
    assert Shard(0, 2).select(NAMES, str) == ["case07", "case03", "case11", "case00"]  # in the given order


def test_shard_option_is_one_based():
    assert parse_shard("2/4") == Shard(1, 4, "--shard 2/4")
    for bad in ("0/4", "5/4", "2", "a/b", "1/0"):
        with pytest.raises(Ct2mriError, match="--shard"):
            parse_shard(bad)


def test_slurm_array_variables_name_the_shard():
    env = {"SLURM_ARRAY_TASK_ID": "12", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "10"}
    assert (resolve_shard(None, env).index, resolve_shard(None, env).count) == (2, 4)
    stepped = {
        "SLURM_ARRAY_TASK_ID": "4",
        "SLURM_ARRAY_TASK_COUNT": "3",
        "SLURM_ARRAY_TASK_MIN": "0",
        "SLURM_ARRAY_TASK_STEP": "2",
    }
    assert resolve_shard(None, stepped).index == 2
    assert resolve_shard("1/2", env).index == 0  # the option wins over the environment
    with pytest.raises(Ct2mriError, match="does not fit"):
        resolve_shard(None, {"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_COUNT": "4"})
    with pytest.raises(Ct2mriError, match="SLURM_ARRAY_TASK_COUNT"):
        resolve_shard(None, {"SLURM_ARRAY_TASK_ID": "1"})
    assert resolve_shard(None, {}) == Shard()


def test_torchrun_processes_split_their_shard_again():
    alone = resolve_shard(None, {"RANK": "1", "WORLD_SIZE": "4", "LOCAL_RANK": "1"})
    assert (alone.index, alone.count, alone.local_rank) == (1, 4, 1)
    # two nodes of a SLURM array, two processes each: four disjoint shares covering everything
    shares = []
    for task in ("0", "1"):
        for rank in ("0", "1"):
            env = {"SLURM_ARRAY_TASK_ID": task, "SLURM_ARRAY_TASK_COUNT": "2", "RANK": rank, "WORLD_SIZE": "2"}
            shard = resolve_shard(None, env)
            assert shard.count == 4
            shares.append(shard.select(NAMES, str))
    assert sorted(n for share in shares for n in share) == sorted(NAMES)
    single = resolve_shard(None, {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0"})
    assert (single.count, single.local_rank) == (1, 0)
    with pytest.raises(Ct2mriError, match="RANK=2"):
        resolve_shard(None, {"RANK": "2", "WORLD_SIZE": "2"})
