"""A run's intra-op threads follow its step's work: one for a small step."""

from engine.config import RunConfig
from engine.threads import BIG_STEP, step_work, threads_for

DIGITS_NET = 64 * 50 + 50 * 20 + 20 * 10          # 64-50-20-10's weights (biases aside)
WIDE_NET = 784 * 256 + 256 * 256 + 256 * 10


def test_a_small_step_gets_one_thread_and_a_big_one_keeps_torchs(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert threads_for(RunConfig(), DIGITS_NET) == 1
    assert threads_for(RunConfig(seeds=32), DIGITS_NET) == 1
    big = RunConfig(batch_size=128, seeds=8)
    assert step_work(big, WIDE_NET) > BIG_STEP and threads_for(big, WIDE_NET) is None


def test_noise_draws_and_members_widen_the_step():
    base = step_work(RunConfig(rule="np"), DIGITS_NET)
    assert step_work(RunConfig(rule="np", noise_draws=4), DIGITS_NET) == 4 * base
    assert step_work(RunConfig(rule="np", seeds=8), DIGITS_NET) == 8 * base
    assert step_work(RunConfig(rule="fa", noise_draws=4), DIGITS_NET) == base
    assert step_work(RunConfig(rule="pnp", noise_draws=4), DIGITS_NET) == 4 * base     # any rule that reads K


def test_a_users_omp_num_threads_is_left_to_torch(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert threads_for(RunConfig(), DIGITS_NET) is None
