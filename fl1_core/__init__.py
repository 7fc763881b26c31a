"""fl1_core: the library behind the Future-L1 workbook.

Interleaved latent visual reasoning for video event prediction on top of HF ``transformers`` Qwen3-VL.
Modules (one concept each): ``tokens``, ``config``, ``model``, ``decoding``, ``losses``, ``rewards``, ``rl``, ``sft``,
``curation``, ``data``, ``evaluation``, ``plots``, ``runs``, ``cli``.
"""

__version__ = "0.1.0"
