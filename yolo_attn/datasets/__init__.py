"""Datasets: the embedded default (``shapes``) and the checks that run before yolov5 reads a dataset."""
