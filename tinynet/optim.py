"""Optimizers and learning-rate schedules.

An optimizer sees only (param, grad) pairs and updates each param in place; it never knows
about layers. Call ``step()`` after ``model.backward``.
"""

import math

import numpy as np

from . import ops


class Optimizer:
    def __init__(self, params, lr):
        self.params = list(params)
        if not self.params:
            raise ValueError("optimizer got no parameters")
        self.lr = float(lr)
        self.steps = 0

    def step(self):
        raise NotImplementedError

    def state_dict(self):
        """Arrays and counters needed to resume training exactly."""
        return {"steps": self.steps, "lr": self.lr}

    def load_state_dict(self, state):
        self.steps = int(state["steps"])
        self.lr = float(state["lr"])


class SGD(Optimizer):
    """Stochastic gradient descent with momentum and L2 weight decay.

        g <- grad + weight_decay * w
        v <- momentum * v + g
        w <- w - lr * v                (nesterov: w <- w - lr * (g + momentum * v))

    ``params`` is a list of (param, grad_getter) pairs as given by ``Sequential.parameters()``.
    """

    def __init__(self, params, lr=0.01, momentum=0.0, weight_decay=0.0, nesterov=False):
        super().__init__(params, lr)
        self.momentum = float(momentum)
        self.weight_decay = float(weight_decay)
        self.nesterov = bool(nesterov)
        self.velocity = [np.zeros_like(p) for p, _ in self.params]

    def step(self):
        self.steps += 1
        for (w, grad), v in zip(self.params, self.velocity):
            ops.sgd_update(w, grad(), v, self.lr, self.momentum, self.weight_decay,
                           self.nesterov)

    def state_dict(self):
        state = super().state_dict()
        state["velocity"] = self.velocity
        return state

    def load_state_dict(self, state):
        super().load_state_dict(state)
        for v, saved in zip(self.velocity, state["velocity"]):
            v[...] = saved


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015), with decoupled weight decay (AdamW) when asked.

        m <- b1 m + (1 - b1) g                  running mean of gradients
        v <- b2 v + (1 - b2) g^2                running mean of squared gradients
        m_hat = m / (1 - b1^t),  v_hat = v / (1 - b2^t)    bias correction for the zero start
        w <- w - lr * (m_hat / (sqrt(v_hat) + eps) + weight_decay * w)
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr)
        self.b1, self.b2 = (float(b) for b in betas)
        self.eps = float(eps)
        self.weight_decay = float(weight_decay)
        self.m = [np.zeros_like(p) for p, _ in self.params]
        self.v = [np.zeros_like(p) for p, _ in self.params]

    def step(self):
        self.steps += 1
        for (w, grad), m, v in zip(self.params, self.m, self.v):
            ops.adam_update(w, grad(), m, v, self.steps, self.lr, self.b1, self.b2, self.eps,
                            self.weight_decay)

    def state_dict(self):
        state = super().state_dict()
        state["m"], state["v"] = self.m, self.v
        return state

    def load_state_dict(self, state):
        super().load_state_dict(state)
        for mine, saved in zip(self.m + self.v, list(state["m"]) + list(state["v"])):
            mine[...] = saved


def constant(lr):
    """A schedule: step -> learning rate."""
    return lambda step: lr


def cosine(lr, total_steps, warmup_steps=0, final_lr=0.0):
    """Linear warm-up to ``lr``, then cosine decay to ``final_lr`` at ``total_steps``."""

    def schedule(step):
        if step < warmup_steps:
            return lr * (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return final_lr + 0.5 * (lr - final_lr) * (1 + math.cos(math.pi * progress))

    return schedule


def one_cycle(max_lr, total_steps, pct_start=0.25, div=25.0, final_div=1e4):
    """One-cycle policy (Smith 2018): cosine rise from max_lr/div to max_lr over the first
    ``pct_start`` of training, then cosine fall to max_lr/final_div."""
    start, end = max_lr / div, max_lr / final_div
    rise = max(1, int(total_steps * pct_start))

    def schedule(step):
        if step < rise:
            t = step / rise
            return start + (max_lr - start) * (1 - math.cos(math.pi * t)) / 2
        t = min(1.0, (step - rise) / max(1, total_steps - rise))
        return end + (max_lr - end) * (1 + math.cos(math.pi * t)) / 2

    return schedule
