"""The ultralytics bench (``cli/bench.py`` branches here). The train/val/detect/export runners are in
``engines/ultralytics/commands/``; importing them sets the offline environment before ultralytics is imported."""
