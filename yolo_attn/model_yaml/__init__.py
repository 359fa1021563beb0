"""Model YAMLs: structural edits (``edit``: insert layers, replace Concat fusions, re-number every ``from``; core,
plain YAML dicts) and the shipped variants (``variants``: an application that reads the layer declarations through
the registry and yolov5's own yolov5s.yaml)."""
