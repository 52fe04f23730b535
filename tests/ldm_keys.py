"""diffusers -> LDM key names for an SD-style UNet, to write single-file checkpoints in tests.

The inverse of diffusers' ``convert_ldm_unet_checkpoint`` for the layouts the tests build; kept
here (not in the pack) because DragKit only ever reads LDM files.
"""

from __future__ import annotations

import re

RESNET_NAMES = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}
TOP_LEVEL = {
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "conv_in": "input_blocks.0.0",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
}


def _resnet(rest: str) -> str:
    head, _, tail = rest.partition(".")
    return f"{RESNET_NAMES[head]}.{tail}"


def diffusers_to_ldm(state_dict: dict, layers_per_block: int, up_has_attention: list[bool]) -> dict:
    per = layers_per_block + 1
    out = {}
    for key, value in state_dict.items():
        for prefix, ldm in TOP_LEVEL.items():
            if key.startswith(prefix + "."):
                new = ldm + key[len(prefix):]
                break
        else:
            if m := re.match(r"down_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", key):
                b, l, rest = int(m[1]), int(m[2]), m[3]
                new = f"input_blocks.{1 + b * per + l}.0.{_resnet(rest)}"
            elif m := re.match(r"down_blocks\.(\d+)\.attentions\.(\d+)\.(.*)", key):
                b, l, rest = int(m[1]), int(m[2]), m[3]
                new = f"input_blocks.{1 + b * per + l}.1.{rest}"
            elif m := re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)", key):
                b, rest = int(m[1]), m[2]
                new = f"input_blocks.{1 + b * per + layers_per_block}.0.op.{rest}"
            elif m := re.match(r"mid_block\.resnets\.(\d+)\.(.*)", key):
                new = f"middle_block.{2 * int(m[1])}.{_resnet(m[2])}"
            elif m := re.match(r"mid_block\.attentions\.0\.(.*)", key):
                new = f"middle_block.1.{m[1]}"
            elif m := re.match(r"up_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", key):
                b, l, rest = int(m[1]), int(m[2]), m[3]
                new = f"output_blocks.{b * per + l}.0.{_resnet(rest)}"
            elif m := re.match(r"up_blocks\.(\d+)\.attentions\.(\d+)\.(.*)", key):
                b, l, rest = int(m[1]), int(m[2]), m[3]
                new = f"output_blocks.{b * per + l}.1.{rest}"
            elif m := re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.*)", key):
                b, rest = int(m[1]), m[2]
                slot = 2 if up_has_attention[b] else 1
                new = f"output_blocks.{b * per + layers_per_block}.{slot}.conv.{rest}"
            else:
                raise KeyError(f"no LDM name for {key}")
        out["model.diffusion_model." + new] = value
    return out
