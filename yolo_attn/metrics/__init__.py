"""Metrics beside yolov5's own: the official COCO evaluation (``coco_eval``)."""
