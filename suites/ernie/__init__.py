"""ERNIE 3.0 text classification: model, tokenizer, reference model, shapes and the workload."""
