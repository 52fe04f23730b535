"""DragKit: point-based drag editing of real images with diffusion models, as ComfyUI nodes.

ComfyUI imports this folder as a package; with ``pip install -e .`` it is the package ``dragkit``.
Only registration lives here: the nodes are in ``nodes/``, the algorithms in ``core/``.
"""

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

WEB_DIRECTORY = "./web"

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
