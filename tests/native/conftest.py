"""The echo plugins (tests/native/cpp/option_echo_plugin.cpp), built once for the tests of the plugin table
and of staging, and their log."""
import logging
import shutil

import pytest

import juno_bridge as jb
from helpers.native_build import CPP_TESTS, CXX, compile_sdk_program

# name: the variant's flags (option_echo_plugin.cpp says what each does)
ECHO_PLUGINS = {
    "optecho": [],                                             # ABI 4, declares intra_op_threads and colour
    "optecho2": ["-DECHO_ABI2"],                               # laid out as ABI 2, declares nothing
    "optechoasync": ["-DECHO_ASYNC"],                          # with an asynchronous run
    "optechoasync3": ["-DECHO_ASYNC", "-DECHO_ABI3"],          # the same declaring ABI 3
    "optechoold": ["-DECHO_ASYNC", "-DECHO_BEFORE_ASYNC"],     # a table's size from before the async entries
    "optechodev": ["-DECHO_DEVICES"],                          # naming cuda:0 among its devices
    "optechopin": ["-DECHO_PINNED"],                           # Session.empty memory of its own, pinned
    "optechopinasync": ["-DECHO_PINNED", "-DECHO_ASYNC"],      # the same with an asynchronous run
}


@pytest.fixture(scope="session")
def echo_plugins(tmp_path_factory):
    """The directory of libjuno_bridge_<name>.so for every ECHO_PLUGINS variant."""
    if shutil.which(CXX) is None:
        pytest.skip(f"no C++ compiler ({CXX})")
    out = tmp_path_factory.mktemp("plugins")
    for name, flags in ECHO_PLUGINS.items():
        compile_sdk_program(CPP_TESTS / "option_echo_plugin.cpp", out / f"libjuno_bridge_{name}.so", "-shared",
                            "-fPIC", "-fvisibility=hidden", f"-DECHO_NAME={name}", *flags)
    return out


@pytest.fixture
def echo_log(echo_plugins, monkeypatch, caplog):
    """The echo plugins on the plugin path and their lines ("released N bytes"; verbose: the devices of a
    run's views) in caplog, juno-bridge's log level restored after."""
    monkeypatch.setenv("JUNO_BRIDGE_PLUGIN_PATH", str(echo_plugins))
    level = jb.get_log_level()
    jb.set_log_level("verbose")
    try:
        with caplog.at_level(logging.DEBUG, logger="juno_bridge.echo"):
            yield caplog
    finally:
        jb.set_log_level(level)
