import numpy as np
import pytest

from tf_cyclegan.models.losses import discriminator_loss, gan_loss, l1_loss


def test_lsgan_loss_by_hand():
    logits = np.array([[[[0.5], [1.0]], [[0.0], [2.0]]]], "float32")  # one image, 2x2 patches
    # real target 1: (0.25 + 0 + 1 + 1) / 4; fake target 0: (0.25 + 1 + 0 + 4) / 4
    np.testing.assert_allclose(gan_loss(logits, True).numpy(), [0.5625])
    np.testing.assert_allclose(gan_loss(logits, False).numpy(), [1.3125])


def test_vanilla_loss_by_hand():
    logits = np.array([[[[0.0], [2.0]]]], "float32")
    expected_real = np.mean([np.log(2.0), np.log1p(np.exp(-2.0))])
    expected_fake = np.mean([np.log(2.0), 2.0 + np.log1p(np.exp(-2.0))])
    np.testing.assert_allclose(gan_loss(logits, True, "vanilla").numpy(), [expected_real], rtol=1e-6)
    np.testing.assert_allclose(gan_loss(logits, False, "vanilla").numpy(), [expected_fake], rtol=1e-6)


def test_losses_are_per_example():
    a = np.zeros((3, 4, 4, 3), "float32")
    b = np.stack([np.full((4, 4, 3), v, "float32") for v in (0.0, 0.5, -1.0)])
    np.testing.assert_allclose(l1_loss(a, b).numpy(), [0.0, 0.5, 1.0])


def test_discriminator_loss_is_halved():
    real = np.ones((1, 2, 2, 1), "float32") * 0.5
    fake = np.ones((1, 2, 2, 1), "float32") * 0.5
    np.testing.assert_allclose(discriminator_loss(real, fake).numpy(), [0.5 * (0.25 + 0.25)])


def test_unknown_gan_mode_is_named():
    with pytest.raises(ValueError, match="'wgan'"):
        gan_loss(np.zeros((1, 1, 1, 1), "float32"), True, "wgan")
