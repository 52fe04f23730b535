"""Motion supervision and point tracking on synthetic feature maps with known answers."""

from __future__ import annotations

import pytest
import torch

from dragkit.core.motion import drag_steps, motion_supervision_loss, patch_offsets, sample_patches
from dragkit.core.tracking import track_points


def _smooth_features(channels=8, size=24, seed=0):
    coarse = torch.randn(1, channels, 6, 6, generator=torch.Generator().manual_seed(seed))
    return torch.nn.functional.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=True)


def test_patch_offsets():
    offsets = patch_offsets(1)
    assert offsets.shape == (3, 3, 2)
    assert offsets[0, 0].tolist() == [-1, -1] and offsets[1, 2].tolist() == [0, 1]


def test_integer_patches_are_exact_slices():
    features = _smooth_features()
    patches = sample_patches(features, torch.tensor([[5.0, 7.0], [10.0, 3.0]]), 2)
    assert patches.shape == (2, 8, 5, 5)
    torch.testing.assert_close(patches[0], features[0, :, 3:8, 5:10])
    torch.testing.assert_close(patches[1], features[0, :, 8:13, 1:6])


def test_half_pixel_patch_is_the_mean_of_neighbours():
    features = _smooth_features()
    patch = sample_patches(features, torch.tensor([[5.0, 7.5]]), 0)[0, :, 0, 0]
    torch.testing.assert_close(patch, (features[0, :, 5, 7] + features[0, :, 5, 8]) / 2)


def test_patches_outside_repeat_the_border():
    features = _smooth_features()
    patch = sample_patches(features, torch.tensor([[0.0, 0.0]]), 1)
    torch.testing.assert_close(patch[0, :, 0, 0], features[0, :, 0, 0])


def test_patch_sampling_gradcheck():
    features = _smooth_features(channels=2, size=6).double().requires_grad_(True)
    centers = torch.tensor([[2.3, 3.6]], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda f: sample_patches(f, centers, 1), (features,))


def test_drag_steps_are_unit_or_capped():
    handles = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    targets = torch.tensor([[0.0, 10.0], [3.0, 4.0]])
    torch.testing.assert_close(drag_steps(handles, targets, 1.0), torch.tensor([[0.0, 1.0], [0.6, 0.8]]))
    torch.testing.assert_close(drag_steps(handles, targets, 4.0), torch.tensor([[0.0, 4.0], [2.4, 3.2]]))
    torch.testing.assert_close(drag_steps(handles, targets, 9.0)[1], torch.tensor([3.0, 4.0]))


@pytest.mark.parametrize("shift", [(2, -3), (0, 3), (-3, -1)])
def test_tracking_recovers_a_known_shift(shift):
    features = _smooth_features(size=32)
    moved = torch.roll(features, shifts=shift, dims=(2, 3))
    handles = torch.tensor([[12.0, 14.0], [20.0, 9.0]])
    reference = features[0, :, handles[:, 0].long(), handles[:, 1].long()].T
    tracked = track_points(moved, reference, handles, radius=3)
    torch.testing.assert_close(tracked, handles + torch.tensor(shift, dtype=torch.float32))


def test_tracking_stays_inside_the_map():
    features = _smooth_features(size=16)
    reference = features[0, :, 0, 0][None]
    tracked = track_points(features, reference, torch.tensor([[1.0, 1.0]]), radius=5)
    assert tracked.tolist() == [[0.0, 0.0]]


def _bump(center: torch.Tensor, size=24, channels=4):
    """A Gaussian blob whose position ``center = (row, col)`` is differentiable: content that can move."""
    rows, cols = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    blob = torch.exp(-((rows - center[0]) ** 2 + (cols - center[1]) ** 2) / 8.0)
    return torch.stack([blob * (c + 1) for c in range(channels)])[None]


@pytest.mark.parametrize("ipms", [False, True])
def test_one_motion_supervision_step_moves_the_content_toward_the_target(ipms):
    handle, target = torch.tensor([[12.0, 8.0]]), torch.tensor([[12.0, 16.0]])
    center = torch.tensor([12.0, 8.0], requires_grad=True)
    radius = 4 if ipms else 1
    reference = sample_patches(_bump(center.detach()), handle, radius) if ipms else None
    loss = motion_supervision_loss(_bump(center), handle, target, radius, 4.0 if ipms else 1.0, reference)
    loss.backward()
    # Gradient descent moves the blob along +col (toward the target) and not across.
    assert center.grad[1] < 0
    assert abs(float(center.grad[0])) < 1e-6
    # And repeated steps with tracking carry the handle most of the way.
    optimizer = torch.optim.Adam([center], lr=0.3)
    current, vector = handle.clone(), _bump(center.detach())[0, :, 12, 8][None]
    for _ in range(40):
        loss = motion_supervision_loss(_bump(center), current, target, radius, 4.0 if ipms else 1.0, reference)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        current = track_points(_bump(center.detach()), vector, current, 3)
    assert float(current[0, 1]) >= 14.0


def test_arrived_handles_give_zero_loss():
    features = _smooth_features().requires_grad_(True)
    loss = motion_supervision_loss(features, torch.tensor([[5.0, 5.0]]), torch.tensor([[5.0, 6.5]]), 1)
    assert float(loss.detach()) == 0.0
    loss.backward()  # still differentiable


def _clipped_window_search(features, reference, handles, radius):
    """The reference algorithm, one handle at a time over its clipped window (DragDiffusion's loop)."""
    height, width = features.shape[-2:]
    tracked = []
    for vector, (row, col) in zip(reference, handles.round().long().tolist()):
        top, bottom = max(row - radius, 0), min(row + radius + 1, height)
        left, right = max(col - radius, 0), min(col + radius + 1, width)
        distance = (features[0, :, top:bottom, left:right] - vector[:, None, None]).abs().sum(dim=0)
        index = int(distance.flatten().argmin())
        tracked.append([top + index // (right - left), left + index % (right - left)])
    return torch.tensor(tracked, dtype=torch.float32)


def test_tracking_all_handles_at_once_equals_the_window_search():
    """Random maps, windows clipped at every border, and exact ties (rounded values): the same handles."""
    generator = torch.Generator().manual_seed(0)
    for trial in range(60):
        channels, height, width = (int(torch.randint(low, high, (1,), generator=generator))
                                   for low, high in ((1, 20), (4, 30), (4, 30)))
        features = torch.randn(1, channels, height, width, generator=generator)
        count, radius = int(torch.randint(1, 6, (1,), generator=generator)), int(torch.randint(1, 13, (1,), generator=generator))
        handles = torch.stack([torch.randint(0, height, (count,), generator=generator),
                               torch.randint(0, width, (count,), generator=generator)], dim=1).float()
        reference = torch.randn(count, channels, generator=generator)
        if trial % 3 == 0:
            features, reference = features.round(), reference.round()
        expected = _clipped_window_search(features, reference, handles, radius)
        assert torch.equal(track_points(features, reference, handles, radius), expected), trial
