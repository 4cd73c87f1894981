"""The one line a failed Node runner's error names: its own reason, else the thrown error."""

from __future__ import annotations

from wsd_web.bench.runner import node_failure

UNCAUGHT = """node:internal/modules/cjs/loader:1207
  const err = new Error(message);
              ^

Error: Cannot find module '../static/vendor/tvmjs/index.js'
Require stack:
- /x/packages/wsd-web/src/wsd_web/node/load_build.mjs
    at Module._resolveFilename (node:internal/modules/cjs/loader:1207:15)
  code: 'MODULE_NOT_FOUND',
}

Node.js v20.20.2
"""


def test_an_uncaught_exception_is_named_by_its_error_line_not_nodes_version() -> None:
    assert node_failure(UNCAUGHT, "bench failed:", 1) == (
        "Error: Cannot find module '../static/vendor/tvmjs/index.js'"
    )


def test_the_runners_own_reason_comes_first() -> None:
    stderr = "progress\nbench failed: the device has no shader-f16\n" + UNCAUGHT
    assert node_failure(stderr, "bench failed:", 1) == "bench failed: the device has no shader-f16"


def test_typed_errors_and_plain_lines() -> None:
    typed = 'TypeError [ERR_INVALID_ARG_TYPE]: The "path" argument must be a string\n'
    assert node_failure(typed, "bench failed:", 1).startswith("TypeError [ERR_INVALID_ARG_TYPE]:")
    assert node_failure("something odd\nNode.js v20.1.0\n", "bench failed:", 3) == "something odd"
    assert node_failure("\n", "bench failed:", 3) == "node exited 3"
