"""Datasets: the embedded default (``shapes``, core: numpy and OpenCV only), the checks that run before yolov5 reads a
dataset (``checks``) and the VOC/COCO converters (``convert``), both applications that may import the layers below."""
