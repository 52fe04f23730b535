"""DragKit core: a plain library on torch, diffusers, peft and kornia. It never imports ComfyUI.

One concept per module:

- ``errors``        the exceptions users see and the input checks shared by every entry point
- ``limits``        size limits on user input, named once
- ``files``         paths from user input confined to their folder; atomic writes
- ``schedule``      the DDIM schedule shared by inversion and sampling; predicted x0
- ``sd15``          the Stable Diffusion 1.5 architecture description (for offline single-file loading)
- ``hints``         what a model recommends to the methods (its dragkit.json), typed and checked
- ``model``         the model bundle (UNet, schedule, latent scale, device/dtype policy, VAE)
- ``adapters``      which LoRA adapter a shared UNet runs, and how many it keeps
- ``lora``          per-image LoRA training, and the name a trained LoRA gets
- ``lora_files``    LoRA files: saving in the kohya layout ComfyUI reads, loading kohya or peft keys
- ``features``      UNet decoder feature taps
- ``inversion``     DDIM inversion keeping the whole trajectory
- ``attention``     self-attention edits (reference K/V, memory bank) as diffusers attention processors
- ``sampling``      DDIM denoising of [source, edited] with reference attention
- ``keep``          the source kept outside the editable mask, while sampling and after decoding
- ``points``        handle -> target pairs in image pixels, and their grid coordinates
- ``editor_state``  the Point Picker widget's JSON state
- ``masks``         editable-region masks and brush strokes
- ``motion``        DragDiffusion's motion supervision and background losses
- ``tracking``      point tracking by nearest feature
- ``guidance``      DragonDiffusion's energy guidance and edit geometry
- ``image_prompt``  IP-Adapter image prompts for DiffEditor
- ``regions``       DIFT-style feature-correspondence regions
- ``region_warp``   Inpaint4Drag's region warp in pixel space, and the mask of what it uncovers
- ``fill``          filling a masked area with the drag model (blended-latent DDIM inpainting)
- ``preview``       live-preview pictures of a latent
- ``overlay``       drawing pairs and masks on an image; tensor <-> PIL
- ``metrics``       drag accuracy and image metrics
- ``drag``          the drag loop's primitives shared by DragDiffusion and GoodDrag
- ``methods/``      one module per paper, each assembling its method once in an ``edit`` from the
                    above; ``methods.registry`` lists them for the nodes and the benchmarks
"""
