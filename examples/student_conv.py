"""A student's convolution in CS231n's style (x is [N, C, H, W], w is [F, C, HH, WW]), with one planted mistake.

Check it with:  chainrule check examples/student_conv.py:conv_backward_naive --layer conv
"""

# ruff: noqa: N806  (CS231n's names for the sizes: N, C, H, W, F, HH, WW)

import numpy as np


def conv_forward_naive(x, w, b, conv_param):
    stride, pad = conv_param["stride"], conv_param["pad"]
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    F, _, HH, WW = w.shape
    H_out = 1 + (x_pad.shape[2] - HH) // stride
    W_out = 1 + (x_pad.shape[3] - WW) // stride
    out = np.empty((x.shape[0], F, H_out, W_out))
    for i in range(H_out):
        for j in range(W_out):
            window = x_pad[:, :, i * stride : i * stride + HH, j * stride : j * stride + WW]
            out[:, :, i, j] = np.einsum("nchw,fchw->nf", window, w) + b
    return out, (x, w, conv_param)


def conv_backward_naive(dout, cache):
    x, w, conv_param = cache
    stride, pad = conv_param["stride"], conv_param["pad"]
    N, F, H_out, W_out = dout.shape
    _, C, HH, WW = w.shape
    # dx_pad is the full convolution of dout (spread out by the stride, padded by the kernel's size − 1) with w
    dilated = np.zeros((N, F, (H_out - 1) * stride + 1, (W_out - 1) * stride + 1))
    dilated[:, :, ::stride, ::stride] = dout
    full = np.pad(dilated, ((0, 0), (0, 0), (HH - 1, HH - 1), (WW - 1, WW - 1)))
    dx_pad = np.empty((N, C, full.shape[2] - HH + 1, full.shape[3] - WW + 1))
    for a in range(dx_pad.shape[2]):
        for c in range(dx_pad.shape[3]):
            # the mistake: a convolution flips the kernel, and this slides w itself over dout (a correlation);
            # right is w[:, :, ::-1, ::-1] here
            dx_pad[:, :, a, c] = np.einsum("nfhw,fchw->nc", full[:, :, a : a + HH, c : c + WW], w)
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    dw = np.zeros_like(w)
    for i in range(H_out):
        for j in range(W_out):
            window = x_pad[:, :, i * stride : i * stride + HH, j * stride : j * stride + WW]
            dw += np.einsum("nf,nchw->fchw", dout[:, :, i, j], window)
    H, W = x.shape[2:]
    dx = dx_pad[:, :, pad : pad + H, pad : pad + W]
    return dx, dw, dout.sum(axis=(0, 2, 3))
