"""Metrics beside yolov5's own: the official COCO evaluation (``coco_eval``).

An application: it may import the engines and everything below them.
"""
