"""Reading the rows of a YOLO model YAML, the same for every engine: literal args only (nothing is evaluated),
``from`` indices checked, and the channel rules of registered layers.

A row is ``[from, number, module, args]``. Engines (``yolo_attn.engines.*``) resolve their own layer names and build
the model; what concerns registered layers is here so that every engine wires them identically.

What lives here: ``args`` (YAML args as literal Python values, ``activation:``, ``nn.Upsample``), ``checks`` (the row
shape, ``from``, the unknown-layer error, ``identity_start:``), ``bounds`` (the size bounds of a model YAML, the same
for every engine, ``check_model_yaml``) and ``channels`` (registered layers'
channel rules, building a row, other projects' spelling). Imports: the registry and errors (and ``modules``' hyper-
parameter ranges) only — never an engine or an application.
"""
from yolo_attn.yaml_rows.args import (UPSAMPLE_MODES, check_upsample, resolve_activation, resolve_arg, split_kwargs,
                                      torch_layer)
from yolo_attn.yaml_rows.bounds import check_model_yaml
from yolo_attn.yaml_rows.channels import attention_channels, build_row, foreign_channel_args, make_divisible
from yolo_attn.yaml_rows.checks import (MAX_CHANNELS, MAX_MULTIPLE, MAX_NC, MAX_REPEATS, MAX_VALUES, check_channels,
                                        check_from, check_model_fields, check_repeats, check_row, check_size,
                                        identity_rows_of, row_label, unknown_layer)

__all__ = ["MAX_CHANNELS", "MAX_MULTIPLE", "MAX_NC", "MAX_REPEATS", "MAX_VALUES", "UPSAMPLE_MODES",
           "attention_channels", "build_row", "check_channels", "check_from", "check_model_fields", "check_model_yaml",
           "check_repeats", "check_row", "check_size", "check_upsample", "foreign_channel_args", "identity_rows_of",
           "make_divisible", "resolve_activation", "resolve_arg", "row_label", "split_kwargs", "torch_layer",
           "unknown_layer"]
