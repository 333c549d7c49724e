"""What a conditioning can add to every UNet call while sampling: the hook a ControlNet plugs into.

A node that applies something to a conditioning (ControlNetApply, say) adds a `UNetAddition` to it
(`Conditioning.with_addition`). At every step the sampler asks each addition of each half of the
guided batch (negative, then positive) for the UNet keyword arguments it adds, given what the UNet is
about to get for that half (`UNetCall`); diffusers' UNet takes a ControlNet's output as
`down_block_additional_residuals` (one tensor per down-block output) and
`mid_block_additional_residual` (it adds the middle one only together with the down ones). Several
additions on one half are summed, as stacked ControlNets are; a half without any gets zeros of the
same shapes when the other has some, so both halves run in one UNet call. An addition may give
nothing (outside its start…end range of the schedule).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from depthgraph.nodes.heavy import torch

RESIDUAL_KEYS = ("down_block_additional_residuals", "mid_block_additional_residual")


@dataclass(frozen=True)
class UNetCall:
    """What the UNet is about to get for one half of the batch at one step."""

    sample: torch.Tensor  # the scaled latents [B, 4, h, w] (without a depth channel)
    timestep: torch.Tensor  # on the device
    embeddings: torch.Tensor  # this half's text embeddings [B, 77, width]
    added: Mapping[str, torch.Tensor] | None  # SDXL's text_embeds and time_ids for this half, else None
    step: int  # 0-based index of the step
    steps: int  # how many steps this run takes

    @property
    def progress(self) -> float:
        """How far through the run this step is: 0 at the first step, below 1 at the last."""
        return self.step / self.steps


class UNetAddition(Protocol):
    """Something a conditioning carries that adds keyword arguments to the UNet's call."""

    def unet_inputs(self, call: UNetCall) -> Mapping[str, Any] | None: ...


def _summed(parts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    total: dict[str, Any] = {}
    for part in parts:
        for key, value in part.items():
            if key not in RESIDUAL_KEYS:
                raise ValueError(f"a UNet addition gave {key!r}; it may add {' and '.join(RESIDUAL_KEYS)}")
            if key not in total:
                total[key] = list(value) if isinstance(value, (list, tuple)) else value
            elif isinstance(value, (list, tuple)):
                total[key] = [mine + theirs for mine, theirs in zip(total[key], value, strict=True)]
            else:
                total[key] = total[key] + value
    return total


def _zeros_like(value: Any) -> Any:
    if isinstance(value, list):
        return [torch.zeros_like(item) for item in value]
    return torch.zeros_like(value)


def _joined_call(calls: Sequence[UNetCall]) -> UNetCall:
    """One call for several halves: their samples, embeddings and SDXL inputs joined along the batch."""
    if len(calls) == 1:
        return calls[0]
    first = calls[0]
    added = None
    if first.added is not None:
        added = {key: torch.cat([call.added[key] for call in calls if call.added]) for key in first.added}
    return UNetCall(
        torch.cat([call.sample for call in calls]),
        first.timestep,
        torch.cat([call.embeddings for call in calls]),
        added,
        first.step,
        first.steps,
    )


def _part(value: Any, parts: int, index: int) -> Any:
    if isinstance(value, list):
        return [item.chunk(parts)[index] for item in value]
    return value.chunk(parts)[index]


def additional_unet_inputs(
    halves: Sequence[tuple[Sequence[UNetAddition], UNetCall]],
) -> dict[str, Any]:
    """The keyword arguments the additions of every half add to one UNet call, each half's summed and
    the halves joined along the batch in order (empty when none adds anything).

    An addition on several halves (a ControlNet applied to both prompts) is asked once, with those
    halves joined, as diffusers runs a ControlNet on the whole guided batch; each appears once per half.
    """
    shared: list[tuple[UNetAddition, list[int]]] = []
    for index, (additions, _) in enumerate(halves):
        for addition in additions:
            entry = next((found for found in shared if found[0] is addition), None)
            if entry is None:
                shared.append((addition, [index]))
            elif index not in entry[1]:
                entry[1].append(index)
    given: list[list[Mapping[str, Any]]] = [[] for _ in halves]
    for addition, indices in shared:
        found = addition.unet_inputs(_joined_call([halves[index][1] for index in indices]))
        if not found:
            continue
        for position, index in enumerate(indices):
            given[index].append({key: _part(value, len(indices), position) for key, value in found.items()})
    per_half = [_summed(parts) for parts in given]
    keys = [key for key in RESIDUAL_KEYS if any(key in half for half in per_half)]
    if not keys:
        return {}
    joined: dict[str, Any] = {}
    for key in keys:
        model = next(half[key] for half in per_half if key in half)
        values = [half.get(key, _zeros_like(model)) for half in per_half]
        if isinstance(model, list):
            joined[key] = [torch.cat(parts) for parts in zip(*values, strict=True)]
        else:
            joined[key] = torch.cat(values)
    return joined
