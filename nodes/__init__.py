"""ComfyUI node registry: every node class is listed once, here."""

from .drag_nodes import DragKitAlDDSampler, DragKitDragOptimizer, DragKitPoints
from .guidance_nodes import DragKitRegionalSDESampler
from .image_nodes import DragKitExampleImage, DragKitVAEDecode, DragKitVAEEncode
from .inversion_nodes import DragKitDDIMInverter, DragKitSampler
from .lora_nodes import DragKitLoraLoader, DragKitLoraTrainer
from .metric_nodes import DragKitDAI
from .picker_nodes import DragKitFeatureRegion, DragKitPointPicker
from .model_nodes import DragKitModelFromComfy, DragKitModelLoader
from .warp_nodes import DragKitFillSampler, DragKitRegionWarp

_NODES = {
    DragKitModelLoader: "DragKit Model Loader",
    DragKitModelFromComfy: "DragKit Model From Comfy",
    DragKitVAEEncode: "DragKit VAE Encode",
    DragKitVAEDecode: "DragKit VAE Decode",
    DragKitExampleImage: "DragKit Example Image",
    DragKitLoraTrainer: "DragKit LoRA Trainer",
    DragKitLoraLoader: "DragKit LoRA Loader",
    DragKitDDIMInverter: "DragKit DDIM Inverter",
    DragKitSampler: "DragKit Sampler",
    DragKitPointPicker: "DragKit Point Picker",
    DragKitPoints: "DragKit Points (JSON)",
    DragKitFeatureRegion: "DragKit Feature Region",
    DragKitDragOptimizer: "DragKit Drag Optimizer",
    DragKitAlDDSampler: "DragKit AlDD Sampler (GoodDrag)",
    DragKitRegionalSDESampler: "DragKit Regional SDE Sampler (DragonDiffusion / DiffEditor)",
    DragKitRegionWarp: "DragKit Region Warp (Inpaint4Drag)",
    DragKitFillSampler: "DragKit Fill Sampler",
    DragKitDAI: "DragKit DAI (drag accuracy)",
}

NODE_CLASS_MAPPINGS = {cls.__name__: cls for cls in _NODES}
NODE_DISPLAY_NAME_MAPPINGS = {cls.__name__: name for cls, name in _NODES.items()}
