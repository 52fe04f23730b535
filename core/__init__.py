"""DragKit core: a plain library on torch, diffusers and peft. It never imports ComfyUI.

One concept per module:

- ``errors``     input checking and the exceptions users see
- ``schedule``   the DDIM schedule shared by inversion and sampling
- ``sd15``       the Stable Diffusion 1.5 architecture description (for offline single-file loading)
- ``model``      the model bundle (UNet, schedule, latent scale, device/dtype policy)
- ``features``   UNet decoder feature taps
- ``inversion``  DDIM inversion keeping the whole trajectory
- ``attention``  self-attention edits (reference K/V) installed as diffusers attention processors
- ``sampling``   DDIM denoising of [source, edited] with reference attention
"""
