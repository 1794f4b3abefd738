import pytest
import torch

from ncrepro.models import build_model


def n_params(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("width, millions", [(0.25, 5.9), (1.0, 23.5)])
def test_wrn50_matches_the_official_sizes(width, millions):
    model = build_model("wrn50", num_classes=10, width=width)
    assert n_params(model) / 1e6 == pytest.approx(millions, abs=0.1)
    assert model.feature_dim == 2048


def test_resnet18_width_scales_every_channel():
    model = build_model("resnet18", num_classes=10, width=0.25)
    assert model.feature_dim == 128
    x = torch.randn(2, 3, 32, 32)
    h, z = model.forward_with_features(x)
    assert h.shape == (2, 128) and z.shape == (2, 10)
    torch.testing.assert_close(z, model.classifier(h))
    torch.testing.assert_close(model(x), z)


def test_bad_model_arguments():
    with pytest.raises(ValueError, match="unknown architecture"):
        build_model("vgg", width=1)
    with pytest.raises(ValueError, match="width"):
        build_model("resnet18", width=0)
