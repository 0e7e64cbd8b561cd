"""Grad-CAM hooking and arithmetic, on plain torch modules (no mace)."""

from __future__ import annotations

import pytest
import torch

from harness.errors import ModelError
from harness.models.attribution import GradCam, gradcam_raw, resolve_layer


class Toy(torch.nn.Module):
    """E = sum(tanh(W2 tanh(W1 x))) with an unused branch and a tuple-returning block."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.blocks = torch.nn.ModuleList(
            [torch.nn.Linear(3, 4, dtype=torch.float64), torch.nn.Linear(4, 5, dtype=torch.float64)]
        )
        self.unused = torch.nn.Linear(3, 3)
        self.head = torch.nn.Sequential(torch.nn.Tanh(), torch.nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.blocks[0](x))
        return self.head(self.blocks[1](h)).sum()


def test_gradcam_raw_by_hand() -> None:
    a = torch.tensor([[1.0, 2.0], [3.0, -1.0]], dtype=torch.float64)
    g = torch.tensor([[0.5, 0.25], [-1.0, 2.0]], dtype=torch.float64)
    assert torch.equal(gradcam_raw(a, g), torch.tensor([1.0, -5.0], dtype=torch.float64))


def test_gradcam_raw_flattens_trailing_dims() -> None:
    a = torch.arange(24, dtype=torch.float64).reshape(2, 3, 4)
    g = torch.linspace(-1, 1, 24, dtype=torch.float64).reshape(2, 3, 4)
    expected = torch.stack([(a[i] * g[i]).sum() for i in range(2)])
    torch.testing.assert_close(gradcam_raw(a, g), expected, rtol=1e-15, atol=0)


def test_gradcam_raw_shape_mismatch() -> None:
    with pytest.raises(ValueError, match="shape"):
        gradcam_raw(torch.zeros(2, 3), torch.zeros(2, 4))


def test_gradcam_matches_directional_derivative() -> None:
    """sum_k dE/dA_ik A_ik == d/de E(A with row i scaled by 1+e) at e=0."""
    model = Toy()
    x = torch.randn(6, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with GradCam(model.blocks[0], name="blocks[0]") as cam:
        energy = model(x)
        (grad,) = torch.autograd.grad(energy, [cam.activation])
    raw = gradcam_raw(cam.activation.detach(), grad)
    for i in range(6):
        eps = torch.zeros((), dtype=torch.float64, requires_grad=True)

        def scale(module, inputs, output, i=i, eps=eps):  # noqa: ANN001
            factor = torch.ones(output.shape[0], 1, dtype=output.dtype)
            factor = factor.index_put((torch.tensor([i]),), (1 + eps).reshape(1, 1))
            return output * factor

        handle = model.blocks[0].register_forward_hook(scale)
        try:
            (d_eps,) = torch.autograd.grad(model(x), [eps])
        finally:
            handle.remove()
        torch.testing.assert_close(raw[i], d_eps, rtol=1e-12, atol=1e-14)


def test_hook_never_fired_and_removed() -> None:
    model = Toy()
    with GradCam(model.unused, name="unused") as cam:
        model(torch.zeros(2, 3, dtype=torch.float64))
    with pytest.raises(ModelError, match="layer unused did not run"):
        _ = cam.activation
    assert not model.unused._forward_hooks


def test_hook_removed_on_exception() -> None:
    model = Toy()
    with pytest.raises(RuntimeError), GradCam(model.blocks[1]):
        raise RuntimeError("boom")
    assert not model.blocks[1]._forward_hooks


def test_hook_twice_is_an_error() -> None:
    layer = torch.nn.Linear(2, 2)
    with GradCam(layer, name="lin") as cam:
        layer(torch.zeros(1, 2))
        layer(torch.zeros(1, 2))
    with pytest.raises(ModelError, match="ran 2 times"):
        _ = cam.activation


def test_tuple_output_takes_first() -> None:
    class Pair(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return x * 2, x * 3

    pair = Pair()
    x = torch.ones(2, 2, requires_grad=True)
    with GradCam(pair) as cam:
        first, _ = pair(x)
    assert cam.activation is first


def test_output_without_grad_becomes_leaf() -> None:
    emb = torch.nn.Linear(2, 3)
    emb.requires_grad_(False)
    with GradCam(emb) as cam:
        out = emb(torch.ones(4, 2)).pow(2).sum()
        (grad,) = torch.autograd.grad(out, [cam.activation])
    torch.testing.assert_close(grad, 2 * cam.activation.detach())


def test_resolve_layer_paths() -> None:
    model = Toy()
    assert resolve_layer(model, "blocks[-1]") is model.blocks[1]
    assert resolve_layer(model, "blocks[0]") is model.blocks[0]
    assert resolve_layer(model, "head[1]") is model.head[1]
    assert resolve_layer(model, "unused") is model.unused


@pytest.mark.parametrize(
    ("path", "pattern"),
    [
        ("product[-1]", r"valid names: \['blocks', 'head', 'unused'\]"),
        ("blocks[2]", r"valid indices -2\.\.1"),
        ("blocks[0].nope", r"valid names: \[\]"),
        ("unused[0]", "cannot be indexed"),
        ("blocks[x]", "cannot parse"),
    ],
)
def test_resolve_layer_errors(path: str, pattern: str) -> None:
    with pytest.raises(ModelError, match=pattern):
        resolve_layer(Toy(), path)
