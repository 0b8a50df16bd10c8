"""Layers whose backward pass a learning rule can redirect.

`FeedbackLinear` and `FeedbackConv2d` are standard layers whose backward sends the error to
their input through a feedback tensor B instead of the forward weights when one is attached, each
by its own `autograd.Function`. For a linear layer B has the shape of Wᵀ (in × out), as in the
paper, so "B vs Wᵀ" is a literal comparison; with a batch of row vectors the error reaching the
input is g Bᵀ where backprop's is g W. For a convolution B has the kernel's shape and the error
travels through the transposed convolution with B where backprop's uses W.

A layer holds P `members` (engine/members.py): its weight is P stacked blocks (out, in) or (C_out,
C_in, kh, kw), its feedback P stacked blocks, its batch P stacked blocks of rows, and each
member's block meets only its own: one batched matmul, or one grouped convolution (P groups, the
rows moved into channels for it and back). With one member every product is the single one,
kernel for kernel.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.grad import conv2d_input, conv2d_weight

from engine.members import split


# ----------------------------------------------------------------- layers
def add_outer_products(b: torch.Tensor, r: torch.Tensor, g: torch.Tensor, alpha: float = 1.0,
                       members: int = 1) -> None:
    """b += α rᵀ g in place: the batch's summed outer products, as a linear feedback's regression
    takes them (each member's block of b from its own rows). One accumulating product, no b-sized
    temporary; for a b only a few columns wide the product is formed as (gᵀ r)ᵀ, as MKL's
    row-major kernel that narrow is about 3× slower (256 × 10 on one thread: 65 against 22 µs)."""
    if members > 1:
        split(b, members).baddbmm_(split(r, members).transpose(1, 2), split(g, members), alpha=alpha)
    elif b.shape[1] < 16:
        b.add_((g.T @ r).T, alpha=alpha)
    else:
        b.addmm_(r.T, g, alpha=alpha)


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, members: int) -> torch.Tensor:
    """x Wᵀ + b, each member's rows through its own block of W and b."""
    if members == 1:
        return F.linear(x, weight, bias)
    if torch.is_grad_enabled() and (weight.requires_grad or bias.requires_grad or x.requires_grad):
        return FeedbackLinearFn.apply(x, weight, bias, None, members)
    return _members_linear(x, weight, bias, members)


def _members_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, members: int) -> torch.Tensor:
    out = torch.baddbmm(split(bias, members).unsqueeze(1), split(x, members),
                        split(weight, members).transpose(1, 2))
    return out.view(-1, out.shape[2])


def times_transposed(g: torch.Tensor, m: torch.Tensor, members: int) -> torch.Tensor:
    """g Mᵀ, each member's rows of g with its own block of M: the error g sent through B."""
    if members == 1:
        return g @ m.T
    out = torch.bmm(split(g, members), split(m, members).transpose(1, 2))
    return out.view(-1, out.shape[2])


class FeedbackLinearFn(torch.autograd.Function):
    """y = x Wᵀ + b, whose backward returns g Bᵀ (not g W) as the input gradient; g W, as
    backprop's, where `feedback` is None (a population's layer without feedback: autograd's own
    backward of the batched product would form each member's ∂W as (xᵀg)ᵀ and copy it into W's
    layout, 2 of a 784-50-20-10 population's 8.7 ms a step at P = 32)."""

    @staticmethod
    def forward(ctx, x, weight, bias, feedback, members=1):
        ctx.save_for_backward(x, weight if feedback is None else feedback)
        ctx.transposed = feedback is None           # W is (P·out, in), B (P·in, out)
        ctx.members = members
        return linear(x, weight, bias, members)    # grad mode is off in here: the plain product

    @staticmethod
    def backward(ctx, g):
        x, back = ctx.saved_tensors             # what the error goes back through: B, or W itself
        p = ctx.members
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = (torch.bmm(split(g, p), split(back, p)).view(-1, x.shape[1]) if ctx.transposed
                      else times_transposed(g, back, p))
        grad_w = grad_b = None
        if p == 1:
            grad_w = g.T @ x if ctx.needs_input_grad[1] else None
            grad_b = g.sum(0) if ctx.needs_input_grad[2] else None
        else:
            g3 = split(g, p)
            if ctx.needs_input_grad[1]:
                grad_w = torch.bmm(g3.transpose(1, 2), split(x, p)).view(-1, x.shape[1])
            if ctx.needs_input_grad[2]:
                grad_b = g3.sum(1).view(-1)
        return grad_x, grad_w, grad_b, None, None


class FeedbackLinear(nn.Linear):
    """A linear layer with an optional feedback matrix B (shape in × out, like Wᵀ), for
    `members` members stacked: weight (P·out, in), B (P·in, out)."""

    def __init__(self, in_features: int, out_features: int, members: int = 1):
        super().__init__(in_features, out_features * members)
        self.out_features, self.members = out_features, members
        self.feedback: torch.Tensor | None = None   # owned by the learning rule

    def forward(self, x: torch.Tensor, use_feedback: bool = True) -> torch.Tensor:
        if self.feedback is None or not use_feedback:
            return linear(x, self.weight, self.bias, self.members)
        return FeedbackLinearFn.apply(x, self.weight, self.bias, self.feedback, self.members)

    # What a rule and the metrics need to know about this layer's feedback:
    def fan_in(self) -> int:
        return self.in_features

    def feedback_shape(self) -> tuple[int, ...]:
        """One member's feedback tensor: Wᵀ's shape (in × out)."""
        return self.in_features, self.out_features

    def backprop_feedback(self) -> torch.Tensor:
        """The tensor backprop sends this layer's error back through, shaped like the rule's
        feedback tensor B: Wᵀ here (for a convolution, the kernel itself). A view for one
        member; for several, each member's Wᵀ stacked (a copy)."""
        if self.members == 1:
            return self.weight.T
        return split(self.weight, self.members).transpose(1, 2).reshape(-1, self.out_features)

    def input_grad(self, g: torch.Tensor, feedback: torch.Tensor, input_shape) -> torch.Tensor:
        """The error sent to this layer's input for output error g, through `feedback`."""
        return times_transposed(g, feedback, self.members)

    def add_feedback_grad(self, feedback: torch.Tensor, residual: torch.Tensor, g: torch.Tensor) -> None:
        """feedback += ∂/∂B of ⟨residual, input_grad(g, B)⟩ summed over the batch, in place
        (for regressing B): residualᵀ g here."""
        add_outer_products(feedback, residual, g, members=self.members)

    def backprop_grads(self, g: torch.Tensor, x: torch.Tensor, need_input: bool, need_weight: bool):
        """What autograd's backward of `F.linear(x, W, b)` (addmm with the factor Wᵀ) sends to x
        and to W for output error g, bit for bit: its mm_mat1_backward and mm_mat2_backward."""
        grad_x = grad_w = None
        if self.members > 1:
            g3, p = split(g, self.members), self.members
            if need_input:
                grad_x = torch.bmm(g3, split(self.weight, p)).view(-1, self.in_features)
            if need_weight:
                grad_w = torch.bmm(g3.transpose(1, 2), split(x, p)).view(-1, self.in_features)
            return grad_x, grad_w
        if need_input:
            w = self.weight
            if x.stride(0) == 1 and x.stride(1) == x.shape[0]:     # a column-major input
                grad_x = w.t().mm(g.t()).t()
            else:
                grad_x = g.mm(w)
        if need_weight:
            grad_w = g.t().mm(x)          # Wᵀ is column-major: (gᵀ x)ᵀ for Wᵀ, so gᵀ x for W
        return grad_x, grad_w

    # The regression of B as rows of (features, targets): see engine/rules/regression.py.
    @staticmethod
    def regression_gain() -> int:
        """How many times each entry of g enters the prediction (the normalised step's c)."""
        return 1

    def solution_shape(self, feedback: torch.Tensor) -> tuple[int, int]:
        """One member's regression solution: (outputs, features)."""
        return self.feedback_shape()

    @staticmethod
    def regression_rows(g: torch.Tensor, target: torch.Tensor):
        return g, target.flatten(1)

    @staticmethod
    def feedback_from_solution(solution: torch.Tensor, feedback: torch.Tensor) -> torch.Tensor:
        return solution


def to_channels(t: torch.Tensor, members: int) -> torch.Tensor:
    """Members' rows (P·B, C, H, W) as one batch of P·C channels (B, P·C, H, W): the layout of a
    grouped convolution's P groups."""
    if members == 1:
        return t
    p_b, c, h, w = t.shape
    return t.view(members, p_b // members, c, h, w).transpose(0, 1).reshape(p_b // members, members * c, h, w)


def to_rows(t: torch.Tensor, members: int) -> torch.Tensor:
    """The inverse of `to_channels`."""
    if members == 1:
        return t
    b, p_c, h, w = t.shape
    return t.view(b, members, p_c // members, h, w).transpose(0, 1).reshape(members * b, p_c // members, h, w)


class FeedbackConv2dFn(torch.autograd.Function):
    """conv2d(x, W) + b, whose backward is the transposed convolution with B, not W (for P
    members, one grouped convolution each way)."""

    @staticmethod
    def forward(ctx, x, weight, bias, feedback, stride, padding, members=1):
        x = to_channels(x, members)
        ctx.save_for_backward(x, feedback)
        ctx.stride, ctx.padding, ctx.weight_shape, ctx.members = stride, padding, weight.shape, members
        return to_rows(F.conv2d(x, weight, bias, stride, padding, 1, members), members)

    @staticmethod
    def backward(ctx, g):
        x, feedback = ctx.saved_tensors
        p = ctx.members
        g = to_channels(g, p)
        grad_x = to_rows(conv2d_input(x.shape, feedback, g, ctx.stride, ctx.padding, 1, p), p) \
            if ctx.needs_input_grad[0] else None
        grad_w = conv2d_weight(x, ctx.weight_shape, g, ctx.stride, ctx.padding, 1, p) \
            if ctx.needs_input_grad[1] else None
        grad_b = g.sum((0, 2, 3)) if ctx.needs_input_grad[2] else None
        return grad_x, grad_w, grad_b, None, None, None, None


class FeedbackConv2d(nn.Conv2d):
    """A convolution with an optional feedback kernel B of the forward kernel's shape; for
    `members` members, a grouped convolution of P groups (its weight and B (P·C_out, C_in, kh,
    kw), member-major, as grouped convolution keeps them)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: int = 0,
                 members: int = 1):
        super().__init__(in_channels * members, out_channels * members, kernel_size, padding=padding,
                         groups=members)
        self.members = members
        self.feedback: torch.Tensor | None = None

    def forward(self, x: torch.Tensor, use_feedback: bool = True) -> torch.Tensor:
        if self.feedback is None or not use_feedback:
            out = F.conv2d(to_channels(x, self.members), self.weight, self.bias, self.stride,
                           self.padding, 1, self.groups)
            return to_rows(out, self.members)
        return FeedbackConv2dFn.apply(x, self.weight, self.bias, self.feedback,
                                      self.stride, self.padding, self.members)

    def fan_in(self) -> int:
        return self.in_channels // self.groups * self.kernel_size[0] * self.kernel_size[1]

    def feedback_shape(self) -> tuple[int, ...]:
        """One member's kernel."""
        return (self.out_channels // self.members, *self.weight.shape[1:])

    def _channels_shape(self, rows_shape) -> tuple[int, ...]:
        p_b, c, h, w = rows_shape
        return p_b // self.members, c * self.members, h, w

    def backprop_feedback(self) -> torch.Tensor:
        """The tensor backprop sends this layer's error back through, shaped like the rule's
        feedback tensor B: the kernel itself here, which the backward uses transposed (for a
        linear layer, Wᵀ)."""
        return self.weight

    def input_grad(self, g, feedback, input_shape):
        p = self.members
        return to_rows(conv2d_input(self._channels_shape(input_shape), feedback, to_channels(g, p),
                                    self.stride, self.padding, 1, p), p)

    def feedback_grad(self, residual, g):
        p = self.members
        return conv2d_weight(to_channels(residual, p), self.weight.shape, to_channels(g, p),
                             self.stride, self.padding, 1, p)

    def add_feedback_grad(self, feedback, residual, g) -> None:
        feedback.add_(self.feedback_grad(residual, g))

    def backprop_grads(self, g, x, need_input: bool, need_weight: bool):
        """What autograd's backward of `F.conv2d(x, W, b)` sends to x and to W for output error g
        (its convolution_backward, with the same output mask when the bias is not asked for)."""
        p = self.members
        grad_x, grad_w, _ = torch.ops.aten.convolution_backward(
            to_channels(g, p), to_channels(x, p), self.weight, [self.out_channels], self.stride,
            self.padding, self.dilation, False, [0, 0], self.groups, [need_input, need_weight, False])
        return (None if grad_x is None else to_rows(grad_x, p)), grad_w

    # The transposed convolution with B is a convolution of g with B's flipped, channel-swapped
    # kernel at padding k − 1 − p (stride 1). So the error at one position of input channel c is
    # the patch of g around that position dotted with row c of that kernel: regression rows are
    # (sample, position) pairs, their features the patch, shared by every input channel.
    def regression_gain(self) -> int:
        return self.kernel_size[0] * self.kernel_size[1]

    def solution_shape(self, feedback):
        c_out, c_in, kh, kw = self.feedback_shape()
        return c_in, c_out * kh * kw

    def _flipped_padding(self):
        return tuple(k - 1 - p for k, p in zip(self.kernel_size, self.padding))

    def regression_rows(self, g, target):
        assert self.stride == (1, 1), "patch regression assumes stride 1"
        patches = F.unfold(g, self.kernel_size, padding=self._flipped_padding())   # N, F, H·W
        features = patches.transpose(1, 2).reshape(-1, patches.shape[1])
        c_in = self.in_channels // self.groups
        rows = target.reshape(target.shape[0], c_in, -1).transpose(1, 2)
        return features, rows.reshape(-1, c_in)

    def feedback_from_solution(self, solution, feedback):
        """The kernel of a solution (c_in, c_out·kh·kw), or of each member's, (P, …), into
        `feedback`'s shape, (c_out, c_in, kh, kw) or (P, c_out, c_in, kh, kw)."""
        c_out, c_in, kh, kw = feedback.shape[-4:]
        lead = feedback.shape[:-4]
        return solution.reshape(*lead, c_in, c_out, kh, kw).transpose(-4, -3).flip(-2, -1)
