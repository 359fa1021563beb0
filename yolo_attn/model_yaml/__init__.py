"""Model YAMLs: structural edits (insert layers, replace Concat fusions) and the shipped variants."""
