# The backends' log lines into Python logging, and the one log level (included by _core.pyx).

# The backends' own log (ONNX Runtime's) goes to Python logging, logger "juno_bridge.<source>"; the
# core's level (set_log_level) decides which lines are made at all. Levels: ONNX Runtime's 0..4.
_LOG_LEVELS = (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL)


cdef void _forward_log(void* user_data, int32_t level, const char* source, const char* message) noexcept with gil:
    try:
        logging.getLogger("juno_bridge." + source.decode("utf-8", "replace")).log(
            _LOG_LEVELS[min(max(level, 0), 4)], "%s", message.decode("utf-8", "replace"))
    except BaseException:  # a log line must never raise into a runtime thread
        pass


def _stop_forwarding_log():
    jb_set_log_callback(NULL, NULL)  # runtime threads may log after the interpreter is gone


jb_set_log_callback(_forward_log, NULL)
atexit.register(_stop_forwarding_log)


def set_log_level(level):
    """Sets, in one place, which log lines of the backends are made and forwarded: a name (verbose, info,
    warning, error, fatal) or a logging level; also sets the level of the "juno_bridge" logger."""
    names = ("verbose", "info", "warning", "error", "fatal")
    if isinstance(level, str):
        if level.lower() not in names:
            raise InvalidArgumentError(f"log level must be one of {', '.join(names)}; got {level!r}")
        code = names.index(level.lower())
    elif isinstance(level, int) and not isinstance(level, bool):
        code = sum(level > l for l in _LOG_LEVELS[:-1])  # the nearest level at or above it
    else:
        raise InvalidArgumentError(f"log level must be a name or a logging level; got {level!r}")
    jb_set_log_level(code)
    logging.getLogger("juno_bridge").setLevel(_LOG_LEVELS[code])


def get_log_level():
    """The backends' log level as a name."""
    return ("verbose", "info", "warning", "error", "fatal")[jb_get_log_level()]
