import pytest

from pcdata.loaders import World, detect_ranks, detect_worker


def test_explicit_ranks_win(monkeypatch):
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert detect_ranks(1, 2) == (1, 2)
    assert detect_ranks() == (3, 4)  # torchrun's environment when torch.distributed is not initialised


def test_default_is_a_single_process(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert detect_ranks() == (0, 1)
    assert detect_worker() == (0, 1)


def test_bad_values(monkeypatch):
    with pytest.raises(ValueError, match="both rank and world_size"):
        detect_ranks(world_size=2)
    with pytest.raises(ValueError, match="rank must be"):
        World(rank=2, world_size=2)
    with pytest.raises(ValueError, match="worker must be"):
        World(worker=1, num_workers=1)
    monkeypatch.setenv("RANK", "x")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="must be integers"):
        detect_ranks()
