"""BurstFinder.read_many: many channels of one channeliser class read at once give exactly the bursts
each finder gives alone, whatever the chunking (the receiver reads R2's ten and N's six channels so)."""

import numpy as np
import pytest

from dsp.detect import BurstFinder


def _channels(rng, n_ch: int, n: int) -> np.ndarray:
    """Noise on every channel, and bursts of different lengths and levels at different places."""
    x = (rng.normal(size=(n_ch, n)) + 1j * rng.normal(size=(n_ch, n))).astype(np.complex64) * 0.01
    for ch in range(n_ch):
        for _ in range(3):
            a = int(rng.integers(0, n - 4000))
            length = int(rng.integers(300, 4000))
            x[ch, a:a + length] += (0.03 * np.exp(1j * rng.uniform(0, 6.28, length))).astype(np.complex64)
    return x


def _key(bursts):
    return [(b.channel, b.start, b.samples.tobytes(), b.power, b.noise) for b in bursts]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_read_many_equals_each_finder_alone_in_any_chunking(seed):
    rng = np.random.default_rng(seed)
    n_ch, n = 6, 60_000
    x = _channels(rng, n_ch, n)
    names = [f"ch{i}" for i in range(n_ch)]
    alone, solo = [], []
    for i, name in enumerate(names):
        f = BurstFinder(name, max_windows=40, floor_windows=200)
        alone.append(_key(list(f.process(x[i])) + list(f.flush())))
        solo.append(f)
    assert sum(len(a) for a in alone) >= n_ch  # the test has bursts to find
    finders = [BurstFinder(name, max_windows=40, floor_windows=200) for name in names]
    got = [[] for _ in names]
    at = 0
    while at < n:  # chunks of every size, the same for all channels (one channeliser's output)
        step = int(rng.choice([1, 7, 63, 64, 65, 500, 3000]))
        for i, bursts in enumerate(BurstFinder.read_many(finders, [x[i, at:at + step] for i in range(n_ch)])):
            got[i] += bursts
        at += step
    for i, f in enumerate(finders):
        got[i] += list(f.flush())
    assert [_key(g) for g in got] == alone
    assert [f.noise_floor for f in finders] == [f.noise_floor for f in solo]
    assert len({f.noise_floor for f in finders}) == n_ch  # each channel kept its own floor


def test_read_many_with_finders_in_different_states_reads_one_by_one():
    """Finders whose histories or settings differ (one was fed before, one has a shorter floor
    memory) in one call with a group that agrees: each still gives what it gives alone."""
    rng = np.random.default_rng(9)
    x = _channels(rng, 4, 30_000)
    make = [lambda: BurstFinder("a"), lambda: BurstFinder("b"), lambda: BurstFinder("c"),
            lambda: BurstFinder("d", floor_windows=100)]
    fs, refs = [m() for m in make], [m() for m in make]
    early = _key(fs[0].process(x[0, :1000])), _key(refs[0].process(x[0, :1000]))
    rest = BurstFinder.read_many(fs, [x[0, 1000:], x[1, 1000:], x[2, 1000:], x[3, 1000:]])
    assert _key(rest[0]) == _key(list(refs[0].process(x[0, 1000:])))
    for i in (1, 2, 3):
        assert _key(rest[i]) == _key(list(refs[i].process(x[i, 1000:])))
    assert sum(len(r) for r in rest) > 0
    assert early[0] == early[1]
