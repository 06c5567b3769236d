"""The GAN refiner: starts as the identity, learns in a few steps, refines sequences consistently in chunks."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from render.refine import Refiner, RefineConfig, refine_frames, train_refiner
from tests.render.person import make_person

TINY = RefineConfig(channels=8, levels=2, disc_channels=8, iterations=30, batch_size=4, lr=1e-3)


def degraded_pairs(n_frames: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """(blurred, darkened frames, the frames) of the test person: a stand-in for splat renders and truth."""
    truth = torch.as_tensor(make_person(40, 64).frames[:n_frames]).float() / 255.0
    planes = truth.permute(0, 3, 1, 2)
    blurred = F.avg_pool2d(planes, 3, stride=1, padding=1, count_include_pad=False) * 0.85
    return blurred.permute(0, 2, 3, 1).contiguous(), truth


def test_an_untrained_refiner_passes_the_render_through():
    renders, _ = degraded_pairs(4)
    torch.testing.assert_close(refine_frames(Refiner(TINY), renders), renders.clamp(0, 1))


def test_a_few_steps_lower_the_refiners_loss():
    renders, truth = degraded_pairs()
    refiner, log = train_refiner(renders, truth, TINY, progress=False)
    assert sum(log["l1"][-5:]) / 5 < 0.8 * sum(log["l1"][:5]) / 5
    before = (renders - truth).abs().mean()
    after = (refine_frames(refiner, renders) - truth).abs().mean()
    assert after < before


def test_refining_in_chunks_equals_refining_the_whole_sequence():
    renders, truth = degraded_pairs(8)
    refiner, _ = train_refiner(renders, truth, TINY.model_copy(update={"iterations": 3}), progress=False)
    whole = refine_frames(refiner, renders)
    first = refine_frames(refiner, renders[:5])
    second = refine_frames(refiner, renders[5:], previous=first[-1])
    torch.testing.assert_close(torch.cat([first, second]), whole)


def test_an_avatar_keeps_its_refiner_only_if_it_does_not_make_held_out_frames_worse():
    from render.avatar import AvatarConfig
    from render.fit import fit_avatar

    person = make_person(24, 32)
    avatar_cfg = AvatarConfig(image_size=32, sh_degree=0, iterations=12, densify_from=100, max_gaussians=2000,
                              backend="torch", holdout_fraction=0.25)
    harmful = Refiner(TINY)
    with torch.no_grad():
        harmful.head.bias.copy_(torch.tensor([-0.3, 0.3, -0.3]))  # a green cast over every frame
    # one step at a negligible rate: the refiner stays what it was
    refine_cfg = TINY.model_copy(update={"iterations": 1, "lr": 1e-12})
    dropped = fit_avatar(person.frames, person.params, person.camera, avatar_cfg, refine_cfg, init_refiner=harmful,
                         progress=False)
    verdict = dropped.quality["refiner"]
    assert dropped.avatar.refiner is None and not verdict["kept"] and verdict["heldout_psnr_gain_db"] < -3
    # both numbers stay on record, and the sheet still shows what the refiner did
    assert set(dropped.quality["heldout"]) == {"splat", "refined"} and dropped.sheet.shape[1] == 3 * 256
    kept = fit_avatar(person.frames, person.params, person.camera, avatar_cfg,
                      refine_cfg.model_copy(update={"keep": "always"}), init_refiner=harmful, progress=False)
    assert kept.avatar.refiner is not None and kept.quality["refiner"]["kept"]
