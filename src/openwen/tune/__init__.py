"""Make your own derivative: LoRA fine-tuning of a local GGUF model on the CPU.

``data`` reads and renders datasets, ``tokens`` tokenises with llama.cpp's own tokenizer,
``train`` runs PEFT LoRA training (in the runner process only, never in the server),
``gguf_lora`` writes the adapter as a llama.cpp GGUF LoRA with lineage, ``jobs`` is the job queue
on disk that the server and the CLI read, ``runner`` is the training process, ``evaluate``
compares base and derivative on the held-out examples.
"""
