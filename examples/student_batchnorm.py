"""A student's BatchNorm in CS231n's style (samples are rows, x is N×D), with one planted mistake.

Check it with:  chainrule check examples/student_batchnorm.py:batchnorm_backward --layer batchnorm
"""

import numpy as np


def batchnorm_forward(x, gamma, beta, bn_param):
    eps = bn_param.get("eps", 1e-5)
    mu = x.mean(axis=0)
    xmu = x - mu
    var = (xmu**2).mean(axis=0)
    std = np.sqrt(var + eps)
    xhat = xmu / std
    out = gamma * xhat + beta
    return out, (xhat, xmu, std, gamma)


def batchnorm_backward(dout, cache):
    xhat, xmu, std, gamma = cache
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * xhat).sum(axis=0)
    dxhat = dout * gamma
    dvar = (dxhat * xmu).sum(axis=0) * -0.5 * std**-3
    # the mistake: the path from x through the mean μ is left out (μ treated as a constant), so dx lacks the
    # term  −Σ dxhat / (N σ)  that every sample's x gets through μ
    dx = dxhat / std + dvar * 2 * xmu / n
    return dx, dgamma, dbeta
