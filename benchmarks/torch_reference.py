"""The PyTorch reference's CycleGAN training step, timed on this machine.

    pip install torch==2.13.0 numpy      (in its own environment: the package never imports torch)
    python benchmarks/torch_reference.py --size 128 --steps 8 --warmup 2 [--bf16]

The networks and the update of junyanz/pytorch-CycleGAN-and-pix2pix (`models/networks.py`,
`models/cycle_gan_model.py`), written compactly from its definitions: the ResNet generator
(`resnet_9blocks`: reflection padding, affine-free instance norm, biases on every
convolution, as the reference sets them with instance norm), the 70x70 PatchGAN (`basic`,
three layers), LSGAN, cycle L1 (lambda 10) and identity L1 (0.5 x lambda), a pool of 50
fakes per domain, Adam(2e-4, betas 0.5, 0.999), one optimizer for both generators and one
for both discriminators; the discriminators' gradients are off while the generators
update, as the reference's `set_requires_grad`. Batch `--batch`, random images.

Prints one JSON line with the keys of `tf-cyclegan bench` (benchmarks/train_step.py), so
`benchmarks/compare_reference.py` can set the two side by side: images_per_s (steady state
after the warm-up), first_step_s (process start to the end of the first step, imports
included), peak_rss_mb, parameter counts and the last generator loss.
"""

import time

T0 = time.time()

import argparse  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import resource  # noqa: E402

import torch  # noqa: E402
from torch import nn  # noqa: E402


class ResidualBlock(nn.Module):
    """Two reflection-padded 3x3 convolutions with instance norm, added to the input."""

    def __init__(self, filters):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(filters, filters, 3), nn.InstanceNorm2d(filters), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(filters, filters, 3), nn.InstanceNorm2d(filters),
        )

    def forward(self, x):
        return x + self.body(x)


def resnet_generator(filters=64, num_residual_blocks=9):
    """c7s1-64, d128, d256, R256 x N, u128, u64, c7s1-3 (the paper's appendix 7.2)."""
    layers = [nn.ReflectionPad2d(3), nn.Conv2d(3, filters, 7), nn.InstanceNorm2d(filters), nn.ReLU(True)]
    for mult in (1, 2):
        layers += [nn.Conv2d(filters * mult, filters * mult * 2, 3, stride=2, padding=1),
                   nn.InstanceNorm2d(filters * mult * 2), nn.ReLU(True)]
    layers += [ResidualBlock(filters * 4) for _ in range(num_residual_blocks)]
    for mult in (4, 2):
        layers += [nn.ConvTranspose2d(filters * mult, filters * mult // 2, 3, stride=2, padding=1, output_padding=1),
                   nn.InstanceNorm2d(filters * mult // 2), nn.ReLU(True)]
    layers += [nn.ReflectionPad2d(3), nn.Conv2d(filters, 3, 7), nn.Tanh()]
    return nn.Sequential(*layers)


def patchgan_discriminator(filters=64):
    """C64-C128-C256-C512 of 4x4 convolutions, one logit per 70x70 patch."""
    layers = [nn.Conv2d(3, filters, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
    for before, after in ((1, 2), (2, 4)):
        layers += [nn.Conv2d(filters * before, filters * after, 4, stride=2, padding=1),
                   nn.InstanceNorm2d(filters * after), nn.LeakyReLU(0.2, True)]
    layers += [nn.Conv2d(filters * 4, filters * 8, 4, stride=1, padding=1), nn.InstanceNorm2d(filters * 8),
               nn.LeakyReLU(0.2, True), nn.Conv2d(filters * 8, 1, 4, stride=1, padding=1)]
    return nn.Sequential(*layers)


def paper_init(module):
    """N(0, 0.02) weights, zero biases (the reference's `init_type="normal"`)."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        nn.init.zeros_(module.bias)


class ImagePool:
    """The reference's history of 50 fakes: fill, then half the time swap a stored one out."""

    def __init__(self, pool_size=50):
        self.pool_size, self.images = pool_size, []

    def query(self, image):
        if len(self.images) < self.pool_size:
            self.images.append(image)
            return image
        if random.random() > 0.5:
            slot = random.randrange(self.pool_size)
            old, self.images[slot] = self.images[slot], image
            return old
        return image


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--blocks", type=int, default=9)
    parser.add_argument("--filters", type=int, default=64)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--bf16", action="store_true", help="autocast to bfloat16 on the CPU")
    args = parser.parse_args()
    torch.manual_seed(0)
    random.seed(0)
    gen_a2b, gen_b2a = (resnet_generator(args.filters, args.blocks) for _ in "ab")
    disc_a, disc_b = patchgan_discriminator(), patchgan_discriminator()
    for network in (gen_a2b, gen_b2a, disc_a, disc_b):
        network.apply(paper_init)
    gen_optimizer = torch.optim.Adam(itertools.chain(gen_a2b.parameters(), gen_b2a.parameters()), 2e-4,
                                     betas=(0.5, 0.999))
    disc_optimizer = torch.optim.Adam(itertools.chain(disc_a.parameters(), disc_b.parameters()), 2e-4,
                                      betas=(0.5, 0.999))
    pool_a, pool_b = ImagePool(), ImagePool()
    lambda_cycle, lambda_identity = 10.0, 0.5

    def gan_loss(logits, real):
        return nn.functional.mse_loss(logits, torch.full_like(logits, 1.0 if real else 0.0))

    def backward_discriminator(disc, real, fake):  # the reference's backward_D_basic
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            loss = 0.5 * (gan_loss(disc(real).float(), True) + gan_loss(disc(fake.detach()).float(), False))
        loss.backward()

    def step(real_a, real_b):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            fake_b, fake_a = gen_a2b(real_a), gen_b2a(real_b)
            cycled_a, cycled_b = gen_b2a(fake_b), gen_a2b(fake_a)
        for disc in (disc_a, disc_b):
            disc.requires_grad_(False)
        gen_optimizer.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            same_b, same_a = gen_a2b(real_b), gen_b2a(real_a)
            l1 = nn.functional.l1_loss
            gen_total = (
                gan_loss(disc_b(fake_b).float(), True) + gan_loss(disc_a(fake_a).float(), True)
                + lambda_cycle * (l1(cycled_a.float(), real_a) + l1(cycled_b.float(), real_b))
                + lambda_cycle * lambda_identity * (l1(same_a.float(), real_a) + l1(same_b.float(), real_b))
            )
        gen_total.backward()
        gen_optimizer.step()
        for disc in (disc_a, disc_b):
            disc.requires_grad_(True)
        disc_optimizer.zero_grad()
        backward_discriminator(disc_a, real_a, pool_a.query(fake_a.detach()))
        backward_discriminator(disc_b, real_b, pool_b.query(fake_b.detach()))
        disc_optimizer.step()
        return gen_total.item()

    def batch():
        return torch.rand(args.batch, 3, args.size, args.size) * 2 - 1

    step(batch(), batch())
    first_step_s = time.time() - T0
    for _ in range(args.warmup):
        step(batch(), batch())
    start = time.perf_counter()
    for _ in range(args.steps):
        loss = step(batch(), batch())
    seconds = time.perf_counter() - start
    print(json.dumps({
        "impl": "torch-reference", "torch": torch.__version__, "threads": torch.get_num_threads(),
        "size": args.size, "batch": args.batch, "bf16": args.bf16,
        "images_per_s": round(args.steps * args.batch / seconds, 4),
        "first_step_s": round(first_step_s, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "params_generator": sum(p.numel() for p in gen_a2b.parameters()),
        "params_discriminator": sum(p.numel() for p in disc_a.parameters()),
        "final_loss_g": round(loss, 4),
    }))


if __name__ == "__main__":
    main()
