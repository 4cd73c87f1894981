"""Benchmarks: the WebGPU build against diffusers on PyTorch CUDA.

Not part of the app: nothing here is served to a browser.

- `runner`: ``wsd-web bench``, the build timed in Node + Dawn (``node/bench.mjs``)
  with the browser's tvmjs runtime, ``.wasm`` and JS pipeline.
- `results`: ``wsd-web bench`` results of one or more builds (fp32, fp16) and
  ``python -m wsd_capture.bench`` (diffusers, eager CUDA) results checked and
  combined into one result document, a record with its ratios per build.
- `page` and `charts`: result documents as the Markdown and SVG committed
  under ``docs/``.
- `report`: the file side of ``wsd-web report``.

The report modules use the standard library only, so a report renders
anywhere, and byte-for-byte the same from the same JSON.
"""
