"""DragKit's evaluation tools, beside the library and the nodes: the ``dragkit`` command line, the toy
benchmark (does the shape really move?), the speed and session benchmarks, and the synthetic scenes
they and the toy model's training draw from. ComfyUI never imports this package.

- ``cli``       ``dragkit demo`` and ``dragkit bench toy|speed|session``
- ``toybench``  held-out scenes with a known drag, each method run and scored
- ``speed``     seconds and memory per stage; a long session of LoRAs in a row; table and JSON output
- ``scenes``    the synthetic 64x64 scenes (one flat shape on a smooth background)
"""
