"""Data: real formats and their validation, decord frame pools, the collator, the synthetic future world."""
