"""A short real training run on MNIST: the whole pipeline, end to end."""

import numpy as np

from tinynet import networks, optim
from tinynet.data import to_float
from tinynet.train import evaluate, fit


def test_mlp_beats_90_percent_after_a_short_training(mnist):
    x, y, xt, yt = mnist
    rng = np.random.default_rng(0)
    model = networks.mlp(rng)
    optimizer = optim.Adam(model.parameters(), lr=1e-3)
    fit(model, optimizer, to_float(x[:6000]), y[:6000].astype(np.int64), epochs=3,
        batch_size=32, rng=rng, progress=False, threads=1,
        schedule=optim.cosine(1e-3, total_steps=3 * 188))
    _, accuracy = evaluate(model, to_float(xt), yt.astype(np.int64))
    assert accuracy > 0.90
