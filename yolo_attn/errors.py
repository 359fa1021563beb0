"""Errors for user mistakes: the command-line tools print their message, without a traceback, and exit non-zero."""


class YoloAttnError(Exception):
    """Base class: a problem in the user's input, explained in the message together with the fix."""


class ModelConfigError(YoloAttnError, ValueError):
    """A model YAML that cannot be built (unknown layer, bad ``from`` index, channel mismatch, expression...)."""


class DatasetError(YoloAttnError):
    """A dataset that cannot be used (missing folder, no labels, corrupt image...)."""


class UsageError(YoloAttnError):
    """A command-line argument that names nothing usable (unknown cfg, weights not found...)."""


class BadParameter(UsageError):
    """A parameter value that cannot be used. The message names the parameter as ``{name}``: the library shows it as
    the parameter (``conf must be in [0, 1]``), the command-line tools as their flag (``--conf must be in [0, 1]``)."""

    def __init__(self, param, message):
        self.param, self.template = param, message
        super().__init__(message.replace("{name}", param))

    def as_flag(self):
        return self.template.replace("{name}", "--" + self.param.replace("_", "-"))
