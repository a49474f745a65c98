"""Where llama.cpp keeps model weights on the CPU: plain buffers on CPUs with AMX.

llama.cpp can hold weights in "extra" CPU buffer types: layouts repacked for the CPU's matrix
instructions and, on Intel CPUs with AMX (Sapphire Rapids and later), AMX tiles. On such a
machine (2026-12-02: an Intel Xeon with ``amx_int8``, ``amx_tile``, ``amx_bf16``) the llama.cpp of
llama-cpp-python 0.3.36 crashes with SIGSEGV in the first decode of more than one token from a
Q4_1 model, and a current ``llama-server`` crashes the same way in its warm-up unless started
with ``--no-repack``; both run correctly with plain CPU buffers. So when the llama.cpp build
reports AMX, openwen loads weights without the extra buffer types, for every model it opens
through llama-cpp-python (the batched and simple engines, embeddings, the fine-tuning tools).

``OPENWEN_LLAMA_EXTRA_BUFFERS=true`` keeps llama.cpp's default (extra buffers on) and ``false``
turns them off on any CPU.
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import Any

ENV = "OPENWEN_LLAMA_EXTRA_BUFFERS"
_applied = False


def build_has_amx(llama_cpp: Any) -> bool:
    """True when this llama.cpp build uses AMX on this CPU (its system info says so)."""
    info = llama_cpp.llama_print_system_info()
    text = info.decode("utf-8", "replace") if isinstance(info, bytes) else str(info)
    return "AMX_INT8 = 1" in text


def extra_buffers_wanted(llama_cpp: Any) -> bool:
    """Whether weights may go into llama.cpp's extra CPU buffer types (see the module doc)."""
    value = os.environ.get(ENV, "").strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    return not build_has_amx(llama_cpp)


def llama_cpp_module() -> ModuleType:
    """``llama_cpp``, with model loading set to plain CPU buffers where :func:`extra_buffers_wanted`
    says so. Every place that opens a model imports llama-cpp-python through this."""
    import llama_cpp

    global _applied
    if not _applied:
        _applied = True
        if not extra_buffers_wanted(llama_cpp):
            _plain_buffers(llama_cpp)
    return llama_cpp


def _plain_buffers(llama_cpp: Any) -> None:
    """Make ``llama_model_default_params`` (which ``Llama`` and ``LlamaModel`` start from) ask for
    no extra buffer types."""
    low = llama_cpp.llama_cpp  # the ctypes bindings module that llama.py calls through
    default = low.llama_model_default_params

    def plain_default_params() -> Any:
        params = default()
        params.use_extra_bufts = False
        return params

    low.llama_model_default_params = plain_default_params
    llama_cpp.llama_model_default_params = plain_default_params
