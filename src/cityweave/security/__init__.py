"""Security primitives: field encryption, keyed hashes, password hashing, masking."""
